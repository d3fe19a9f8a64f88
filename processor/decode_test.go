package processor

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tencentchat-enricher/enricher/schemas"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		pointer string
		value   string
		want    string
		class   ErrorClass
	}{
		{"default", "/user_id", `{"user_id":"u1","x":[1,2]}`, "u1", ""},
		{"whitespace", "/user_id", " \n{ \"user_id\" : \"u\\u00e9\" } ", "ué", ""},
		{"nested", "/user/id", `{"user":{"id":"u2"}}`, "u2", ""},
		{"array index", "/users/1", `{"users":["a","b"]}`, "b", ""},
		{"escaped tokens", "/a~1b/c~0d", `{"a/b":{"c~d":"u3"}}`, "u3", ""},
		{"duplicate key, last wins", "/user_id", `{"user_id":"a","user_id":"b"}`, "b", ""},
		{"escaped key", "/user_id", `{"user\u005fid":"u4"}`, "u4", ""},
		{"escaped value", "/user_id", `{"user_id":"a\"b\u00e9"}`, "a\"bé", ""},
		{"skips tricky values", "/user_id", `{"a":"}]\"{[","b":[{"c":"]"},-1.5e3,true,null],"user_id":"u5"}`, "u5", ""},
		{"too large", "/user_id", `{"user_id":"` + strings.Repeat("x", 100) + `"}`, "", ClassTooLarge},
		{"not json", "/user_id", `{"user_id":`, "", ClassNotJSON},
		{"two values", "/user_id", `{"user_id":"a"} {}`, "", ClassNotJSON},
		{"invalid utf8", "/user_id", "{\"user_id\":\"\xff\"}", "", ClassNotJSON},
		{"array", "/user_id", `["u1"]`, "", ClassNotObject},
		{"string", "/user_id", `"u1"`, "", ClassNotObject},
		{"missing", "/user_id", `{"user":"u1"}`, "", ClassMissingUserID},
		{"null", "/user_id", `{"user_id":null}`, "", ClassMissingUserID},
		{"missing nested", "/user/id", `{"user":"u1"}`, "", ClassMissingUserID},
		{"index out of range", "/users/2", `{"users":["a","b"]}`, "", ClassMissingUserID},
		{"leading zero index", "/users/01", `{"users":["a","b"]}`, "", ClassMissingUserID},
		{"number", "/user_id", `{"user_id":42}`, "", ClassInvalidUserID},
		{"object", "/user_id", `{"user_id":{}}`, "", ClassInvalidUserID},
		{"empty", "/user_id", `{"user_id":""}`, "", ClassInvalidUserID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := newDecoder(tc.pointer, 64)
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.decode([]byte(tc.value))
			if tc.class == "" {
				if err != nil || got != tc.want {
					t.Fatalf("decode = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Class != tc.class {
				t.Fatalf("decode error = %v, want class %s", err, tc.class)
			}
		})
	}
}

func TestNewDecoderRejectsBadPointers(t *testing.T) {
	for _, p := range []string{"", "user_id", "/a~2", "/a~"} {
		if _, err := newDecoder(p, 10); !errors.Is(err, errBadPointer) {
			t.Errorf("newDecoder(%q) = %v, want errBadPointer", p, err)
		}
	}
}

// FuzzDecode: decode never panics; it either returns a non-empty user id
// from a valid UTF-8 JSON object, or a *DecodeError with a known class.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"user_id":"u1"}`, `{"user_id":1}`, `[]`, `{"user":{"id":"x"}}`, "\xff", `{"user_id":"\u0000"}`, `{"user_id":null}`} {
		f.Add([]byte(s))
	}
	d, err := newDecoder("/user_id", 1<<16)
	if err != nil {
		f.Fatal(err)
	}
	known := map[ErrorClass]bool{ClassTooLarge: true, ClassNotJSON: true, ClassNotObject: true, ClassMissingUserID: true, ClassInvalidUserID: true}
	f.Fuzz(func(t *testing.T, value []byte) {
		id, err := d.decode(value)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || !known[de.Class] {
				t.Fatalf("error %v is not a known DecodeError", err)
			}
			return
		}
		if id == "" || !utf8.ValidString(id) {
			t.Fatalf("decoded bad id %q", id)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	d, err := newDecoder("/user_id", 1<<20)
	if err != nil {
		b.Fatal(err)
	}
	value := []byte(`{"event_id":"3f0c1a","type":"page_view","user_id":"user-12345","ts":1764115200,"props":{"page":"/home","ref":"push","items":[1,2,3]}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	for b.Loop() {
		if _, err := d.decode(value); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecodeAgreesWithSchema: with the default pointer, the decoder accepts
// exactly the UTF-8 values that user-event.v1.json accepts.
func FuzzDecodeAgreesWithSchema(f *testing.F) {
	for _, s := range []string{`{"user_id":"u1"}`, `{"user_id":""}`, `{"user_id":1}`, `{}`, `[]`, `{"user_id":"a","x":{"user_id":1}}`, `{"user_id":null}`} {
		f.Add([]byte(s))
	}
	v, err := schemas.NewValidator()
	if err != nil {
		f.Fatal(err)
	}
	d, err := newDecoder(schemas.DefaultUserIDPointer, 1<<20)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		if !utf8.Valid(value) {
			t.Skip()
		}
		_, decErr := d.decode(value)
		schemaErr := v.ValidateEvent(value)
		if (decErr == nil) != (schemaErr == nil) {
			t.Fatalf("%q: decoder %v, schema %v", value, decErr, schemaErr)
		}
	})
}
