package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// Error codes of get_subscribed_official_account_list and the common REST
// error codes the client knows how to handle. CodeClass maps each to a Class.
const (
	CodeOK = 0

	// Endpoint-specific codes.
	CodeInvalidParameter     = 6017   // invalid request parameter: per record
	CodeInternalError        = 10004  // internal server error: transient
	CodeInvalidPacket        = 20001  // invalid request packet: per record
	CodeInternalError2       = 20005  // internal server error: transient
	CodeNoPermission         = 130002 // insufficient operation permissions: fatal
	CodeUserNotFound         = 130004 // user does not exist or was terminated: per record
	CodeInvalidUserID        = 130007 // incorrect official-account user ID: per record
	CodeServiceNotEnabled    = 131000 // official-account service not enabled: fatal
	CodeMalformedURL         = 60002  // malformed URL: fatal (client bug)
	CodeMalformedJSON        = 60003  // malformed JSON body: fatal (client bug)
	CodeAccountOrSigError    = 60004  // account or signature error: re-sign once
	CodeSigParseError        = 60005  // UserSig cannot be parsed: re-sign once
	CodeAppIDInvalid         = 60006  // SDKAppID invalid: fatal
	CodeFrequencyLimit       = 60007  // call frequency over the limit: rate limited
	CodeServiceTimeout       = 60008  // service timeout: transient
	CodeResourceError        = 60009  // bad resource: fatal (client bug)
	CodeAdminRequired        = 60010  // identifier is not an app admin: fatal
	CodeFrequencyLimitApp    = 60011  // app frequency over the limit: rate limited
	CodeMissingAppID         = 60012  // SDKAppID missing: fatal (client bug)
	CodeResponseJSONError    = 60013  // server could not build its JSON answer: retry once
	CodeAccountSwapTimeout   = 60014  // account swap timeout: transient
	CodeWrongAccountType     = 60015  // wrong account type: fatal (client bug)
	CodeAppDisabled          = 60016  // app disabled: fatal
	CodeRequestDisabled      = 60017  // request disabled: fatal
	CodeFrequencyLimitAPI    = 60018  // API frequency over the limit: rate limited
	CodeFrequencyLimitUser   = 60019  // frequency over the limit: rate limited
	CodePackageExpired       = 60020  // package expired: fatal
	CodeIPNotAllowed         = 60021  // caller IP not allowed: fatal
	CodeUserSigExpired       = 70001  // UserSig expired: re-sign once
	CodeSigVerifyFailed      = 70003  // UserSig verification failed: re-sign once
	CodeSigVerifyFailed2     = 70009  // UserSig verification failed: re-sign once
	CodeIdentifierMismatch   = 70013  // identifier does not match the UserSig: fatal
	CodeAppIDMismatch        = 70014  // SDKAppID does not match the UserSig: fatal
	CodeKeyNotFound          = 70016  // key not found (wrong region?): fatal
	CodeAppIDNotFound        = 70020  // SDKAppID not found (wrong region?): fatal
	CodeSigCheckRateLimited  = 70050  // UserSig check failed and rate limited: re-sign, wait 1 min
	CodeAccountBlacklisted   = 70051  // account blacklisted: fatal
	CodeAccountNotImported   = 70107  // account not imported: fatal
	sigCheckRateLimitedPause = time.Minute
)

// Class is what the client and its callers do with an outcome.
type Class int

// Classes, in the order the reference table introduces them.
const (
	ClassOK          Class = iota // success
	ClassTransient                // network or server trouble: retry with backoff; counts toward the breaker
	ClassRateLimited              // the server throttled us: slow down and retry
	ClassResign                   // the UserSig was rejected: the client re-signs once and retries; returned only when MaxAttempts left no room for that retry (treat as transient)
	ClassPermanent                // this record cannot succeed (e.g. unknown user): do not retry, report per record
	ClassFatal                    // every call will fail the same way: stop and fix the configuration
	ClassCanceled                 // the caller canceled or its deadline passed
)

func (c Class) String() string {
	switch c {
	case ClassOK:
		return "ok"
	case ClassTransient:
		return "transient"
	case ClassRateLimited:
		return "rate_limited"
	case ClassResign:
		return "resign"
	case ClassPermanent:
		return "permanent"
	case ClassFatal:
		return "fatal"
	case ClassCanceled:
		return "canceled"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// Retryable reports whether the client retries outcomes of this class.
func (c Class) Retryable() bool {
	return c == ClassTransient || c == ClassRateLimited || c == ClassResign
}

type codeRule struct {
	class Class
	// once: the corrective retry (re-sign or re-send) is made once; if the
	// same class of answer comes back, the error is escalated to ClassFatal.
	once bool
}

var codeRules = map[int]codeRule{
	CodeOK:                  {ClassOK, false},
	CodeInternalError:       {ClassTransient, false},
	CodeInternalError2:      {ClassTransient, false},
	CodeServiceTimeout:      {ClassTransient, false},
	CodeAccountSwapTimeout:  {ClassTransient, false},
	CodeFrequencyLimit:      {ClassRateLimited, false},
	CodeFrequencyLimitApp:   {ClassRateLimited, false},
	CodeFrequencyLimitAPI:   {ClassRateLimited, false},
	CodeFrequencyLimitUser:  {ClassRateLimited, false},
	CodeSigCheckRateLimited: {ClassResign, true},
	CodeUserSigExpired:      {ClassResign, true},
	CodeAccountOrSigError:   {ClassResign, true},
	CodeSigParseError:       {ClassResign, true},
	CodeSigVerifyFailed:     {ClassResign, true},
	CodeSigVerifyFailed2:    {ClassResign, true},
	CodeInvalidParameter:    {ClassPermanent, false},
	CodeInvalidPacket:       {ClassPermanent, false},
	CodeUserNotFound:        {ClassPermanent, false},
	CodeInvalidUserID:       {ClassPermanent, false},
	CodeNoPermission:        {ClassFatal, false},
	CodeServiceNotEnabled:   {ClassFatal, false},
	CodeMalformedURL:        {ClassFatal, false},
	CodeMalformedJSON:       {ClassFatal, false},
	CodeResourceError:       {ClassFatal, false},
	CodeMissingAppID:        {ClassFatal, false},
	CodeWrongAccountType:    {ClassFatal, false},
	CodeAppIDInvalid:        {ClassFatal, false},
	CodeAppDisabled:         {ClassFatal, false},
	CodeRequestDisabled:     {ClassFatal, false},
	CodePackageExpired:      {ClassFatal, false},
	CodeAdminRequired:       {ClassFatal, false},
	CodeIPNotAllowed:        {ClassFatal, false},
	CodeIdentifierMismatch:  {ClassFatal, false},
	CodeAppIDMismatch:       {ClassFatal, false},
	CodeKeyNotFound:         {ClassFatal, false},
	CodeAppIDNotFound:       {ClassFatal, false},
	CodeAccountBlacklisted:  {ClassFatal, false},
	CodeAccountNotImported:  {ClassFatal, false},
	CodeResponseJSONError:   {ClassTransient, true},
}

// Common REST error codes (60000–69999: request, app and account errors;
// 70000–79999: UserSig and identity errors) are shared by every API and
// concern the app, its credentials or the request as the client builds it,
// never one record.
const (
	commonCodeMin = 60000
	commonCodeMax = 79999
)

// CodeClass returns the class of an ErrorCode from the response body.
// Codes the reference does not list are classed by range: an unlisted
// common code (60000–79999, which includes the 70000-range UserSig and
// account codes) is ClassFatal, since it concerns the app or its
// credentials and would fail every record the same way; any other unlisted
// code is endpoint-specific and ClassPermanent, so the record is reported
// with its code instead of being retried forever or stopping the app.
func CodeClass(code int) Class {
	if r, ok := codeRules[code]; ok {
		return r.class
	}
	if code >= commonCodeMin && code <= commonCodeMax {
		return ClassFatal
	}
	return ClassPermanent
}

// httpStatusClass classifies a non-200 answer that carried no ErrorCode.
func httpStatusClass(status int) Class {
	switch {
	case status == http.StatusOK:
		return ClassOK
	case status == http.StatusTooManyRequests:
		return ClassRateLimited
	case status == http.StatusRequestTimeout || status >= 500:
		return ClassTransient
	default:
		// 3xx (redirects are never followed: they would leak the UserSig)
		// and 4xx mean a wrong base URL or proxy setup.
		return ClassFatal
	}
}

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

// ErrBreakerOpen is matched (errors.Is) by every fast failure the circuit
// breaker produces. errors.As with *BreakerOpenError gives the wait.
var ErrBreakerOpen = errors.New("tencentchat: circuit breaker open")

// BreakerOpenError is returned without calling the server while the breaker
// is open (or half-open and at its probe limit). RetryAfter is how long until
// the breaker lets a probe through. Classify reports ClassTransient.
type BreakerOpenError struct {
	RetryAfter time.Duration
	// Last is the error of the attempt before the breaker refused, if any.
	Last error
}

func (e *BreakerOpenError) Error() string {
	s := fmt.Sprintf("tencentchat: circuit breaker open, retry after %s", e.RetryAfter.Round(time.Millisecond))
	if e.Last != nil {
		s += "; last error: " + e.Last.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrBreakerOpen) true.
func (e *BreakerOpenError) Is(target error) bool { return target == ErrBreakerOpen }

// Unwrap returns the last attempt's error.
func (e *BreakerOpenError) Unwrap() error { return e.Last }

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
// for 429, ClassFatal for other statuses); transport failures and an open breaker are
// ClassTransient; pagination and invalid-request errors are ClassPermanent.
// Unknown errors are ClassTransient.
func Classify(err error) Class {
	if err == nil {
		return ClassOK
	}
	if errors.Is(err, ErrBreakerOpen) {
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
