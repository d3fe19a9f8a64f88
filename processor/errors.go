package processor

import (
	"errors"
	"fmt"
	"time"
)

// ConfigError is one invalid Config field. Config.Validate joins one per
// problem, in field order; errors.As finds the first. It matches ErrConfig.
type ConfigError struct {
	Field  string // the Config field, such as "MaxInFlight"
	Value  any    // the value rejected
	Reason string // what the value must be, continuing the field's name: "must be at least 1"
	// Other, when set, is a second field the rule compares with; Reason
	// then ends before it ("must be at most") and OtherValue is its value.
	Other      string
	OtherValue any
}

func (e *ConfigError) Error() string {
	s := fmt.Sprintf("%v: %s %v %s", ErrConfig, e.Field, e.Value, e.Reason)
	if e.Value == nil || e.Value == "" {
		s = fmt.Sprintf("%v: %s %s", ErrConfig, e.Field, e.Reason)
	}
	if e.Other != "" {
		s += fmt.Sprintf(" %s (%v)", e.Other, e.OtherValue)
	}
	return s
}

// Is reports ErrConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// FatalError stops the processor: the API gave an answer that every call
// would repeat (bad credentials, missing permission, service not enabled).
// Run returns it after committing what was published; the record that got
// the answer, and everything after it, is left for the next run. The
// message names the code and the setting to fix.
type FatalError struct {
	Code       int    // API ErrorCode; 0 when the answer was an HTTP status
	HTTPStatus int    // HTTP status of the answer, when not 200
	Setting    string // the configuration to fix
	Err        error  // the client's error
}

func (e *FatalError) Error() string {
	what := fmt.Sprintf("ErrorCode %d", e.Code)
	if e.Code == 0 && e.HTTPStatus != 0 {
		what = fmt.Sprintf("HTTP status %d", e.HTTPStatus)
	}
	return fmt.Sprintf("processor stopped: the API answered %s for every call; fix %s (%v)", what, e.Setting, e.Err)
}

func (e *FatalError) Unwrap() error { return e.Err }

// TopicError stops the processor: writing to Topic failed permanently (the
// topic is missing, not writable, or refuses the record's size). Run
// returns it after committing what was published.
type TopicError struct {
	Topic string // the topic written to
	Field string // the Config field naming it: "OutputTopic" or "DLQTopic"
	Err   error  // the write error
}

func (e *TopicError) Error() string {
	return fmt.Sprintf("processor stopped: writing to topic %q failed permanently; fix %s: %s (%v)", e.Topic, e.Field, e.Hint(), e.Err)
}

// Hint says what the topic needs.
func (e *TopicError) Hint() string {
	if e.Field == "DLQTopic" {
		return "it must exist, this client must be allowed to write it (ACLs), and its max.message.bytes must allow MaxRecordBytes"
	}
	return "it must exist and this client must be allowed to write it (ACLs)"
}

func (e *TopicError) Unwrap() error { return e.Err }

// errUnavailable marks an enrichment that could not reach the API (breaker
// open, retries exhausted). The record waits and retries; fetching pauses
// only when the API as a whole is unavailable.
var errUnavailable = errors.New("API unavailable")

// unavailableError is an errUnavailable with the wait the client advised.
type unavailableError struct {
	retryAfter time.Duration // 0: use Config.PauseBackoff
	// outage: the API as a whole is unavailable (the client's breaker is
	// open, or refused the call). Fetching pauses; otherwise only the
	// record backs off.
	outage bool
	// ready, when not nil, is closed when the client's breaker may let a
	// call through before retryAfter (client.BreakerOpenError.Ready).
	ready <-chan struct{}
	err   error
}

func (e *unavailableError) Error() string {
	return fmt.Sprintf("%v: %v", errUnavailable, e.err)
}
func (e *unavailableError) Unwrap() []error { return []error{errUnavailable, e.err} }

// enrichError is a per-record failure outside the status table (for
// example a user whose pagination never completes): the record goes to the
// DLQ with class ClassEnrichment.
type enrichError struct {
	code int // API ErrorCode, if any
	err  error
}

func (e *enrichError) Error() string { return fmt.Sprintf("enrichment failed: %v", e.err) }
func (e *enrichError) Unwrap() error { return e.err }

// errReleased is returned by Claim.Submit after Release.
var errReleased = errors.New("processor: claim released")

// retryDeadlineError: a record's lookups kept failing, while the API as a
// whole was up, for Config.RecordRetryDeadline. The record goes to the DLQ
// with class ClassEnrichmentUnavailable.
type retryDeadlineError struct {
	failing time.Duration
	err     error
}

func (e *retryDeadlineError) Error() string {
	return fmt.Sprintf("lookup kept failing for %s while the API was up: %v", e.failing.Round(time.Millisecond), e.err)
}
func (e *retryDeadlineError) Unwrap() error { return e.err }
