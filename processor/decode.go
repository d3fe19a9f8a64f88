package processor

import (
	"bytes"
	"time"

	"encoding/json"
	"errors"
	"fmt"
	"github.com/segmentio/kafka-go"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file is the decode stage: a fetched record becomes a record with
// its user id and ordering key, or a DecodeError for the DLQ.

// record is one input record moving through the pipeline.
type record struct {
	msg       kafka.Message
	fetched   time.Time
	userID    string
	decodeErr *DecodeError
	key       string // ordering key; "" orders against nothing
	gated     bool   // holds a place in Pipeline.lookupUsers until it finishes
}

// newRecord decodes msg and picks its ordering key.
func (p *Pipeline) newRecord(msg kafka.Message) *record {
	r := &record{msg: msg, fetched: p.cfg.Now()}
	id, err := p.dec.decode(msg.Value)
	if err != nil {
		errors.As(err, &r.decodeErr)
	}
	r.userID = id
	switch {
	case p.cfg.OrderBy == OrderByKafkaKey && len(msg.Key) > 0:
		r.key = "k" + string(msg.Key)
	case id != "":
		r.key = "u" + id
	}
	return r
}

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
	// ClassEnrichmentUnavailable: the user's lookups kept failing while the
	// API as a whole was up, for Config.RecordRetryDeadline.
	ClassEnrichmentUnavailable ErrorClass = "enrichment_unavailable"
	// ClassEncodeFailed: the enriched record cannot be encoded (the input
	// record's timestamp is outside the years 0–9999 that its JSON
	// source.timestamp can carry).
	ClassEncodeFailed ErrorClass = "encode_failed"
	// ClassOutputTooLarge: the enriched record is larger than
	// Config.MaxRecordBytes (a user with very many or very large
	// subscriptions).
	ClassOutputTooLarge ErrorClass = "output_too_large"
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
	cur := value[skipSpace(value, 0):]
	if cur[0] != '{' {
		return "", &DecodeError{ClassNotObject, "event is not a JSON object"}
	}
	for _, tok := range d.tokens {
		next, ok := member(cur, tok)
		if !ok {
			return "", &DecodeError{ClassMissingUserID, "no user id at " + d.pointer()}
		}
		cur = next
	}
	if string(cur) == "null" {
		return "", &DecodeError{ClassMissingUserID, "user id at " + d.pointer() + " is null"}
	}
	if cur[0] != '"' {
		return "", &DecodeError{ClassInvalidUserID, "user id at " + d.pointer() + " is not a string"}
	}
	var id string
	if bytes.IndexByte(cur, '\\') < 0 {
		id = string(cur[1 : len(cur)-1])
	} else if err := json.Unmarshal(cur, &id); err != nil {
		return "", &DecodeError{ClassInvalidUserID, "user id at " + d.pointer() + " is not a string"}
	}
	if id == "" {
		return "", &DecodeError{ClassInvalidUserID, "user id at " + d.pointer() + " is empty"}
	}
	return id, nil
}

// member returns the value of member tok of the object or array at the
// start of doc. doc must be valid JSON (the decoder checks it first), so the
// scan needs no error handling. Of duplicate object keys the last wins, as
// in encoding/json.
func member(doc []byte, tok string) ([]byte, bool) {
	i := skipSpace(doc, 0)
	switch doc[i] {
	case '{':
		var found []byte
		ok := false
		i = skipSpace(doc, i+1)
		for doc[i] != '}' {
			k := i
			i = skipString(doc, i)
			key := doc[k:i]
			i = skipSpace(doc, i)
			i = skipSpace(doc, i+1) // ':'
			v := i
			i = skipValue(doc, i)
			if keyIs(key, tok) {
				found, ok = doc[v:i], true
			}
			i = skipSpace(doc, i)
			if doc[i] == ',' {
				i = skipSpace(doc, i+1)
			}
		}
		return found, ok
	case '[':
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 || (len(tok) > 1 && tok[0] == '0') {
			return nil, false
		}
		i = skipSpace(doc, i+1)
		for idx := 0; doc[i] != ']'; idx++ {
			v := i
			i = skipValue(doc, i)
			if idx == n {
				return doc[v:i], true
			}
			i = skipSpace(doc, i)
			if doc[i] == ',' {
				i = skipSpace(doc, i+1)
			}
		}
	}
	return nil, false
}

// keyIs reports whether the quoted JSON string key decodes to tok.
func keyIs(key []byte, tok string) bool {
	raw := key[1 : len(key)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == tok
	}
	var s string
	return json.Unmarshal(key, &s) == nil && s == tok
}

func skipSpace(doc []byte, i int) int {
	for i < len(doc) && (doc[i] == ' ' || doc[i] == '\t' || doc[i] == '\n' || doc[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at i.
func skipString(doc []byte, i int) int {
	for i++; doc[i] != '"'; i++ {
		if doc[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// skipValue returns the index after the value that starts at i.
func skipValue(doc []byte, i int) int {
	switch doc[i] {
	case '"':
		return skipString(doc, i)
	case '{', '[':
		depth := 0
		for {
			switch doc[i] {
			case '"':
				i = skipString(doc, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
	}
	for i < len(doc) && !strings.ContainsRune(",}] \t\r\n", rune(doc[i])) {
		i++
	}
	return i
}

func (d *decoder) pointer() string {
	var b strings.Builder
	for _, t := range d.tokens {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}
