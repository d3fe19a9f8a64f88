package processor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrorClass names why an input record was sent to the dead-letter topic. It
// is the value of the HeaderErrorClass header.
type ErrorClass string

// Error classes of malformed input.
const (
	ClassTooLarge      ErrorClass = "too_large"       // value larger than Config.MaxEventBytes
	ClassNotJSON       ErrorClass = "not_json"        // not one UTF-8 JSON value
	ClassNotObject     ErrorClass = "not_object"      // JSON, but not an object
	ClassMissingUserID ErrorClass = "missing_user_id" // nothing (or null) at the user-id pointer
	ClassInvalidUserID ErrorClass = "invalid_user_id" // user id is not a string, or empty

	// ClassEnrichment: a per-record API failure outside the status table
	// (an unlisted permanent code, a pagination that never completes).
	ClassEnrichment ErrorClass = "enrichment_failed"
)

// DecodeError is the error of an input record that cannot be processed. It
// is permanent: the record goes to the dead-letter topic.
type DecodeError struct {
	Class  ErrorClass
	Detail string
}

func (e *DecodeError) Error() string { return fmt.Sprintf("%s: %s", e.Class, e.Detail) }

// errBadPointer is returned for a user-id pointer that is not an RFC 6901
// JSON pointer to a member.
var errBadPointer = errors.New("not a JSON pointer (RFC 6901) to a member, such as /user_id")

// decoder finds the user id in an input event. Safe for concurrent use.
type decoder struct {
	tokens   []string
	maxBytes int
}

// newDecoder parses pointer (RFC 6901, at least one token) and returns a
// decoder that accepts values of at most maxBytes bytes.
func newDecoder(pointer string, maxBytes int) (*decoder, error) {
	if !strings.HasPrefix(pointer, "/") {
		return nil, fmt.Errorf("user-id pointer %q: %w", pointer, errBadPointer)
	}
	var tokens []string
	for _, tok := range strings.Split(pointer[1:], "/") {
		// ~1 before ~0, as RFC 6901 section 4 requires.
		for i := 0; i < len(tok); i++ {
			if tok[i] == '~' && (i+1 == len(tok) || (tok[i+1] != '0' && tok[i+1] != '1')) {
				return nil, fmt.Errorf("user-id pointer %q: bad escape: %w", pointer, errBadPointer)
			}
		}
		tok = strings.ReplaceAll(tok, "~1", "/")
		tok = strings.ReplaceAll(tok, "~0", "~")
		tokens = append(tokens, tok)
	}
	return &decoder{tokens: tokens, maxBytes: maxBytes}, nil
}

// decode validates value as an input event and returns its user id. Errors
// are *DecodeError.
func (d *decoder) decode(value []byte) (string, error) {
	if len(value) > d.maxBytes {
		return "", &DecodeError{ClassTooLarge, fmt.Sprintf("%d bytes, limit %d", len(value), d.maxBytes)}
	}
	if !utf8.Valid(value) || !json.Valid(value) {
		return "", &DecodeError{ClassNotJSON, "value is not a UTF-8 JSON document"}
	}
	cur := json.RawMessage(bytes.TrimLeft(value, " \t\r\n"))
	if len(cur) == 0 || cur[0] != '{' {
		return "", &DecodeError{ClassNotObject, "event is not a JSON object"}
	}
	for _, tok := range d.tokens {
		next, ok := member(cur, tok)
		if !ok {
			return "", &DecodeError{ClassMissingUserID, "no user id at " + d.pointer()}
		}
		cur = next
	}
	cur = bytes.TrimSpace(cur)
	if string(cur) == "null" {
		return "", &DecodeError{ClassMissingUserID, "user id at " + d.pointer() + " is null"}
	}
	var id string
	if err := json.Unmarshal(cur, &id); err != nil {
		return "", &DecodeError{ClassInvalidUserID, "user id at " + d.pointer() + " is not a string"}
	}
	if id == "" {
		return "", &DecodeError{ClassInvalidUserID, "user id at " + d.pointer() + " is empty"}
	}
	return id, nil
}

// member returns the member tok of the object or array doc (valid JSON).
func member(doc json.RawMessage, tok string) (json.RawMessage, bool) {
	doc = bytes.TrimLeft(doc, " \t\r\n")
	if len(doc) == 0 {
		return nil, false
	}
	switch doc[0] {
	case '{':
		var m map[string]json.RawMessage
		if json.Unmarshal(doc, &m) != nil {
			return nil, false
		}
		v, ok := m[tok]
		return v, ok
	case '[':
		i, err := strconv.Atoi(tok)
		if err != nil || i < 0 || (len(tok) > 1 && tok[0] == '0') {
			return nil, false
		}
		var a []json.RawMessage
		if json.Unmarshal(doc, &a) != nil || i >= len(a) {
			return nil, false
		}
		return a[i], true
	}
	return nil, false
}

func (d *decoder) pointer() string {
	var b strings.Builder
	for _, t := range d.tokens {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}
