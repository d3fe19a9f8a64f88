// Package schemas holds the JSON Schemas (draft 2020-12) of the processor's
// input and output, embedded in the binary, with the matching Go types and a
// validator.
//
// The schema files are versioned in their names: user-event.v1.json describes
// an input event, enriched-record.v1.json one record of the output topic,
// subscription-change.v1.json one record of the changes topic. A
// change that is not backwards compatible gets a new file and a new version
// constant; the old ones stay.
package schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schema file names (also the last segment of each schema's $id).
const (
	UserEventV1File      = "user-event.v1.json"
	EnrichedRecordV1File = "enriched-record.v1.json"
	ChangeV1File         = "subscription-change.v1.json"
)

// RecordVersion is the value of an enriched record's schema_version field.
const RecordVersion = "enriched-record.v1"

// DefaultUserIDPointer is the JSON pointer (RFC 6901) of the user id in an
// input event when none is configured.
const DefaultUserIDPointer = "/user_id"

// Files holds the schema files.
//
//go:embed user-event.v1.json enriched-record.v1.json subscription-change.v1.json
var Files embed.FS

// ChangeVersion is the value of a subscription change's schema_version.
const ChangeVersion = "subscription-change.v1"

// Change kinds of a SubscriptionChange.
const (
	ChangeSubscribed   = "subscribed"
	ChangeUnsubscribed = "unsubscribed"
)

// SubscriptionChange is one record of the changes topic
// (subscription-change.v1.json), keyed by UserID.
type SubscriptionChange struct {
	SchemaVersion   string    `json:"schema_version"`
	UserID          string    `json:"user_id"`
	OfficialAccount string    `json:"official_account"`
	Change          string    `json:"change"`
	EventTime       time.Time `json:"event_time"`
	OperatorAccount string    `json:"operator_account,omitempty"`
	ReceivedAt      time.Time `json:"received_at"`
}

// UserEvent is the part of an input event the processor interprets in the
// default layout. Every other field passes through untouched.
type UserEvent struct {
	UserID string `json:"user_id"`
}

// Status is the outcome of enriching one event.
type Status string

// Statuses of an enriched record.
const (
	StatusOK           Status = "ok"             // subscriptions fetched
	StatusUserNotFound Status = "user_not_found" // API error 130004
	StatusInvalidUser  Status = "invalid_user"   // API errors 130007, 6017, 20001
	StatusUnavailable  Status = "unavailable"    // API unreachable past the configured deadline
)

// CacheResult says whether the enrichment came from the cache.
type CacheResult string

// Cache results.
const (
	CacheHit  CacheResult = "hit"
	CacheMiss CacheResult = "miss"
	// CacheStale: a cached answer past its TTL, inside the stale window
	// (stale-while-revalidate), published while it is fetched again in the
	// background; fetched_at tells its age.
	CacheStale CacheResult = "stale"
)

// Record is one record of the output topic (enriched-record.v1.json).
// Encode it with Encode, which embeds Event byte for byte; json.Marshal
// would compact it.
type Record struct {
	SchemaVersion string          `json:"schema_version"`
	Event         json.RawMessage `json:"event"`
	Source        Source          `json:"source"`
	Enrichment    Enrichment      `json:"enrichment"`
	ProcessedAt   time.Time       `json:"processed_at"`
}

// Source says where an input event was read from.
type Source struct {
	Topic     string    `json:"topic"`
	Partition int       `json:"partition"`
	Offset    int64     `json:"offset"`
	Timestamp time.Time `json:"timestamp"`
	Key       *string   `json:"key"` // nil: the record had no key
}

// Enrichment is the outcome of looking up the user's subscriptions.
type Enrichment struct {
	Status           Status            `json:"status"`
	OfficialAccounts []OfficialAccount `json:"official_accounts"`
	TotalCount       int               `json:"total_count"`
	Complete         bool              `json:"complete"`
	FetchedAt        *time.Time        `json:"fetched_at"` // nil for StatusUnavailable
	Cache            CacheResult       `json:"cache"`
}

// OfficialAccount is one subscribed official account: the output's
// official_accounts item and, through the api tags, an item of the API's
// OfficialAccountInfoList (the client decodes the API's answer into it).
// A new field is one line here: its output name (json tag) and its API
// name (api tag). Pointer fields are nil when the API omitted them; they
// are the fields a ResponseFilter may select, by their API names.
type OfficialAccount struct {
	OfficialAccount string    `json:"official_account" api:"Official_Account"`
	Name            *string   `json:"name,omitempty" api:"Name"`
	OwnerAccount    *string   `json:"owner_account,omitempty" api:"Owner_Account"`
	CreateTime      *int64    `json:"create_time,omitempty" api:"CreateTime"`
	LastMsgTime     *int64    `json:"last_msg_time,omitempty" api:"LastMsgTime"`
	SubscriberNum   *int64    `json:"subscriber_num,omitempty" api:"SubscriberNum"`
	Introduction    *string   `json:"introduction,omitempty" api:"Introduction"`
	FaceURL         *string   `json:"face_url,omitempty" api:"FaceUrl"`
	Organization    *string   `json:"organization,omitempty" api:"Organization"`
	CustomString    *string   `json:"custom_string,omitempty" api:"CustomString"`
	SelfInfo        *SelfInfo `json:"self_info,omitempty" api:"SelfInfo"`
}

// SelfInfo is the subscriber's own information for one official account,
// named like OfficialAccount: output name in the json tag, API name in the
// api tag.
type SelfInfo struct {
	SubscribeTime *int64  `json:"subscribe_time,omitempty" api:"SubscribeTime"`
	CustomString  *string `json:"custom_string,omitempty" api:"CustomString"`
}

// Encode appends the JSON encoding of r to dst, with Event embedded byte for
// byte (it must hold one JSON value; Encode does not re-validate it). Times
// are written in UTC; a nil OfficialAccounts is written as []. It is
// EncodeEnrichment and Enriched.AppendRecord in one call (r.SchemaVersion
// is always RecordVersion).
func (r *Record) Encode(dst []byte) ([]byte, error) {
	if isBlank(r.Event) {
		return dst, ErrEmptyEvent
	}
	e, err := EncodeEnrichment(r.Enrichment, nil)
	if err != nil {
		return dst, err
	}
	p := RecordParts{
		Event: r.Event, Topic: r.Source.Topic, Partition: r.Source.Partition, Offset: r.Source.Offset,
		Timestamp: r.Source.Timestamp, NoKey: r.Source.Key == nil, Cache: r.Enrichment.Cache, ProcessedAt: r.ProcessedAt,
	}
	if r.Source.Key != nil {
		p.Key = []byte(*r.Source.Key)
	}
	return e.AppendRecord(dst, &p)
}

// Validator validates documents against the embedded schemas. It is safe for
// concurrent use.
type Validator struct {
	event, record, change *jsonschema.Schema
}

// NewValidator compiles the embedded schemas, with format assertions
// (date-time) on.
func NewValidator() (*Validator, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	const base = "https://github.com/tencentchat-enricher/enricher/schemas/"
	for _, name := range []string{UserEventV1File, EnrichedRecordV1File, ChangeV1File} {
		f, err := Files.Open(name)
		if err != nil {
			return nil, fmt.Errorf("schemas: open %s: %w", name, err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("schemas: parse %s: %w", name, err)
		}
		if err := c.AddResource(base+name, doc); err != nil {
			return nil, fmt.Errorf("schemas: add %s: %w", name, err)
		}
	}
	ev, err := c.Compile(base + UserEventV1File)
	if err != nil {
		return nil, fmt.Errorf("schemas: compile %s: %w", UserEventV1File, err)
	}
	rec, err := c.Compile(base + EnrichedRecordV1File)
	if err != nil {
		return nil, fmt.Errorf("schemas: compile %s: %w", EnrichedRecordV1File, err)
	}
	chg, err := c.Compile(base + ChangeV1File)
	if err != nil {
		return nil, fmt.Errorf("schemas: compile %s: %w", ChangeV1File, err)
	}
	return &Validator{event: ev, record: rec, change: chg}, nil
}

// ValidateChange validates data against subscription-change.v1.json.
func (v *Validator) ValidateChange(data []byte) error { return validate(v.change, data) }

// ValidateEvent validates data against user-event.v1.json.
func (v *Validator) ValidateEvent(data []byte) error { return validate(v.event, data) }

// ValidateRecord validates data against enriched-record.v1.json.
func (v *Validator) ValidateRecord(data []byte) error { return validate(v.record, data) }

func validate(s *jsonschema.Schema, data []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("schemas: not JSON: %w", err)
	}
	if err := s.Validate(inst); err != nil {
		return fmt.Errorf("schemas: %w", err)
	}
	return nil
}
