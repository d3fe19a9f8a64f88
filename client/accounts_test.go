package client

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// legacyAccount and legacyResponse are the hand-written wire types the
// tag-driven decoder replaced; the tests hold the decoder to them.
type legacyAccount struct {
	OfficialAccount string          `json:"Official_Account"`
	Name            *string         `json:"Name,omitempty"`
	OwnerAccount    *string         `json:"Owner_Account,omitempty"`
	CreateTime      *int64          `json:"CreateTime,omitempty"`
	LastMsgTime     *int64          `json:"LastMsgTime,omitempty"`
	SubscriberNum   *int64          `json:"SubscriberNum,omitempty"`
	Introduction    *string         `json:"Introduction,omitempty"`
	FaceURL         *string         `json:"FaceUrl,omitempty"`
	Organization    *string         `json:"Organization,omitempty"`
	CustomString    *string         `json:"CustomString,omitempty"`
	SelfInfo        *legacySelfInfo `json:"SelfInfo,omitempty"`
}

type legacySelfInfo struct {
	SubscribeTime *int64  `json:"SubscribeTime,omitempty"`
	CustomString  *string `json:"CustomString,omitempty"`
}

type legacyResponse struct {
	ActionStatus            string          `json:"ActionStatus"`
	ErrorCode               int             `json:"ErrorCode"`
	ErrorInfo               string          `json:"ErrorInfo"`
	TotalCount              int             `json:"TotalCount"`
	OfficialAccountInfoList []legacyAccount `json:"OfficialAccountInfoList"`
	CompleteFlag            int             `json:"CompleteFlag"`
	Next                    uint64          `json:"Next"`
}

// legacyDecode is decodeResponse as it was with the legacy types.
func legacyDecode(body []byte, httpStatus int) (*Page, error) {
	var w legacyResponse
	err := json.Unmarshal(body, &w)
	if httpStatus != 200 {
		apiErr := &APIError{HTTPStatus: httpStatus}
		if err == nil && w.ErrorCode != 0 {
			apiErr.Code, apiErr.Info = w.ErrorCode, w.ErrorInfo
		}
		return nil, apiErr
	}
	if err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	if w.ErrorCode != 0 || w.ActionStatus != "OK" {
		return nil, &APIError{Code: w.ErrorCode, Info: w.ErrorInfo, HTTPStatus: httpStatus}
	}
	if w.CompleteFlag != 0 && w.CompleteFlag != 1 {
		return nil, fmt.Errorf("decode response: CompleteFlag %d is neither 0 nor 1", w.CompleteFlag)
	}
	var accounts []OfficialAccount
	if w.OfficialAccountInfoList != nil {
		accounts = make([]OfficialAccount, len(w.OfficialAccountInfoList))
	}
	for i, a := range w.OfficialAccountInfoList {
		accounts[i] = OfficialAccount{OfficialAccount: a.OfficialAccount, Name: a.Name, OwnerAccount: a.OwnerAccount,
			CreateTime: a.CreateTime, LastMsgTime: a.LastMsgTime, SubscriberNum: a.SubscriberNum,
			Introduction: a.Introduction, FaceURL: a.FaceURL, Organization: a.Organization, CustomString: a.CustomString}
		if a.SelfInfo != nil {
			accounts[i].SelfInfo = &SelfInfo{SubscribeTime: a.SelfInfo.SubscribeTime, CustomString: a.SelfInfo.CustomString}
		}
	}
	return &Page{Accounts: accounts, TotalCount: w.TotalCount, CompleteFlag: w.CompleteFlag, Next: w.Next}, nil
}

// sameDecoding fails t when decodeResponse and legacyDecode disagree on body.
func sameDecoding(t *testing.T, body []byte, status int) {
	t.Helper()
	p, err := decodeResponse(body, status)
	lp, lerr := legacyDecode(body, status)
	if (err == nil) != (lerr == nil) {
		t.Fatalf("error %v, legacy error %v", err, lerr)
	}
	if apiErr, ok := err.(*APIError); ok && !reflect.DeepEqual(apiErr, lerr) {
		t.Fatalf("APIError %+v, legacy %+v", apiErr, lerr)
	}
	if !reflect.DeepEqual(p, lp) {
		a, _ := json.Marshal(p)
		b, _ := json.Marshal(lp)
		t.Fatalf("page\n %s\nlegacy\n %s", a, b)
	}
}

var decodeSamples = []string{
	specSample,
	`{"ActionStatus":"OK","ErrorCode":0,"OfficialAccountInfoList":[]}`,
	`{"ActionStatus":"OK","ErrorCode":0,"OfficialAccountInfoList":null}`,
	`{"ActionStatus":"OK","ErrorCode":0,"OfficialAccountInfoList":[{"SelfInfo":null,"Name":null}]}`,
	// names match case-insensitively, as encoding/json does
	`{"ActionStatus":"OK","OfficialAccountInfoList":[{"official_account":"a","NAME":"n","selfinfo":{"subscribetime":1}}]}`,
	// a repeated list merges into the first, as encoding/json does
	`{"ActionStatus":"OK","OfficialAccountInfoList":[{"Name":"a","CreateTime":1}],"OfficialAccountInfoList":[{"Name":"b"}]}`,
	`{"ActionStatus":"OK","OfficialAccountInfoList":[{"SelfInfo":{"CustomString":"x"},"SelfInfo":{"SubscribeTime":2}}]}`,
	// type errors, in and after the list
	`{"ActionStatus":"OK","OfficialAccountInfoList":[{"Name":5}]}`,
	`{"ActionStatus":"OK","OfficialAccountInfoList":5}`,
	`{"ActionStatus":"OK","OfficialAccountInfoList":[{"SelfInfo":[]}],"ErrorCode":"x"}`,
	`{"ActionStatus":"FAIL","ErrorCode":60007,"OfficialAccountInfoList":[{"Name":5}]}`,
	`{"ActionStatus":"OK","OfficialAccountInfoList":[1,{"Name":"b"}]}`,
	`[]`, `null`, `{}`, `"OK"`, ``,
}

// TestDecodeMatchesLegacyWireTypes: the tag-driven decoder gives what the
// hand-written wire types gave, for good answers and broken ones.
func TestDecodeMatchesLegacyWireTypes(t *testing.T) {
	for _, body := range decodeSamples {
		for _, status := range []int{200, 500} {
			t.Run(fmt.Sprintf("%d %.40s", status, body), func(t *testing.T) { sameDecoding(t, []byte(body), status) })
		}
	}
}

// FuzzDecodeMatchesLegacy decodes outside bytes with both decoders.
func FuzzDecodeMatchesLegacy(f *testing.F) {
	for _, s := range decodeSamples {
		f.Add([]byte(s), 200)
	}
	f.Add([]byte(`{"ErrorCode":130004,"OfficialAccountInfoList":[{}]}`), 502)
	f.Fuzz(func(t *testing.T, body []byte, status int) { sameDecoding(t, body, status) })
}

// TestFilterFieldsFromTags: the filter lists are the API names of the
// optional fields, the same names the spec lists.
func TestFilterFieldsFromTags(t *testing.T) {
	base := []string{"CreateTime", "Name", "Owner_Account", "LastMsgTime", "SubscriberNum",
		"Introduction", "FaceUrl", "Organization", "CustomString"}
	if got := slices.Sorted(slices.Values(BaseInfoFields)); !slices.Equal(got, slices.Sorted(slices.Values(base))) {
		t.Errorf("BaseInfoFields = %q", BaseInfoFields)
	}
	if !slices.Equal(SelfInfoFields, []string{"SubscribeTime", "CustomString"}) {
		t.Errorf("SelfInfoFields = %q", SelfInfoFields)
	}
}

func TestMirrorNeedsAPITags(t *testing.T) {
	type untagged struct {
		Name *string `json:"name"`
	}
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "Name has no api tag") {
			t.Errorf("panic = %v", p)
		}
	}()
	newMirror(reflect.TypeFor[untagged]())
}

// pageBody is a full page of n accounts with every field set.
func pageBody(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","TotalCount":500,"CompleteFlag":0,"Next":200,"OfficialAccountInfoList":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"Official_Account":"@TOA#_%d","Name":"account %d","Owner_Account":"owner","CreateTime":1698800000,`+
			`"LastMsgTime":1698894911,"SubscriberNum":499800,"Introduction":"intro","FaceUrl":"http://face.url/%d",`+
			`"Organization":"org","CustomString":"custom","SelfInfo":{"SubscribeTime":1700655351,"CustomString":""}}`, i, i, i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// BenchmarkDecodePage and BenchmarkDecodePageLegacy compare the decoders
// on a full page (200 accounts).
func BenchmarkDecodePage(b *testing.B) {
	body := pageBody(MaxPageLimit)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := decodeResponse(body, 200); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePageLegacy(b *testing.B) {
	body := pageBody(MaxPageLimit)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := legacyDecode(body, 200); err != nil {
			b.Fatal(err)
		}
	}
}
