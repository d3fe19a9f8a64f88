package simulator

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

const sampleDataset = `{
  "OfficialAccounts": [
    {"Official_Account": "@TOA#_news", "Name": "News", "Owner_Account": "107867", "CreateTime": 1690000000,
     "LastMsgTime": 1698894911, "SubscriberNum": 499800, "Introduction": "intro", "FaceUrl": "http://face",
     "Organization": "Tencent", "CustomString": "c"},
    {"Official_Account": "@TOA#_sport", "Name": "Sport"}
  ],
  "Subscriptions": {
    "107867": [{"Official_Account": "@TOA#_sport", "SubscribeTime": 1700655351, "CustomString": ""},
               {"Official_Account": "@TOA#_news", "SubscribeTime": 1700655352, "CustomString": "x"}],
    "lurker": []
  }
}`

func TestLoadDataset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.json")
	if err := os.WriteFile(path, []byte(sampleDataset), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := LoadDataset(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Subscription{
		{OfficialAccount: "@TOA#_sport", SubscribeTime: 1700655351},
		{OfficialAccount: "@TOA#_news", SubscribeTime: 1700655352, CustomString: "x"},
	}
	if got := d.Subscriptions("107867"); !reflect.DeepEqual(got, want) {
		t.Fatalf("subscriptions %+v", got)
	}
	if !d.Known("lurker") || d.SubscriptionCount("lurker") != 0 || d.Subscriptions("lurker") == nil {
		t.Fatal("lurker should exist without subscriptions")
	}
	if d.Known("user-0") || d.Subscriptions("user-0") != nil {
		t.Fatal("a user absent from the file is known")
	}
	if acc, ok := d.Account("@TOA#_news"); !ok || acc.SubscriberNum != 499800 || acc.FaceURL != "http://face" {
		t.Fatalf("account %+v", acc)
	}
	if _, err := LoadDataset(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("a missing file loaded")
	}
}

func TestParseDatasetRejects(t *testing.T) {
	tests := []struct{ name, json string }{
		{"not JSON", `{`},
		{"trailing data", `{} {}`},
		{"unknown field", `{"Accounts": []}`},
		{"no prefix", `{"OfficialAccounts":[{"Official_Account":"news"}]}`},
		{"prefix only", `{"OfficialAccounts":[{"Official_Account":"@TOA#_"}]}`},
		{"too long", `{"OfficialAccounts":[{"Official_Account":"@TOA#_0123456789012345678901234567890123456789012"}]}`},
		{"duplicate account", `{"OfficialAccounts":[{"Official_Account":"@TOA#_a"},{"Official_Account":"@TOA#_a"}]}`},
		{"unknown account", `{"OfficialAccounts":[{"Official_Account":"@TOA#_a"}],"Subscriptions":{"u":[{"Official_Account":"@TOA#_b"}]}}`},
		{"subscribed twice", `{"OfficialAccounts":[{"Official_Account":"@TOA#_a"}],"Subscriptions":{"u":[{"Official_Account":"@TOA#_a"},{"Official_Account":"@TOA#_a"}]}}`},
		{"empty user", `{"OfficialAccounts":[{"Official_Account":"@TOA#_a"}],"Subscriptions":{"":[]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseDataset([]byte(tt.json)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
