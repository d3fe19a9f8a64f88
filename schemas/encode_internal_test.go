package schemas

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// reflective is the encoding encoding/json gives a Record (the encoder
// before records were spliced): the reference the spliced encoding must
// equal byte for byte.
func reflective(t testing.TB, r Record) []byte {
	t.Helper()
	type rest struct {
		SchemaVersion string     `json:"schema_version"`
		Source        Source     `json:"source"`
		Enrichment    Enrichment `json:"enrichment"`
		ProcessedAt   time.Time  `json:"processed_at"`
	}
	x := rest{SchemaVersion: RecordVersion, Source: r.Source, Enrichment: r.Enrichment, ProcessedAt: r.ProcessedAt.UTC()}
	x.Source.Timestamp = x.Source.Timestamp.UTC()
	if x.Enrichment.FetchedAt != nil {
		f := x.Enrichment.FetchedAt.UTC()
		x.Enrichment.FetchedAt = &f
	}
	if x.Enrichment.OfficialAccounts == nil {
		x.Enrichment.OfficialAccounts = []OfficialAccount{}
	}
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	return append(append(append([]byte(`{"event":`), r.Event...), ','), b[1:]...)
}

func p[T any](v T) *T { return &v }

// nasty are strings needing JSON escaping, or checking that none is done.
var nasty = []string{
	"", "plain", `quote " and \ backslash`, "<script>&amp;</script>", "tab\tnl\ncr\rbs\bff\f",
	"\x00\x01\x1f\x7f", "é 中文 🎉", "bad utf8 \xff\xfe end", "\xc3", "line sep \u2028 para \u2029",
	"\xed\xa0\x80 surrogate", strings.Repeat("x", 300),
}

func fullAccount(s string, n int64) OfficialAccount {
	return OfficialAccount{
		OfficialAccount: "@TOA#_" + s, Name: p(s), OwnerAccount: p(s), CreateTime: p(n), LastMsgTime: p(-n),
		SubscriberNum: p(n * 1000), Introduction: p(s + s), FaceURL: p("https://x/?a=1&b=<" + s), Organization: p(s),
		CustomString: p(s), SelfInfo: &SelfInfo{SubscribeTime: p(n + 1), CustomString: p(s)},
	}
}

func TestSplicedEqualsReflective(t *testing.T) {
	at := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.FixedZone("x", -7200))
	var records []Record
	for i, s := range nasty {
		key := s
		accounts := []OfficialAccount{fullAccount(s, int64(i)), {OfficialAccount: "@TOA#_bare"},
			{OfficialAccount: "@TOA#_self", SelfInfo: &SelfInfo{}}, {OfficialAccount: "@TOA#_" + s, Name: p(s), SelfInfo: &SelfInfo{CustomString: p(s)}}}
		records = append(records,
			Record{Event: []byte(`{"user_id":"u","s":` + string(mustJSON(t, s)) + `}`),
				Source:      Source{Topic: "t-" + s, Partition: i, Offset: int64(i) << 40, Timestamp: at, Key: &key},
				Enrichment:  Enrichment{Status: StatusOK, OfficialAccounts: accounts, TotalCount: 4, Complete: true, FetchedAt: &at, Cache: CacheHit},
				ProcessedAt: at.Add(time.Duration(i) * time.Millisecond)},
			Record{Event: []byte(` { "user_id" : "u" } `), Source: Source{Topic: "in", Timestamp: time.Unix(0, 0)},
				Enrichment:  Enrichment{Status: StatusUnavailable, Cache: CacheMiss},
				ProcessedAt: time.Unix(int64(i), 0)},
			Record{Event: []byte(`{}`), Source: Source{Topic: "in", Key: p(""), Timestamp: at},
				Enrichment:  Enrichment{Status: StatusUserNotFound, OfficialAccounts: []OfficialAccount{}, Complete: true, FetchedAt: &at, Cache: CacheStale},
				ProcessedAt: at})
	}
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range records {
		got, err := r.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := reflective(t, r); !bytes.Equal(got, want) {
			t.Fatalf("record %d:\n got %s\nwant %s", i, got, want)
		}
		if err := v.ValidateRecord(got); err != nil {
			t.Fatalf("record %d: %v\n%s", i, err, got)
		}
	}
}

func mustJSON(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEncodeCoversEveryField fails when a field added to OfficialAccount
// or SelfInfo is not written like encoding/json writes it: every field is
// set, through reflection, and the encodings compared.
func TestEncodeCoversEveryField(t *testing.T) {
	var a OfficialAccount
	fill(reflect.ValueOf(&a).Elem())
	r := Record{Event: []byte(`{}`), Source: Source{Topic: "in"},
		Enrichment: Enrichment{Status: StatusOK, OfficialAccounts: []OfficialAccount{a, a}}}
	got, err := r.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := reflective(t, r); !bytes.Equal(got, want) {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i))
		}
	case reflect.String:
		v.SetString("v<&>")
	case reflect.Int64, reflect.Int:
		v.SetInt(7)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range nasty {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}

func FuzzRecordEncode(f *testing.F) {
	for _, s := range nasty {
		f.Add(s, s, s, int64(len(s)))
	}
	f.Fuzz(func(t *testing.T, topic, key, field string, n int64) {
		at := time.Unix(n%(1<<35), n%1e9)
		r := Record{Event: []byte(`{"a":1}`), Source: Source{Topic: topic, Key: &key, Offset: n, Timestamp: at},
			Enrichment:  Enrichment{Status: StatusOK, OfficialAccounts: []OfficialAccount{fullAccount(field, n)}, TotalCount: 1, FetchedAt: &at, Cache: CacheHit},
			ProcessedAt: at}
		got, err := r.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := reflective(t, r); !bytes.Equal(got, want) {
			t.Fatalf("got %s\nwant %s", got, want)
		}
	})
}

func TestFields(t *testing.T) {
	if f, err := ParseFields(nil); err != nil || f != nil {
		t.Fatalf("no names: %v %v, want all fields (nil)", f, err)
	}
	if _, err := ParseFields([]string{"official_account", "colour"}); err == nil || !strings.Contains(err.Error(), `"colour"`) {
		t.Fatalf("unknown field: %v", err)
	}
	f, err := ParseFields([]string{"official_account", " subscribe_time "})
	if err != nil {
		t.Fatal(err)
	}
	base, self := f.APIFilter()
	if !reflect.DeepEqual(base, []string{"CreateTime"}) || !reflect.DeepEqual(self, []string{"SubscribeTime"}) {
		t.Fatalf("filter %v %v", base, self)
	}
	a := fullAccount("x", 5)
	e, err := EncodeEnrichment(Enrichment{Status: StatusOK, OfficialAccounts: []OfficialAccount{a}}, f)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(e.AppendAccounts(nil)); got != `[{"official_account":"@TOA#_x","self_info":{"subscribe_time":6}}]` {
		t.Fatalf("projected %s", got)
	}
	f, err = ParseFields([]string{"name", "custom_string", "self_info.custom_string", "face_url"})
	if err != nil {
		t.Fatal(err)
	}
	base, self = f.APIFilter()
	if !reflect.DeepEqual(base, []string{"Name", "FaceUrl", "CustomString"}) || !reflect.DeepEqual(self, []string{"CustomString"}) {
		t.Fatalf("filter %v %v", base, self)
	}
	e, _ = EncodeEnrichment(Enrichment{Status: StatusOK, OfficialAccounts: []OfficialAccount{a, {OfficialAccount: "@TOA#_y"}}}, f)
	if got := string(e.AppendAccounts(nil)); got != `[{"official_account":"@TOA#_x","name":"x","face_url":"https://x/?a=1\u0026b=\u003cx","custom_string":"x","self_info":{"custom_string":"x"}},{"official_account":"@TOA#_y"}]` {
		t.Fatalf("projected %s", got)
	}
	if *a.SelfInfo.SubscribeTime != 6 {
		t.Fatal("projection modified its input")
	}
	if f, _ := ParseFields([]string{"self_info"}); len(f.self) != 2 || len(f.base) != 0 {
		t.Fatalf("self_info selects %v %v", f.base, f.self)
	}
}

// TestAccountsInterned: one account's encoding is held once, whichever
// users' enrichments carry it.
func TestAccountsInterned(t *testing.T) {
	a := fullAccount("shared", 1)
	b := a
	b.SelfInfo = &SelfInfo{SubscribeTime: p(int64(99))}
	e1, _ := EncodeEnrichment(Enrichment{Status: StatusOK, OfficialAccounts: []OfficialAccount{a}}, nil)
	e2, _ := EncodeEnrichment(Enrichment{Status: StatusOK, OfficialAccounts: []OfficialAccount{b}}, nil)
	if e1.items[0].base != e2.items[0].base {
		t.Fatal("the same account is encoded twice")
	}
	if bytes.Equal(e1.AppendAccounts(nil), e2.AppendAccounts(nil)) {
		t.Fatal("self_info lost")
	}
}

// TestEnrichedExactSize checks that an encoded enrichment keeps no spare
// capacity (a cache holds one per user), and that encodings one after the
// other, through the same pooled buffer, do not share bytes.
func TestEnrichedExactSize(t *testing.T) {
	var prev *Enriched
	var want []byte
	for n := range 40 {
		accounts := make([]OfficialAccount, n)
		for i := range accounts {
			accounts[i] = fullAccount(nasty[(n+i)%len(nasty)], int64(n*100+i))
		}
		e, err := EncodeEnrichment(Enrichment{Status: StatusOK, OfficialAccounts: accounts, TotalCount: n}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if cap(e.meta) != len(e.meta) || cap(e.selfs) != len(e.selfs) {
			t.Fatalf("%d accounts: meta %d of %d, selfs %d of %d bytes used", n, len(e.meta), cap(e.meta), len(e.selfs), cap(e.selfs))
		}
		if prev != nil && !bytes.Equal(prev.AppendAccounts(nil), want) {
			t.Fatalf("%d accounts: the previous encoding changed", n)
		}
		prev, want = e, e.AppendAccounts(nil)
	}
}
