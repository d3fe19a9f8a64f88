package simulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestEnvelope(t *testing.T) {
	e := newEnv(t, nil)

	status, b := e.post(t, e.params(), `{"Subscriber_Account":"alice"}`)
	if status != http.StatusOK {
		t.Fatalf("HTTP %d", status)
	}
	// The success answer carries the spec's fields in the spec's order.
	wantOrder := []string{"ActionStatus", "ErrorInfo", "ErrorCode", "TotalCount", "OfficialAccountInfoList", "CompleteFlag", "Next"}
	if got := topKeys(t, b); fmt.Sprint(got) != fmt.Sprint(wantOrder) {
		t.Fatalf("keys %v, want %v", got, wantOrder)
	}
	var a answer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	if a.ActionStatus != "OK" || a.ErrorCode != 0 || a.ErrorInfo != "" {
		t.Fatalf("envelope %+v", a)
	}

	// A failure is the three envelope fields only, still HTTP 200.
	status, b = e.post(t, e.params(), `{"Subscriber_Account":"nobody"}`)
	if status != http.StatusOK {
		t.Fatalf("HTTP %d", status)
	}
	if got := topKeys(t, b); fmt.Sprint(got) != "[ActionStatus ErrorInfo ErrorCode]" {
		t.Fatalf("fail keys %v", got)
	}
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	if a.ActionStatus != "FAIL" || a.ErrorCode != CodeUserNotFound || a.ErrorInfo == "" {
		t.Fatalf("fail envelope %+v", a)
	}
}

// topKeys returns the keys of a JSON object in order.
func topKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", b)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestPagination(t *testing.T) {
	data := Generate(GenConfig{Seed: 7, Users: 2000, Accounts: 800})
	var heavy, empty string
	for i := 0; i < 2000 && (heavy == "" || empty == ""); i++ {
		u := UserID(i)
		switch n := data.SubscriptionCount(u); {
		case n > 2*maxPage && heavy == "":
			heavy = u
		case n == 0 && data.Known(u) && empty == "":
			empty = u
		}
	}
	if heavy == "" || empty == "" {
		t.Fatalf("dataset lacks a user with more than two pages (%q) or a known user without subscriptions (%q)", heavy, empty)
	}
	e := newEnv(t, func(c *Config) { c.Dataset = data })

	for _, limit := range []int{0, 1, 7, 200} { // 0: Limit not sent (default 200)
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			want := data.Subscriptions(heavy)
			pageSize := limit
			if limit == 0 {
				pageSize = maxPage
			}
			var got []string
			var offset uint64
			pages := 0
			for {
				body := map[string]any{"Subscriber_Account": heavy, "Offset": offset}
				if limit != 0 {
					body["Limit"] = limit
				}
				b, _ := json.Marshal(body)
				a := e.call(t, string(b))
				pages++
				if a.ErrorCode != 0 || a.TotalCount != len(want) {
					t.Fatalf("page %d: %+v, want TotalCount %d", pages, a, len(want))
				}
				rest := len(want) - int(offset)
				if n := len(a.OfficialAccountInfoList); n != min(pageSize, rest) {
					t.Fatalf("page %d: %d items, want %d", pages, n, min(pageSize, rest))
				}
				for _, it := range a.OfficialAccountInfoList {
					got = append(got, it["Official_Account"].(string))
				}
				if rest <= pageSize {
					if a.CompleteFlag != 1 || a.Next != 0 {
						t.Fatalf("last page: CompleteFlag %d Next %d", a.CompleteFlag, a.Next)
					}
					break
				}
				if a.CompleteFlag != 0 || a.Next != offset+uint64(pageSize) {
					t.Fatalf("page %d: CompleteFlag %d Next %d, want 0 and %d", pages, a.CompleteFlag, a.Next, offset+uint64(pageSize))
				}
				offset = a.Next
			}
			if wantPages := (len(want) + pageSize - 1) / pageSize; pages != wantPages {
				t.Fatalf("%d pages, want %d", pages, wantPages)
			}
			if len(got) != len(want) {
				t.Fatalf("%d accounts, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i].OfficialAccount {
					t.Fatalf("account %d = %s, want %s", i, got[i], want[i].OfficialAccount)
				}
			}
		})
	}

	t.Run("offset past the end", func(t *testing.T) {
		n := data.SubscriptionCount(heavy)
		a := e.call(t, fmt.Sprintf(`{"Subscriber_Account":%q,"Offset":%d}`, heavy, n+5))
		if a.ErrorCode != 0 || a.TotalCount != n || len(a.OfficialAccountInfoList) != 0 || a.CompleteFlag != 1 || a.Next != 0 {
			t.Fatalf("%+v", a)
		}
	})
	t.Run("no subscriptions", func(t *testing.T) {
		status, b := e.post(t, e.params(), userBody(empty))
		if status != http.StatusOK || !strings.Contains(string(b), `"OfficialAccountInfoList":[]`) {
			t.Fatalf("HTTP %d %s", status, b)
		}
		a := e.call(t, userBody(empty))
		if a.ErrorCode != 0 || a.TotalCount != 0 || a.CompleteFlag != 1 || a.Next != 0 {
			t.Fatalf("%+v", a)
		}
	})
}

func TestResponseFilters(t *testing.T) {
	e := newEnv(t, nil)
	data := e.srv.Dataset()
	allBase := []string{"CreateTime", "Name", "Owner_Account", "LastMsgTime", "SubscriberNum", "Introduction", "FaceUrl", "Organization", "CustomString"}
	allSelf := []string{"SubscribeTime", "CustomString"}

	tests := []struct {
		name     string
		filter   string
		wantBase []string
		wantSelf []string
	}{
		{"no filter", ``, allBase, allSelf},
		{"null filter", `,"ResponseFilter":null`, allBase, allSelf},
		{"empty object", `,"ResponseFilter":{}`, allBase, allSelf},
		{"empty lists", `,"ResponseFilter":{"OfficialAccountBaseInfoFilter":[],"SelfInfoFilter":[]}`, allBase, allSelf},
		{"base only", `,"ResponseFilter":{"OfficialAccountBaseInfoFilter":["Name","FaceUrl"]}`, []string{"Name", "FaceUrl"}, allSelf},
		{"self only", `,"ResponseFilter":{"SelfInfoFilter":["SubscribeTime"]}`, allBase, []string{"SubscribeTime"}},
		{"both", `,"ResponseFilter":{"OfficialAccountBaseInfoFilter":["SubscriberNum","CustomString"],"SelfInfoFilter":["CustomString"]}`, []string{"SubscriberNum", "CustomString"}, []string{"CustomString"}},
		{"all listed", `,"ResponseFilter":{"OfficialAccountBaseInfoFilter":["CreateTime","Name","Owner_Account","LastMsgTime","SubscriberNum","Introduction","FaceUrl","Organization","CustomString"],"SelfInfoFilter":["SubscribeTime","CustomString"]}`, allBase, allSelf},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.call(t, `{"Subscriber_Account":"alice"`+tt.filter+`}`)
			subs := data.Subscriptions("alice")
			if a.ErrorCode != 0 || len(a.OfficialAccountInfoList) != len(subs) {
				t.Fatalf("%+v", a)
			}
			for i, it := range a.OfficialAccountInfoList {
				acc, _ := data.Account(subs[i].OfficialAccount)
				wantItem := map[string]any{"Official_Account": acc.OfficialAccount}
				full := map[string]any{
					"CreateTime": float64(acc.CreateTime), "Name": acc.Name, "Owner_Account": acc.OwnerAccount,
					"LastMsgTime": float64(acc.LastMsgTime), "SubscriberNum": float64(acc.SubscriberNum),
					"Introduction": acc.Introduction, "FaceUrl": acc.FaceURL, "Organization": acc.Organization,
					"CustomString": acc.CustomString,
				}
				for _, f := range tt.wantBase {
					wantItem[f] = full[f]
				}
				fullSelf := map[string]any{"SubscribeTime": float64(subs[i].SubscribeTime), "CustomString": subs[i].CustomString}
				self := map[string]any{}
				for _, f := range tt.wantSelf {
					self[f] = fullSelf[f]
				}
				wantItem["SelfInfo"] = self
				if fmt.Sprint(it) != fmt.Sprint(wantItem) {
					t.Fatalf("item %d:\n got %v\nwant %v", i, it, wantItem)
				}
			}
		})
	}
}

func TestBodyValidation(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name string
		body string
		code int
	}{
		{"empty body", ``, CodeInvalidPacket},
		{"not JSON", `Subscriber_Account=alice`, CodeInvalidPacket},
		{"truncated", `{"Subscriber_Account":"alice"`, CodeInvalidPacket},
		{"null", `null`, CodeInvalidPacket},
		{"array", `[{"Subscriber_Account":"alice"}]`, CodeInvalidPacket},
		{"string", `"alice"`, CodeInvalidPacket},
		{"trailing data", `{"Subscriber_Account":"alice"} {}`, CodeInvalidPacket},
		{"empty object", `{}`, CodeInvalidParameter},
		{"missing account", `{"Limit":10}`, CodeInvalidParameter},
		{"null account", `{"Subscriber_Account":null}`, CodeInvalidParameter},
		{"empty account", `{"Subscriber_Account":""}`, CodeInvalidParameter},
		{"numeric account", `{"Subscriber_Account":107867}`, CodeInvalidParameter},
		{"account name case", `{"subscriber_account":"alice"}`, CodeInvalidParameter},
		{"limit zero", `{"Subscriber_Account":"alice","Limit":0}`, CodeInvalidParameter},
		{"limit negative", `{"Subscriber_Account":"alice","Limit":-1}`, CodeInvalidParameter},
		{"limit above 200", `{"Subscriber_Account":"alice","Limit":201}`, CodeInvalidParameter},
		{"limit fraction", `{"Subscriber_Account":"alice","Limit":1.5}`, CodeInvalidParameter},
		{"limit string", `{"Subscriber_Account":"alice","Limit":"10"}`, CodeInvalidParameter},
		{"offset negative", `{"Subscriber_Account":"alice","Offset":-1}`, CodeInvalidParameter},
		{"offset string", `{"Subscriber_Account":"alice","Offset":"0"}`, CodeInvalidParameter},
		{"filter not object", `{"Subscriber_Account":"alice","ResponseFilter":["Name"]}`, CodeInvalidParameter},
		{"filter not list", `{"Subscriber_Account":"alice","ResponseFilter":{"SelfInfoFilter":"SubscribeTime"}}`, CodeInvalidParameter},
		{"unknown base field", `{"Subscriber_Account":"alice","ResponseFilter":{"OfficialAccountBaseInfoFilter":["FaceURL"]}}`, CodeInvalidParameter},
		{"unknown self field", `{"Subscriber_Account":"alice","ResponseFilter":{"SelfInfoFilter":["Name"]}}`, CodeInvalidParameter},
		{"unknown user", `{"Subscriber_Account":"carol"}`, CodeUserNotFound},
		{"limit 200", `{"Subscriber_Account":"alice","Limit":200}`, CodeOK},
		{"limit 1", `{"Subscriber_Account":"alice","Limit":1}`, CodeOK},
		{"limit null", `{"Subscriber_Account":"alice","Limit":null}`, CodeOK},
		{"unknown field ignored", `{"Subscriber_Account":"alice","Extra":true}`, CodeOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.call(t, tt.body)
			if a.ErrorCode != tt.code {
				t.Fatalf("ErrorCode %d (%s), want %d", a.ErrorCode, a.ErrorInfo, tt.code)
			}
			if wantStatus := map[bool]string{true: "OK", false: "FAIL"}[tt.code == 0]; a.ActionStatus != wantStatus {
				t.Fatalf("ActionStatus %q, want %q", a.ActionStatus, wantStatus)
			}
		})
	}

	t.Run("body above 1 MiB", func(t *testing.T) {
		big := `{"Subscriber_Account":"alice","Pad":"` + strings.Repeat("x", maxBody) + `"}`
		if a := e.call(t, big); a.ErrorCode != CodeInvalidPacket {
			t.Fatalf("ErrorCode %d", a.ErrorCode)
		}
	})
}

func TestURLValidation(t *testing.T) {
	e := newEnv(t, nil)
	otherUser := genSig(t, testAppID, testKey, "someone", 86400)
	tests := []struct {
		name string
		mod  func(url.Values)
		code int
	}{
		{"valid", func(url.Values) {}, CodeOK},
		{"random max", func(q url.Values) { q.Set("random", "4294967295") }, CodeOK},
		{"random zero", func(q url.Values) { q.Set("random", "0") }, CodeOK},
		{"no contenttype", func(q url.Values) { q.Del("contenttype") }, CodeBadURL},
		{"contenttype xml", func(q url.Values) { q.Set("contenttype", "xml") }, CodeBadURL},
		{"contenttype case", func(q url.Values) { q.Set("contenttype", "JSON") }, CodeBadURL},
		{"no random", func(q url.Values) { q.Del("random") }, CodeBadURL},
		{"random above uint32", func(q url.Values) { q.Set("random", "4294967296") }, CodeBadURL},
		{"random negative", func(q url.Values) { q.Set("random", "-1") }, CodeBadURL},
		{"random text", func(q url.Values) { q.Set("random", "abc") }, CodeBadURL},
		{"no sdkappid", func(q url.Values) { q.Del("sdkappid") }, CodeNoAppID},
		{"sdkappid text", func(q url.Values) { q.Set("sdkappid", "app") }, CodeBadURL},
		{"other sdkappid", func(q url.Values) { q.Set("sdkappid", "1400000002") }, CodeAppNotFound},
		{"parameter name case", func(q url.Values) { q.Set("SDKAppID", q.Get("sdkappid")); q.Del("sdkappid") }, CodeNoAppID},
		{"no identifier", func(q url.Values) { q.Del("identifier") }, CodeNoAccount},
		{"no usersig", func(q url.Values) { q.Del("usersig") }, CodeSigInvalid},
		{"usersig not base64", func(q url.Values) { q.Set("usersig", "%%%") }, CodeSigInvalid},
		{"usersig not zlib", func(q url.Values) { q.Set("usersig", "eJyr") }, CodeSigInvalid},
		{"not the admin", func(q url.Values) { q.Set("identifier", "someone"); q.Set("usersig", otherUser) }, CodeNotAdmin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := e.params()
			tt.mod(q)
			if a := e.callWith(t, q, userBody("alice")); a.ErrorCode != tt.code {
				t.Fatalf("ErrorCode %d (%s), want %d", a.ErrorCode, a.ErrorInfo, tt.code)
			}
		})
	}
}

func TestUserSigRejections(t *testing.T) {
	tests := []struct {
		name    string
		sig     func(t *testing.T) string
		advance time.Duration // clock moved forward before the call
		code    int
	}{
		{"valid", func(t *testing.T) string { return genSig(t, testAppID, testKey, testAdmin, 3600) }, 0, CodeOK},
		{"valid until the last second", func(t *testing.T) string { return genSig(t, testAppID, testKey, testAdmin, 3600) }, 3599 * time.Second, CodeOK},
		{"expired", func(t *testing.T) string { return genSig(t, testAppID, testKey, testAdmin, 3600) }, 3602 * time.Second, CodeSigExpired},
		{"wrong key", func(t *testing.T) string { return genSig(t, testAppID, "another-key", testAdmin, 3600) }, 0, CodeSigVerify},
		{"other identifier", func(t *testing.T) string { return genSig(t, testAppID, testKey, "someone", 3600) }, 0, CodeSigIdentifier},
		{"other app", func(t *testing.T) string { return genSig(t, testAppID+1, testKey, testAdmin, 3600) }, 0, CodeSigAppID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			q := e.params()
			q.Set("usersig", tt.sig(t))
			e.clock.Advance(tt.advance)
			if a := e.callWith(t, q, userBody("alice")); a.ErrorCode != tt.code {
				t.Fatalf("ErrorCode %d (%s), want %d", a.ErrorCode, a.ErrorInfo, tt.code)
			}
		})
	}

	t.Run("expiry detected after the sig was cached", func(t *testing.T) {
		e := newEnv(t, nil)
		q := e.params()
		q.Set("usersig", genSig(t, testAppID, testKey, testAdmin, 30))
		if a := e.callWith(t, q, userBody("alice")); a.ErrorCode != 0 {
			t.Fatalf("first call: %+v", a)
		}
		e.clock.Advance(32 * time.Second) // within the cache TTL
		if a := e.callWith(t, q, userBody("alice")); a.ErrorCode != CodeSigExpired {
			t.Fatalf("after expiry: ErrorCode %d, want %d", a.ErrorCode, CodeSigExpired)
		}
	})
}

func TestMethodAndPath(t *testing.T) {
	e := newEnv(t, nil)
	q := "?" + e.params().Encode()
	tests := []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, Path + q, http.StatusMethodNotAllowed},
		{http.MethodPut, Path + q, http.StatusMethodNotAllowed},
		{http.MethodPost, "/v4/official_account_open_http_svc/get_official_account_info" + q, http.StatusNotFound},
		{http.MethodPost, "/" + q, http.StatusNotFound},
		{http.MethodPost, Path + q, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+strings.SplitN(tt.path, "?", 2)[0], func(t *testing.T) {
			if status, b := e.do(t, tt.method, tt.path, userBody("alice")); status != tt.status {
				t.Fatalf("HTTP %d, want %d: %s", status, tt.status, b)
			}
		})
	}
	// Only the POST on the endpoint counts as a call.
	if st := e.srv.Stats(); st.Total != 1 {
		t.Fatalf("Total %d, want 1", st.Total)
	}
}

func TestRandomIsNotCheckedForUniqueness(t *testing.T) {
	// The same random value may be sent twice (the service does not treat
	// it as a nonce).
	e := newEnv(t, nil)
	q := e.params()
	q.Set("random", strconv.Itoa(42))
	for range 2 {
		if a := e.callWith(t, q, userBody("alice")); a.ErrorCode != 0 {
			t.Fatalf("%+v", a)
		}
	}
}
