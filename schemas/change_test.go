package schemas_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tencentchat-enricher/enricher/schemas"
)

// TestChangeValidates: a SubscriptionChange as the processor marshals it
// validates, with and without an operator; broken ones do not.
func TestChangeValidates(t *testing.T) {
	v := newValidator(t)
	at := time.UnixMilli(1670574414123).UTC()
	good := schemas.SubscriptionChange{
		SchemaVersion: schemas.ChangeVersion, UserID: "jared", OfficialAccount: "@TOA#_example",
		Change: schemas.ChangeSubscribed, EventTime: at, OperatorAccount: "107867", ReceivedAt: at.Add(time.Second),
	}
	for _, c := range []schemas.SubscriptionChange{good, func() schemas.SubscriptionChange {
		c := good
		c.Change, c.OperatorAccount = schemas.ChangeUnsubscribed, ""
		return c
	}()} {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.ValidateChange(b); err != nil {
			t.Errorf("%s: %v", b, err)
		}
		if !strings.Contains(string(b), `"event_time":"2022-12-09T08:26:54.123Z"`) {
			t.Errorf("event time not in milliseconds, UTC: %s", b)
		}
	}
	b, _ := json.Marshal(good)
	for name, edit := range map[string]func(m map[string]any){
		"no user":        func(m map[string]any) { delete(m, "user_id") },
		"empty account":  func(m map[string]any) { m["official_account"] = "" },
		"unknown change": func(m map[string]any) { m["change"] = "renamed" },
		"bad time":       func(m map[string]any) { m["event_time"] = "yesterday" },
		"extra field":    func(m map[string]any) { m["extra"] = 1 },
		"other version":  func(m map[string]any) { m["schema_version"] = "subscription-change.v2" },
	} {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		bad, _ := json.Marshal(m)
		if err := v.ValidateChange(bad); err == nil {
			t.Errorf("%s: %s validated", name, bad)
		}
	}
}
