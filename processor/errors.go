package processor

import (
	"errors"
	"fmt"
	"time"
)

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

// errUnavailable marks an enrichment that could not reach the API (breaker
// open, retries exhausted). The record waits; fetching pauses.
var errUnavailable = errors.New("API unavailable")

// unavailableError is an errUnavailable with the wait the client advised.
type unavailableError struct {
	retryAfter time.Duration // 0: use Config.PauseBackoff
	err        error
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
