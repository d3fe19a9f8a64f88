package schemas_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tencentchat-enricher/enricher/schemas"
)

func newValidator(t testing.TB) *schemas.Validator {
	t.Helper()
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func ptr[T any](v T) *T { return &v }

func sampleRecord(status schemas.Status) schemas.Record {
	fetched := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	r := schemas.Record{
		SchemaVersion: schemas.RecordVersion,
		Event:         json.RawMessage(`{ "user_id" : "u1",  "html": "<a>&", "n": 1.50 }`),
		Source:        schemas.Source{Topic: "in", Partition: 3, Offset: 42, Timestamp: fetched, Key: ptr("k")},
		Enrichment: schemas.Enrichment{
			Status: status, Complete: true, FetchedAt: &fetched, Cache: schemas.CacheMiss,
		},
		ProcessedAt: fetched,
	}
	if status == schemas.StatusOK {
		r.Enrichment.TotalCount = 2
		r.Enrichment.OfficialAccounts = []schemas.OfficialAccount{
			{OfficialAccount: "@TOA#_a", Name: ptr("A"), OwnerAccount: ptr("o"), CreateTime: ptr(int64(1)),
				LastMsgTime: ptr(int64(2)), SubscriberNum: ptr(int64(3)), Introduction: ptr("i"), FaceURL: ptr("http://f"),
				Organization: ptr("org"), CustomString: ptr(""), SelfInfo: &schemas.SelfInfo{SubscribeTime: ptr(int64(4)), CustomString: ptr("")}},
			{OfficialAccount: "@TOA#_b"},
		}
	}
	if status == schemas.StatusUnavailable {
		r.Enrichment.FetchedAt = nil
		r.Enrichment.Complete = false
		r.Source.Key = nil
	}
	return r
}

func TestEncodedRecordsValidate(t *testing.T) {
	v := newValidator(t)
	for _, st := range []schemas.Status{schemas.StatusOK, schemas.StatusUserNotFound, schemas.StatusInvalidUser, schemas.StatusUnavailable} {
		t.Run(string(st), func(t *testing.T) {
			r := sampleRecord(st)
			b, err := r.Encode(nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.ValidateRecord(b); err != nil {
				t.Fatalf("%s\n%v", b, err)
			}
			// The event is embedded byte for byte.
			if !bytes.Contains(b, r.Event) {
				t.Fatalf("event not verbatim in %s", b)
			}
			var back schemas.Record
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back.Event, r.Event) || back.Enrichment.Status != st || back.Source.Offset != 42 {
				t.Fatalf("round trip: %+v", back)
			}
			if !back.ProcessedAt.Equal(r.ProcessedAt) || back.ProcessedAt.Location() != time.UTC {
				t.Fatalf("processed_at %v, want %v in UTC", back.ProcessedAt, r.ProcessedAt)
			}
		})
	}
}

func TestInvalidRecordsRejected(t *testing.T) {
	v := newValidator(t)
	good, err := func() ([]byte, error) { r := sampleRecord(schemas.StatusOK); return r.Encode(nil) }()
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	enr := func(m map[string]any) map[string]any { return m["enrichment"].(map[string]any) }
	tests := []struct {
		name string
		doc  []byte
	}{
		{"not json", []byte(`{"schema_version":`)},
		{"wrong version", mutate(func(m map[string]any) { m["schema_version"] = "enriched-record.v0" })},
		{"missing event", mutate(func(m map[string]any) { delete(m, "event") })},
		{"event not object", mutate(func(m map[string]any) { m["event"] = "x" })},
		{"extra field", mutate(func(m map[string]any) { m["extra"] = 1 })},
		{"bad status", mutate(func(m map[string]any) { enr(m)["status"] = "error" })},
		{"bad cache", mutate(func(m map[string]any) { enr(m)["cache"] = "maybe" })},
		{"bad fetched_at", mutate(func(m map[string]any) { enr(m)["fetched_at"] = "yesterday" })},
		{"negative offset", mutate(func(m map[string]any) { m["source"].(map[string]any)["offset"] = -1 })},
		{"missing key", mutate(func(m map[string]any) { delete(m["source"].(map[string]any), "key") })},
		{"account without id", mutate(func(m map[string]any) {
			enr(m)["official_accounts"] = []any{map[string]any{"name": "x"}}
		})},
		{"account unknown field", mutate(func(m map[string]any) {
			enr(m)["official_accounts"] = []any{map[string]any{"official_account": "@TOA#_x", "Name": "x"}}
		})},
		{"self_info wrong type", mutate(func(m map[string]any) {
			enr(m)["official_accounts"] = []any{map[string]any{"official_account": "@TOA#_x", "self_info": map[string]any{"subscribe_time": "now"}}}
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := v.ValidateRecord(tc.doc); err == nil {
				t.Fatalf("accepted %s", tc.doc)
			}
		})
	}
}

func TestValidateEvent(t *testing.T) {
	v := newValidator(t)
	tests := []struct {
		doc  string
		want bool
	}{
		{`{"user_id":"u1"}`, true},
		{`{"user_id":"u1","anything":[1,{"x":null}]}`, true},
		{`{"user_id":""}`, false},
		{`{"user_id":7}`, false},
		{`{"user":"u1"}`, false},
		{`["u1"]`, false},
		{`nope`, false},
	}
	for _, tc := range tests {
		err := v.ValidateEvent([]byte(tc.doc))
		if (err == nil) != tc.want {
			t.Errorf("ValidateEvent(%s) = %v, want valid=%v", tc.doc, err, tc.want)
		}
	}
}

func TestEncodeRejectsEmptyEvent(t *testing.T) {
	r := sampleRecord(schemas.StatusOK)
	r.Event = nil
	if _, err := r.Encode(nil); err == nil {
		t.Fatal("encoded a record without event")
	}
}

// Every field of the output schema is documented.
func TestSchemaFieldsDocumented(t *testing.T) {
	for _, name := range []string{schemas.UserEventV1File, schemas.EnrichedRecordV1File, schemas.ChangeV1File} {
		b, err := schemas.Files.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		var walk func(path string, n any)
		walk = func(path string, n any) {
			m, ok := n.(map[string]any)
			if !ok {
				return
			}
			if props, ok := m["properties"].(map[string]any); ok {
				for k, p := range props {
					pm := p.(map[string]any)
					if _, ok := pm["description"]; !ok {
						t.Errorf("%s: %s/%s has no description", name, path, k)
					}
					walk(path+"/"+k, p)
				}
			}
			if defs, ok := m["$defs"].(map[string]any); ok {
				for k, d := range defs {
					walk(path+"/$defs/"+k, d)
				}
			}
			if items, ok := m["items"]; ok {
				walk(path+"/items", items)
			}
		}
		walk("", doc)
	}
}

func BenchmarkEncode(b *testing.B) {
	r := sampleRecord(schemas.StatusOK)
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = r.Encode(buf[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleRecord_Encode() {
	r := schemas.Record{
		SchemaVersion: schemas.RecordVersion,
		Event:         json.RawMessage(`{"user_id": "u1"}`),
		Source:        schemas.Source{Topic: "user-events", Offset: 7, Timestamp: time.Unix(0, 0)},
		Enrichment:    schemas.Enrichment{Status: schemas.StatusUserNotFound, Complete: true, Cache: schemas.CacheMiss},
		ProcessedAt:   time.Unix(1, 0),
	}
	b, _ := r.Encode(nil)
	fmt.Println(strings.SplitN(string(b), `,"source"`, 2)[0])
	// Output:
	// {"event":{"user_id": "u1"},"schema_version":"enriched-record.v1"
}

// FuzzValidateRecord: the validator never panics on outside bytes, and what
// it accepts decodes into a Record with a known status.
func FuzzValidateRecord(f *testing.F) {
	r := sampleRecord(schemas.StatusOK)
	good, err := r.Encode(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`nope`))
	v := newValidator(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if v.ValidateRecord(data) != nil {
			return
		}
		var rec schemas.Record
		if err := json.Unmarshal(data, &rec); err != nil {
			t.Fatalf("valid record does not decode: %v", err)
		}
		switch rec.Enrichment.Status {
		case schemas.StatusOK, schemas.StatusUserNotFound, schemas.StatusInvalidUser, schemas.StatusUnavailable:
		default:
			t.Fatalf("valid record with status %q", rec.Enrichment.Status)
		}
	})
}

// BenchmarkAppendRecord writes a record around an enrichment encoded once,
// as the processor does for a cached user.
func BenchmarkAppendRecord(b *testing.B) {
	r := sampleRecord(schemas.StatusOK)
	e, err := schemas.EncodeEnrichment(r.Enrichment, nil)
	if err != nil {
		b.Fatal(err)
	}
	parts := schemas.RecordParts{Event: r.Event, Topic: r.Source.Topic, Partition: r.Source.Partition, Offset: r.Source.Offset,
		Timestamp: r.Source.Timestamp, Key: []byte(*r.Source.Key), Cache: schemas.CacheHit, ProcessedAt: r.ProcessedAt}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = e.AppendRecord(buf[:0], &parts); err != nil {
			b.Fatal(err)
		}
	}
}
