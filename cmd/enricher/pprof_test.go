package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/tencentchat-enricher/enricher/client"
)

func TestPprofHandler(t *testing.T) {
	srv := httptest.NewServer(pprofHandler())
	defer srv.Close()
	for path, want := range map[string]string{"/debug/pprof/": "goroutine", "/debug/pprof/goroutine?debug=1": "goroutine profile"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Fatalf("%s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
}

func TestResponseFilterFromFields(t *testing.T) {
	if f := responseFilter(nil); f != nil {
		t.Fatalf("all fields: filter %+v, want none", f)
	}
	got := responseFilter([]string{"official_account", "subscribe_time"})
	want := &client.ResponseFilter{OfficialAccountBaseInfoFilter: []string{"CreateTime"}, SelfInfoFilter: []string{"SubscribeTime"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("filter %+v, want %+v", got, want)
	}
	got = responseFilter([]string{"name", "self_info"})
	want = &client.ResponseFilter{OfficialAccountBaseInfoFilter: []string{"Name"}, SelfInfoFilter: client.SelfInfoFields}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("filter %+v, want %+v", got, want)
	}
}
