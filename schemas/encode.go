package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unique"
	"unsafe"
)

// The encoding of an enriched record, in two parts: the enrichment, encoded
// once per answer of the API (EncodeEnrichment, with encoding/json, when a
// user is fetched or loaded into a cache), and the record around it,
// appended per record without reflection (Enriched.AppendRecord). The
// bytes are those encoding/json writes for Record (field order, escaping,
// RFC 3339 times in UTC), with the event embedded byte for byte.
//
// Accounts are interned: the encoding of an account without its self_info
// is held once per process however many users subscribe to it (package
// unique; an encoding no cached user holds any more is dropped).

// Enriched is a user's enrichment, encoded: everything of the record's
// enrichment object but its cache field. It is immutable and safe for
// concurrent use; the zero value is not valid (use EncodeEnrichment).
type Enriched struct {
	meta  []byte // `"status":…,"official_accounts":[` then, from split, `],"total_count":…,"fetched_at":…,`
	split int
	items []encodedAccount
	selfs []byte // each account's end: `,"self_info":{…}}` or `}`
	size  int    // bytes AppendEnrichment writes, without the cache field
}

// encodedAccount is one item of official_accounts: its interned encoding
// without self_info and the closing brace, and where its end ends in selfs.
type encodedAccount struct {
	base    unique.Handle[string]
	selfEnd uint32
}

// EncodeEnrichment encodes e (its Cache field is ignored: it is per record)
// with only the account fields of f (nil: all fields).
func EncodeEnrichment(e Enrichment, f *Fields) (*Enriched, error) {
	out := &Enriched{items: make([]encodedAccount, 0, len(e.OfficialAccounts))}
	// meta and selfs are built in a pooled buffer and kept at their exact
	// size: a cache holds them for every user, and append's slack would
	// be a third of its memory.
	bp := scratch.Get().(*[]byte)
	defer scratch.Put(bp)
	meta := (*bp)[:0]
	meta = append(meta, `"status":`...)
	meta = appendString(meta, string(e.Status))
	meta = append(meta, `,"official_accounts":[`...)
	out.split = len(meta)
	meta = append(meta, `],"total_count":`...)
	meta = strconv.AppendInt(meta, int64(e.TotalCount), 10)
	meta = append(meta, `,"complete":`...)
	meta = strconv.AppendBool(meta, e.Complete)
	meta = append(meta, `,"fetched_at":`...)
	if e.FetchedAt == nil {
		meta = append(meta, "null"...)
	} else {
		var err error
		if meta, err = appendTime(meta, *e.FetchedAt); err != nil {
			return nil, err
		}
	}
	meta = append(meta, ',')
	out.meta = exact(meta)
	out.size = len(out.meta)
	selfs := meta[:0] // meta is copied: its buffer is free again
	for i := range e.OfficialAccounts {
		a := f.project(e.OfficialAccounts[i])
		self := a.SelfInfo
		a.SelfInfo = nil
		b, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("schemas: encode account: %w", err)
		}
		base := unique.Make(string(b[:len(b)-1]))
		if self != nil {
			s, err := json.Marshal(self)
			if err != nil {
				return nil, fmt.Errorf("schemas: encode account: %w", err)
			}
			selfs = append(selfs, `,"self_info":`...)
			selfs = append(selfs, s...)
		}
		selfs = append(selfs, '}')
		out.items = append(out.items, encodedAccount{base: base, selfEnd: uint32(len(selfs))})
		out.size += len(b) - 1
	}
	out.selfs = exact(selfs)
	*bp = selfs[:0]
	out.size += len(out.selfs) + max(len(out.items)-1, 0)
	return out, nil
}

// exact returns a copy of b of its exact length.
func exact(b []byte) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

// scratch holds EncodeEnrichment's buffers between calls.
var scratch = sync.Pool{New: func() any { return new([]byte) }}

// Size is the number of bytes the enrichment adds to a record, about.
func (e *Enriched) Size() int { return e.size + len(`"enrichment":{"cache":"stale"}`) }

// Accounts is the number of accounts encoded.
func (e *Enriched) Accounts() int { return len(e.items) }

// AppendAccounts appends the official_accounts array: the JSON encoding of
// the (projected) accounts, as json.Marshal writes []OfficialAccount.
func (e *Enriched) AppendAccounts(dst []byte) []byte {
	dst = append(dst, '[')
	start := uint32(0)
	for i, it := range e.items {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, it.base.Value()...)
		dst = append(dst, e.selfs[start:it.selfEnd]...)
		start = it.selfEnd
	}
	return append(dst, ']')
}

// appendEnrichment appends the enrichment object with cache c.
func (e *Enriched) appendEnrichment(dst []byte, c CacheResult) []byte {
	dst = append(dst, '{')
	dst = append(dst, e.meta[:e.split-1]...)
	dst = e.AppendAccounts(dst)
	dst = append(dst, e.meta[e.split+1:]...)
	dst = append(dst, `"cache":`...)
	dst = appendString(dst, string(c))
	return append(dst, '}')
}

// RecordParts are the fields of one record around its enrichment.
type RecordParts struct {
	// Event is the input event, one JSON value, embedded byte for byte.
	Event     []byte
	Topic     string
	Partition int
	Offset    int64
	Timestamp time.Time
	// Key is the input record's key as text; with NoKey the record had
	// none (written as null).
	Key         []byte
	NoKey       bool
	Cache       CacheResult
	ProcessedAt time.Time
}

// ErrEmptyEvent is returned for a record without an event.
var ErrEmptyEvent = errors.New("schemas: record has no event")

// AppendRecord appends the enriched record of p with enrichment e to dst
// (one allocation at most: when dst is too small).
func (e *Enriched) AppendRecord(dst []byte, p *RecordParts) ([]byte, error) {
	if isBlank(p.Event) {
		return dst, ErrEmptyEvent
	}
	dst = slices.Grow(dst, e.Size()+len(p.Event)+len(p.Topic)+len(p.Key)+200)
	dst = append(dst, `{"event":`...)
	dst = append(dst, p.Event...)
	dst = append(dst, `,"schema_version":"`+RecordVersion+`","source":{"topic":`...)
	dst = appendString(dst, p.Topic)
	dst = append(dst, `,"partition":`...)
	dst = strconv.AppendInt(dst, int64(p.Partition), 10)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, p.Offset, 10)
	dst = append(dst, `,"timestamp":`...)
	var err error
	if dst, err = appendTime(dst, p.Timestamp); err != nil {
		return dst, err
	}
	dst = append(dst, `,"key":`...)
	if p.NoKey {
		dst = append(dst, "null"...)
	} else {
		// The key is only read, and not kept.
		dst = appendString(dst, unsafe.String(unsafe.SliceData(p.Key), len(p.Key)))
	}
	dst = append(dst, `},"enrichment":`...)
	dst = e.appendEnrichment(dst, p.Cache)
	dst = append(dst, `,"processed_at":`...)
	if dst, err = appendTime(dst, p.ProcessedAt); err != nil {
		return dst, err
	}
	return append(dst, '}'), nil
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// appendTime appends t in UTC as encoding/json writes a time.Time.
func appendTime(dst []byte, t time.Time) ([]byte, error) {
	t = t.UTC()
	if y := t.Year(); y < 0 || y >= 10000 {
		return dst, fmt.Errorf("schemas: encode record: time %v: year outside of range [0,9999]", t)
	}
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"'), nil
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string exactly as encoding/json does:
// HTML characters escaped, invalid UTF-8 replaced by U+FFFD, U+2028 and
// U+2029 escaped.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Fields selects the account fields an enriched record carries
// (official_account always). A nil *Fields selects every field.
type Fields struct {
	names []string     // as given, normalised
	base  []int        // OfficialAccount field indexes kept (pointer fields)
	self  map[int]bool // SelfInfo field indexes kept; empty: no self_info
}

// accountField is one selectable field.
type accountField struct {
	name string // output name: "name", "self_info.subscribe_time"
	api  string // the API's filter name
	self bool   // a SelfInfo field
	idx  int
}

var selectable = func() []accountField {
	var out []accountField
	at := reflect.TypeFor[OfficialAccount]()
	for i := range at.NumField() {
		f := at.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Type == reflect.TypeFor[*SelfInfo]() {
			st := f.Type.Elem()
			for j := range st.NumField() {
				sf := st.Field(j)
				sn, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
				out = append(out, accountField{name: name + "." + sn, api: sf.Tag.Get("api"), self: true, idx: j})
			}
			continue
		}
		if f.Type.Kind() == reflect.Pointer {
			out = append(out, accountField{name: name, api: f.Tag.Get("api"), idx: i})
		}
	}
	return out
}()

// FieldNames lists the names ParseFields accepts: official_account, the
// optional account fields, self_info (all of it) and its fields, qualified
// (self_info.custom_string) or, when no account field has the name, bare
// (subscribe_time).
func FieldNames() []string {
	names := []string{"official_account"}
	for _, f := range selectable {
		names = append(names, f.name)
	}
	return append(names, "self_info")
}

// ParseFields parses a list of field names (see FieldNames). An empty list
// selects every field (nil).
func ParseFields(names []string) (*Fields, error) {
	f := &Fields{self: map[int]bool{}}
	base := map[int]bool{}
	for _, raw := range names {
		n := strings.ToLower(strings.TrimSpace(raw))
		if n == "" {
			continue
		}
		matched := false
		for _, s := range selectable {
			bare := strings.TrimPrefix(s.name, "self_info.")
			switch {
			case n == s.name, n == "self_info" && s.self,
				s.self && n == bare && !slices.ContainsFunc(selectable, func(o accountField) bool { return !o.self && o.name == bare }):
			default:
				continue
			}
			matched = true
			if s.self {
				f.self[s.idx] = true
			} else {
				base[s.idx] = true
			}
		}
		if !matched && n != "official_account" {
			return nil, fmt.Errorf("unknown account field %q (want some of %s)", raw, strings.Join(FieldNames(), ", "))
		}
		if !slices.Contains(f.names, n) {
			f.names = append(f.names, n)
		}
	}
	if len(f.names) == 0 {
		return nil, nil
	}
	for i := range reflect.TypeFor[OfficialAccount]().NumField() {
		if base[i] {
			f.base = append(f.base, i)
		}
	}
	return f, nil
}

// String is the list of names, comma-separated ("" for all fields).
func (f *Fields) String() string {
	if f == nil {
		return ""
	}
	return strings.Join(f.names, ",")
}

// APIFilter returns the API's ResponseFilter lists that fetch what f
// selects (nil, nil for all fields). The API reads an empty list as every
// field of its group, so a group none of whose fields is selected asks for
// one small field (CreateTime, SubscribeTime), which the output drops.
func (f *Fields) APIFilter() (baseInfo, selfInfo []string) {
	if f == nil {
		return nil, nil
	}
	for _, s := range selectable {
		if (s.self && f.self[s.idx]) || (!s.self && slices.Contains(f.base, s.idx)) {
			if s.self {
				selfInfo = append(selfInfo, s.api)
			} else {
				baseInfo = append(baseInfo, s.api)
			}
		}
	}
	if len(baseInfo) == 0 {
		baseInfo = []string{"CreateTime"}
	}
	if len(selfInfo) == 0 {
		selfInfo = []string{"SubscribeTime"}
	}
	return baseInfo, selfInfo
}

// project returns a with only the fields of f (a itself for nil f); the
// result shares no pointer with a that f drops.
func (f *Fields) project(a OfficialAccount) OfficialAccount {
	if f == nil {
		return a
	}
	src := reflect.ValueOf(&a).Elem()
	out := OfficialAccount{OfficialAccount: a.OfficialAccount}
	dst := reflect.ValueOf(&out).Elem()
	for _, i := range f.base {
		dst.Field(i).Set(src.Field(i))
	}
	if len(f.self) > 0 && a.SelfInfo != nil {
		var s SelfInfo
		ss, ds := reflect.ValueOf(a.SelfInfo).Elem(), reflect.ValueOf(&s).Elem()
		for i := range ds.NumField() {
			if f.self[i] {
				ds.Field(i).Set(ss.Field(i))
			}
		}
		out.SelfInfo = &s
	}
	return out
}
