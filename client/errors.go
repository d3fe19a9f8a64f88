package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// ErrConfig is matched (errors.Is) by every *ConfigError.
var ErrConfig = errors.New("client: invalid config")

// ConfigError is one problem of a Config, found by Config.Validate or New.
type ConfigError struct {
	// Field is the Config field at fault, by its Go name: "BaseURL",
	// "Rate", "SDKAppID"; a path for nested fields: "Breaker.OpenFor",
	// "Filter.SelfInfoFilter".
	Field string
	// Value is the rejected value, after defaults; nil when the value is a
	// secret (SecretKey), absent, or unsafe to show. A BaseURL is shown
	// without user info or UserSig.
	Value any
	// Reason says what is wrong, e.g. "must be in (0,1]".
	Reason string
	// Err is the underlying cause, if any (e.g. the URL parser's).
	Err error
}

// Error reads "client: invalid config: Field Value: Reason[: Err]".
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("client: invalid config: ")
	b.WriteString(e.Field)
	switch v := e.Value.(type) {
	case nil:
	case string:
		fmt.Fprintf(&b, " %q", v)
	default:
		fmt.Fprintf(&b, " %v", v)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(redact(e.Err.Error()))
	}
	return b.String()
}

// Is makes errors.Is(err, ErrConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// Unwrap returns the underlying cause.
func (e *ConfigError) Unwrap() error { return e.Err }

// APIError is an unsuccessful answer: a non-zero ErrorCode in the body, or a
// non-200 HTTP status. Its Error() never contains the UserSig or the key.
// Branch on it with errors.As and Code, or with Classify.
type APIError struct {
	Code       int    // ErrorCode from the body; 0 when the body had none (see HTTPStatus)
	Info       string // ErrorInfo from the body
	HTTPStatus int    // HTTP status of the answer
	Attempt    int    // 1-based attempt that produced this answer

	// escalated is set when the corrective retry of a "once" code (re-sign,
	// re-send) got the same kind of answer: the error is then ClassFatal.
	escalated bool
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("tencentchat: ")
	if e.Code != 0 {
		fmt.Fprintf(&b, "ErrorCode %d", e.Code)
		if e.Info != "" {
			fmt.Fprintf(&b, " (%s)", redact(e.Info))
		}
	} else {
		fmt.Fprintf(&b, "HTTP %d", e.HTTPStatus)
	}
	if e.Code != 0 && e.HTTPStatus != 0 && e.HTTPStatus != http.StatusOK {
		fmt.Fprintf(&b, ", HTTP %d", e.HTTPStatus)
	}
	fmt.Fprintf(&b, ", class %s, attempt %d", e.Class(), e.Attempt)
	if e.escalated {
		b.WriteString(", repeated after corrective retry")
	}
	return b.String()
}

// Class classifies the answer; see CodeClass.
func (e *APIError) Class() Class {
	if e.escalated {
		return ClassFatal
	}
	if e.Code != 0 {
		return CodeClass(e.Code)
	}
	if e.HTTPStatus != 0 && e.HTTPStatus != http.StatusOK {
		return httpStatusClass(e.HTTPStatus)
	}
	// HTTP 200, code 0 but ActionStatus not OK: an answer we cannot trust.
	return ClassTransient
}

// Settings returns the Config fields to fix when e stops the app (Class
// ClassFatal), the most likely first: "SDKAppID", "Admin", "SecretKey",
// "Region" or "BaseURL". It is empty when the fix lies outside the Config
// (such as the app's IP allow-list in the Chat console) or the code is not
// one the client knows.
func (e *APIError) Settings() []string {
	return slices.Clone(codeFix(e.Code, e.HTTPStatus).settings)
}

// Hint names, in one phrase for the operator, the setting to fix when e
// stops the app and why, e.g. "the admin identifier (Admin): it must be an
// imported app admin account". For a code the client does not know it
// names the client configuration and the code.
func (e *APIError) Hint() string { return codeFix(e.Code, e.HTTPStatus).hint }

// Escalated reports whether the error came back after its one corrective
// retry (re-sign, re-send) and was therefore escalated to ClassFatal.
func (e *APIError) Escalated() bool { return e.escalated }

// TransportError is a failure to get an answer at all: connection refused,
// reset, TLS failure, per-call timeout, or a body that could not be read or
// decoded. It replaces net/http's *url.Error, whose text carries the full
// request URL including the UserSig. ClassTransient.
type TransportError struct {
	Op      string // "send", "read", "decode"
	Attempt int
	Timeout bool // the per-call timeout expired
	Err     error
}

func (e *TransportError) Error() string {
	msg := "<nil>"
	if e.Err != nil {
		msg = redact(e.Err.Error())
	}
	to := ""
	if e.Timeout {
		to = " (timeout)"
	}
	return fmt.Sprintf("tencentchat: %s failed%s, attempt %d: %s", e.Op, to, e.Attempt, msg)
}

// Unwrap returns the underlying error. For Op "send" this is the inner
// error of *url.Error, never the *url.Error itself.
func (e *TransportError) Unwrap() error { return e.Err }

// ErrHoldOff is matched (errors.Is) by every error the client returns
// without calling the server because it holds calls back for a while:
// *BreakerOpenError (the circuit breaker is open) and *SigPauseError (the
// pause the server asked for with 70050). Both mean: the API as a whole is
// not to be called now; wait RetryAfter(err) and retry. Classify reports
// ClassTransient.
var ErrHoldOff = errors.New("tencentchat: holding off calls")

// ErrBreakerOpen is matched (errors.Is) by *BreakerOpenError: the circuit
// breaker refused the call. errors.As with *BreakerOpenError gives the wait.
var ErrBreakerOpen = errors.New("tencentchat: circuit breaker open")

// holdOff is implemented by the errors that match ErrHoldOff.
type holdOff interface {
	error
	retryAfter() time.Duration
}

// RetryAfter returns the wait advised by the hold-off error in err's chain
// (*BreakerOpenError or *SigPauseError) and true, or 0 and false when err
// holds none.
func RetryAfter(err error) (time.Duration, bool) {
	var h holdOff
	if errors.As(err, &h) {
		return h.retryAfter(), true
	}
	return 0, false
}

// BreakerOpenError is returned without calling the server while the breaker
// is open (or half-open and at its probe limit). RetryAfter is how long until
// the breaker lets a probe through. It matches ErrBreakerOpen and
// ErrHoldOff; Classify reports ClassTransient.
type BreakerOpenError struct {
	RetryAfter time.Duration
	// Last is the error of the attempt before the breaker refused, if any.
	Last error
	// Ready is closed when the breaker may let a call through sooner than
	// RetryAfter: a probe ended, or the breaker changed state. A caller
	// waits for the first of the two instead of polling. Nil: wait
	// RetryAfter.
	Ready <-chan struct{}
}

func (e *BreakerOpenError) Error() string {
	s := fmt.Sprintf("tencentchat: circuit breaker open, retry after %s", e.RetryAfter.Round(time.Millisecond))
	if e.Last != nil {
		s += "; last error: " + e.Last.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrBreakerOpen) and errors.Is(err, ErrHoldOff) true.
func (e *BreakerOpenError) Is(target error) bool {
	return target == ErrBreakerOpen || target == ErrHoldOff
}

// Unwrap returns the last attempt's error.
func (e *BreakerOpenError) Unwrap() error { return e.Last }

func (e *BreakerOpenError) retryAfter() time.Duration { return e.RetryAfter }

// SigPauseError is returned after the server answered 70050 (UserSig check
// failed and rate limited), and without calling the server while the pause
// it asks for lasts (one minute): the client has re-signed and waits before
// any call. RetryAfter is how long the pause still lasts. It matches
// ErrHoldOff; Classify reports ClassTransient. A 70050 to a call sent after
// the pause ended is app-fatal instead (an escalated *APIError).
type SigPauseError struct {
	RetryAfter time.Duration
	// Last is the 70050 answer, or the error of the attempt before the
	// pause refused the call, if any.
	Last error
}

func (e *SigPauseError) Error() string {
	s := fmt.Sprintf("tencentchat: calls paused after ErrorCode %d (UserSig check rate limited), retry after %s",
		CodeSigCheckRateLimited, e.RetryAfter.Round(time.Millisecond))
	if e.Last != nil {
		s += "; last error: " + e.Last.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrHoldOff) true.
func (e *SigPauseError) Is(target error) bool { return target == ErrHoldOff }

// Unwrap returns the last attempt's error.
func (e *SigPauseError) Unwrap() error { return e.Last }

func (e *SigPauseError) retryAfter() time.Duration { return e.RetryAfter }

// ErrPagination is matched (errors.Is) when a user's list cannot be
// completed: the server never sets CompleteFlag, repeats Next, or moves Next
// backwards. errors.As with *PaginationError gives the details.
var ErrPagination = errors.New("tencentchat: pagination did not complete")

// PaginationError details an ErrPagination. Classify reports ClassPermanent:
// retrying the same user would walk the same broken chain.
type PaginationError struct {
	Reason string // "max pages", "repeated next", "next went backwards"
	Pages  int    // pages fetched so far
	Offset uint64 // offset of the last page requested
	Next   uint64 // Next of the last page
}

func (e *PaginationError) Error() string {
	return fmt.Sprintf("tencentchat: pagination did not complete: %s after %d pages (offset %d, next %d)",
		e.Reason, e.Pages, e.Offset, e.Next)
}

// Is makes errors.Is(err, ErrPagination) true.
func (e *PaginationError) Is(target error) bool { return target == ErrPagination }

// ErrInvalidRequest is wrapped by errors about a request that cannot be sent
// (empty subscriber, limit out of range). ClassPermanent.
var ErrInvalidRequest = errors.New("tencentchat: invalid request")

// ErrClosed is returned by calls made after Close. ClassCanceled.
var ErrClosed = errors.New("tencentchat: client closed")

// RetryDeadlineError is returned when the retry budget (Config.RetryDeadline or
// MaxAttempts) ran out; it wraps the last attempt's error, so Classify reports
// that error's class.
type RetryDeadlineError struct {
	Attempts int
	Elapsed  time.Duration
	Last     error
}

func (e *RetryDeadlineError) Error() string {
	return fmt.Sprintf("tencentchat: gave up after %d attempts in %s: %v",
		e.Attempts, e.Elapsed.Round(time.Millisecond), e.Last)
}

// Unwrap returns the last attempt's error.
func (e *RetryDeadlineError) Unwrap() error { return e.Last }

// Classify maps any error returned by this package to its Class. It is
// the one classifier that drives the client's retries and breaker and the
// caller's decision per record:
// nil is ClassOK; the caller's cancellation is ClassCanceled; *APIError uses
// the reference table (CodeClass: codes it does not list are ClassFatal in
// the common range 60000–79999 and ClassPermanent otherwise; a non-200 HTTP
// status without ErrorCode is ClassTransient for 5xx and 408, ClassRateLimited
// for 429, ClassFatal for other statuses); transport failures and the
// hold-offs (ErrHoldOff: an open breaker, the 70050 pause) are
// ClassTransient; pagination and invalid-request errors are ClassPermanent.
// Unknown errors are ClassTransient.
func Classify(err error) Class {
	if err == nil {
		return ClassOK
	}
	if errors.Is(err, ErrHoldOff) {
		return ClassTransient
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Class()
	}
	var tErr *TransportError
	switch {
	case errors.As(err, &tErr):
		return ClassTransient
	case errors.Is(err, ErrPagination), errors.Is(err, ErrInvalidRequest):
		return ClassPermanent
	case errors.Is(err, ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ClassCanceled
	}
	return ClassTransient
}

var sigParam = regexp.MustCompile(`(?i)(usersig=)[^&\s"']*`)

// redact removes the value of any usersig query parameter from s.
func redact(s string) string {
	if !strings.Contains(strings.ToLower(s), "usersig=") {
		return s
	}
	return sigParam.ReplaceAllString(s, "${1}REDACTED")
}
