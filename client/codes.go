package client

import (
	"fmt"
	"net/http"
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
	// fix is what to change when the answer stops the app; nil when the
	// class is not fatal, or no setting explains it.
	fix *fix
}

// fix names what to change when every call fails the same way.
type fix struct {
	// settings are the Config fields at fault, the most likely first;
	// none when the fix lies outside the Config (the Chat console).
	settings []string
	// hint names the setting and the reason, for the operator.
	hint string
}

// The fixes of the app-fatal codes (and of the re-sign codes, which are
// fatal once the corrective re-sign got the same answer).
var (
	fixAdminPermission   = &fix{[]string{"Admin"}, "the admin identifier (Admin): it lacks permission for official accounts"}
	fixServiceNotEnabled = &fix{[]string{"SDKAppID"}, "the SDKAppID: enable the official-account service (Ultimate or Enterprise edition) in the Chat console"}
	fixApp               = &fix{[]string{"SDKAppID"}, "the SDKAppID: the app is invalid, disabled or its package expired"}
	fixAPIDisabled       = &fix{[]string{"SDKAppID"}, "the SDKAppID: this API is disabled for the app in the Chat console"}
	fixAdmin             = &fix{[]string{"Admin"}, "the admin identifier (Admin): it must be an imported app admin account"}
	fixIPAllowList       = &fix{nil, "the app's IP allow-list in the Chat console: this host's address is not allowed"}
	fixRegion            = &fix{[]string{"Region", "BaseURL"}, "the Region (or BaseURL): the app is not found in this region"}
	fixKeyPair           = &fix{[]string{"SDKAppID", "SecretKey"}, "the SDKAppID or SecretKey: they do not belong together"}
	fixSecretKey         = &fix{[]string{"SecretKey"}, "the SecretKey: the UserSig made with it is rejected"}
	fixMalformed         = &fix{[]string{"BaseURL"}, "the API base URL (BaseURL): requests arrive malformed, check proxies"}
)

// codeRules is the reference table: the class, corrective-retry rule and
// fix of every code the client knows.
var codeRules = map[int]codeRule{
	CodeOK:                  {ClassOK, false, nil},
	CodeInternalError:       {ClassTransient, false, nil},
	CodeInternalError2:      {ClassTransient, false, nil},
	CodeServiceTimeout:      {ClassTransient, false, nil},
	CodeAccountSwapTimeout:  {ClassTransient, false, nil},
	CodeFrequencyLimit:      {ClassRateLimited, false, nil},
	CodeFrequencyLimitApp:   {ClassRateLimited, false, nil},
	CodeFrequencyLimitAPI:   {ClassRateLimited, false, nil},
	CodeFrequencyLimitUser:  {ClassRateLimited, false, nil},
	CodeSigCheckRateLimited: {ClassResign, true, fixSecretKey},
	CodeUserSigExpired:      {ClassResign, true, fixSecretKey},
	CodeAccountOrSigError:   {ClassResign, true, fixSecretKey},
	CodeSigParseError:       {ClassResign, true, fixSecretKey},
	CodeSigVerifyFailed:     {ClassResign, true, fixSecretKey},
	CodeSigVerifyFailed2:    {ClassResign, true, fixSecretKey},
	CodeInvalidParameter:    {ClassPermanent, false, nil},
	CodeInvalidPacket:       {ClassPermanent, false, nil},
	CodeUserNotFound:        {ClassPermanent, false, nil},
	CodeInvalidUserID:       {ClassPermanent, false, nil},
	CodeNoPermission:        {ClassFatal, false, fixAdminPermission},
	CodeServiceNotEnabled:   {ClassFatal, false, fixServiceNotEnabled},
	CodeMalformedURL:        {ClassFatal, false, fixMalformed},
	CodeMalformedJSON:       {ClassFatal, false, fixMalformed},
	CodeResourceError:       {ClassFatal, false, fixMalformed},
	CodeMissingAppID:        {ClassFatal, false, fixApp},
	CodeWrongAccountType:    {ClassFatal, false, fixAdmin},
	CodeAppIDInvalid:        {ClassFatal, false, fixApp},
	CodeAppDisabled:         {ClassFatal, false, fixApp},
	CodeRequestDisabled:     {ClassFatal, false, fixAPIDisabled},
	CodePackageExpired:      {ClassFatal, false, fixApp},
	CodeAdminRequired:       {ClassFatal, false, fixAdmin},
	CodeIPNotAllowed:        {ClassFatal, false, fixIPAllowList},
	CodeIdentifierMismatch:  {ClassFatal, false, fixAdmin},
	CodeAppIDMismatch:       {ClassFatal, false, fixKeyPair},
	CodeKeyNotFound:         {ClassFatal, false, fixRegion},
	CodeAppIDNotFound:       {ClassFatal, false, fixRegion},
	CodeAccountBlacklisted:  {ClassFatal, false, fixAdmin},
	CodeAccountNotImported:  {ClassFatal, false, fixAdmin},
	CodeResponseJSONError:   {ClassTransient, true, nil},
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

// codeFix returns what to change for an answer with this ErrorCode (0: an
// HTTP status without ErrorCode).
func codeFix(code, httpStatus int) fix {
	if code == 0 {
		return fix{[]string{"BaseURL", "Region"},
			fmt.Sprintf("the API base URL (BaseURL or Region): the server answered HTTP %d", httpStatus)}
	}
	if r, ok := codeRules[code]; ok && r.fix != nil {
		return *r.fix
	}
	return fix{hint: fmt.Sprintf("the API client configuration (ErrorCode %d)", code)}
}
