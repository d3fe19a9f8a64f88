package simulator

import (
	"encoding/json"
	"testing"
)

func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		``, `null`, `[]`, `{}`, `{"Subscriber_Account":"107867"}`,
		`{"Subscriber_Account":"107867","Limit":200,"Offset":0,"ResponseFilter":{"OfficialAccountBaseInfoFilter":["CreateTime","Name","Owner_Account","LastMsgTime","SubscriberNum","Introduction","FaceUrl","Organization","CustomString"],"SelfInfoFilter":["SubscribeTime","CustomString"]}}`,
		`{"Subscriber_Account":"a","Limit":1.5}`, `{"Subscriber_Account":"a","Offset":-1}`,
		`{"Subscriber_Account":"a","ResponseFilter":{"SelfInfoFilter":["x"]}}`,
		`{"Subscriber_Account":"a","Offset":18446744073709551615}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, bad := decodeRequest(body)
		if !json.Valid(body) {
			if bad == nil || bad.code != CodeInvalidPacket {
				t.Fatalf("invalid JSON %q decoded: %+v %+v", body, req, bad)
			}
			return
		}
		if bad != nil {
			if bad.code != CodeInvalidPacket && bad.code != CodeInvalidParameter {
				t.Fatalf("code %d", bad.code)
			}
			if bad.info == "" {
				t.Fatal("no ErrorInfo")
			}
			return
		}
		if req.user == "" || req.limit < 1 || req.limit > maxPage || req.base == 0 || req.base&^allBase != 0 || req.self == 0 || req.self&^allSelf != 0 {
			t.Fatalf("accepted an invalid request %+v from %q", req, body)
		}
		// The accepted user is what the body says.
		var m struct {
			U string `json:"Subscriber_Account"`
		}
		if err := json.Unmarshal(body, &m); err == nil && m.U != req.user {
			t.Fatalf("user %q, body says %q", req.user, m.U)
		}
	})
}

func FuzzParseDataset(f *testing.F) {
	f.Add([]byte(sampleDataset))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"OfficialAccounts":[{"Official_Account":"@TOA#_a"}],"Subscriptions":{"u":[{"Official_Account":"@TOA#_a"}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDataset(b)
		if err != nil {
			return
		}
		var file DatasetFile
		if err := json.Unmarshal(b, &file); err != nil {
			t.Fatalf("accepted what encoding/json refuses: %v", err)
		}
		for user, subs := range file.Subscriptions {
			got := d.Subscriptions(user)
			if len(got) != len(subs) || !d.Known(user) {
				t.Fatalf("user %q: %d subscriptions, file has %d", user, len(got), len(subs))
			}
			for _, s := range got {
				if _, ok := d.Account(s.OfficialAccount); !ok {
					t.Fatalf("user %q subscribes to missing %q", user, s.OfficialAccount)
				}
			}
		}
	})
}

func FuzzDecodeFaults(f *testing.F) {
	f.Add([]byte(`{"Latency":"20ms","Jitter":"40ms","P502":0.01,"ForceCode":{"u":130004}}`))
	f.Add([]byte(`{"OutageFor":1000000000,"ForceCode":null}`))
	f.Add([]byte(`{"P502":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cur := Faults{Latency: 1, ForceCode: map[string]int{"keep": 1}}
		got, err := decodeFaults(cur, b)
		if cur.ForceCode["keep"] != 1 || len(cur.ForceCode) != 1 {
			t.Fatal("decodeFaults changed the current faults")
		}
		if err != nil {
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("accepted invalid faults: %v", err)
		}
		for u, c := range got.ForceCode {
			if c == 0 {
				t.Fatalf("kept a 0 code for %q", u)
			}
		}
	})
}
