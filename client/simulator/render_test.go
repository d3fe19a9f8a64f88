package simulator

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestRenderEscapesStrings(t *testing.T) {
	odd := []string{"", "plain", `quote " and \ backslash`, "line\nbreak\ttab\x01", "中文 ünïcode 😀", "<script>&</script>", "\u2028\u2029", "\xff invalid utf-8"}
	for _, s := range odd {
		acc := Account{OfficialAccount: "@TOA#_x", Name: s, OwnerAccount: s, Introduction: s, FaceURL: s, Organization: s, CustomString: s, CreateTime: -1, SubscriberNum: 1 << 40}
		d, err := NewDataset([]Account{acc}, map[string][]Subscription{"u": {{OfficialAccount: "@TOA#_x", SubscribeTime: 5, CustomString: s}}})
		if err != nil {
			t.Fatal(err)
		}
		sim := &Simulator{data: d}
		b := sim.appendPage(nil, pageRequest{user: "u", limit: 10, base: allBase, self: allSelf}, 1)
		var got struct {
			OfficialAccountInfoList []struct {
				Account
				SelfInfo Subscription
			}
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q: invalid JSON %s: %v", s, b, err)
		}
		// Invalid UTF-8 comes back as U+FFFD, as encoding/json writes it.
		want := acc
		var norm string
		_ = json.Unmarshal(must(json.Marshal(s)), &norm)
		want.Name, want.OwnerAccount, want.Introduction, want.FaceURL, want.Organization, want.CustomString = norm, norm, norm, norm, norm, norm
		it := got.OfficialAccountInfoList[0]
		if !reflect.DeepEqual(it.Account, want) || it.SelfInfo.CustomString != norm || it.SelfInfo.SubscribeTime != 5 {
			t.Fatalf("%q: got %+v", s, it)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
