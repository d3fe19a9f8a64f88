package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCodeClassReferenceTable checks every code of the reference table.
func TestCodeClassReferenceTable(t *testing.T) {
	tests := []struct {
		codes []int
		want  Class
	}{
		{[]int{10004, 20005}, ClassTransient},
		{[]int{60008, 60014}, ClassTransient},
		{[]int{60007, 60011, 60018, 60019}, ClassRateLimited},
		{[]int{70050}, ClassResign},
		{[]int{70001}, ClassResign},
		{[]int{6017, 20001}, ClassPermanent},
		{[]int{130004, 130007}, ClassPermanent},
		{[]int{130002, 131000}, ClassFatal},
		{[]int{60002, 60003, 60009, 60012, 60015}, ClassFatal},
		{[]int{60004, 60005, 70003, 70009}, ClassResign},
		{[]int{60006, 60016, 60017, 60020}, ClassFatal},
		{[]int{60010}, ClassFatal},
		{[]int{60021}, ClassFatal},
		{[]int{70013, 70014}, ClassFatal},
		{[]int{70016, 70020}, ClassFatal},
		{[]int{70051, 70107}, ClassFatal},
		{[]int{60013}, ClassTransient},
		{[]int{0}, ClassOK},
		// Codes the table does not list: common REST codes (60000–79999,
		// the 70000-range UserSig/account codes included) concern the app
		// and stop it; other codes are endpoint-specific and per record.
		{[]int{60000, 60001, 60022, 60099, 69999}, ClassFatal},
		{[]int{70000, 70002, 70052, 70169, 70398, 79999}, ClassFatal},
		{[]int{1, 6018, 10005, 20002, 59999, 80000, 99999, 130005, 131001}, ClassPermanent},
	}
	for _, tt := range tests {
		for _, code := range tt.codes {
			t.Run(fmt.Sprint(code), func(t *testing.T) {
				if got := CodeClass(code); got != tt.want {
					t.Errorf("CodeClass(%d) = %s, want %s", code, got, tt.want)
				}
				if code == 0 {
					return
				}
				err := fmt.Errorf("wrapped: %w", &APIError{Code: code, HTTPStatus: 200, Attempt: 1})
				if got := Classify(err); got != tt.want {
					t.Errorf("Classify(APIError %d) = %s, want %s", code, got, tt.want)
				}
			})
		}
	}
}

func TestCodeConstants(t *testing.T) {
	// The named constants are the codes of the reference table.
	tests := map[int]int{
		CodeUserNotFound: 130004, CodeInvalidUserID: 130007, CodeNoPermission: 130002,
		CodeServiceNotEnabled: 131000, CodeUserSigExpired: 70001, CodeFrequencyLimit: 60007,
		CodeInternalError: 10004, CodeInternalError2: 20005, CodeInvalidParameter: 6017,
		CodeInvalidPacket: 20001, CodeSigCheckRateLimited: 70050, CodeResponseJSONError: 60013,
	}
	for got, want := range tests {
		if got != want {
			t.Errorf("constant %d, want %d", got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"nil", nil, ClassOK},
		{"canceled", context.Canceled, ClassCanceled},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), ClassCanceled},
		{"closed", ErrClosed, ClassCanceled},
		{"transport", &TransportError{Op: "send", Err: errors.New("connection refused")}, ClassTransient},
		{"transport timeout wraps deadline", &TransportError{Op: "send", Timeout: true, Err: context.DeadlineExceeded}, ClassTransient},
		{"breaker open", &BreakerOpenError{RetryAfter: time.Second}, ClassTransient},
		{"breaker open after throttle", &BreakerOpenError{Last: &APIError{Code: 60007}}, ClassTransient},
		{"70050 pause", &SigPauseError{RetryAfter: time.Minute, Last: &APIError{Code: CodeSigCheckRateLimited}}, ClassTransient},
		{"pagination", &PaginationError{Reason: "max pages"}, ClassPermanent},
		{"invalid request", fmt.Errorf("%w: empty", ErrInvalidRequest), ClassPermanent},
		{"http 502", &APIError{HTTPStatus: 502}, ClassTransient},
		{"http 503", &APIError{HTTPStatus: 503}, ClassTransient},
		{"http 429", &APIError{HTTPStatus: 429}, ClassRateLimited},
		{"http 404", &APIError{HTTPStatus: 404}, ClassFatal},
		{"http 302", &APIError{HTTPStatus: 302}, ClassFatal},
		{"200 FAIL code 0", &APIError{HTTPStatus: 200}, ClassTransient},
		{"502 with code in body", &APIError{Code: 130004, HTTPStatus: 502}, ClassPermanent},
		{"escalated resign", &APIError{Code: 70001, escalated: true}, ClassFatal},
		{"escalated 60013", &APIError{Code: 60013, escalated: true}, ClassFatal},
		{"retry deadline keeps last class", &RetryDeadlineError{Last: &APIError{Code: 10004}}, ClassTransient},
		{"retry deadline throttled", &RetryDeadlineError{Last: &APIError{Code: 60007}}, ClassRateLimited},
		{"unknown", errors.New("boom"), ClassTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestClassRetryable(t *testing.T) {
	want := map[Class]bool{ClassOK: false, ClassTransient: true, ClassRateLimited: true, ClassResign: true,
		ClassPermanent: false, ClassFatal: false, ClassCanceled: false}
	for c, w := range want {
		if c.Retryable() != w {
			t.Errorf("%s.Retryable() = %v", c, !w)
		}
		if strings.HasPrefix(c.String(), "class(") {
			t.Errorf("class %d has no name", int(c))
		}
	}
}

func TestErrorsIsAs(t *testing.T) {
	var err error = fmt.Errorf("page 2: %w", &BreakerOpenError{RetryAfter: 3 * time.Second})
	if !errors.Is(err, ErrBreakerOpen) {
		t.Error("BreakerOpenError is not ErrBreakerOpen")
	}
	var boe *BreakerOpenError
	if !errors.As(err, &boe) || boe.RetryAfter != 3*time.Second {
		t.Errorf("errors.As BreakerOpenError = %v", boe)
	}
	if d, ok := RetryAfter(err); !ok || d != 3*time.Second || !errors.Is(err, ErrHoldOff) {
		t.Errorf("RetryAfter(BreakerOpenError) = %s, %v", d, ok)
	}
	err = fmt.Errorf("page 2: %w", &SigPauseError{RetryAfter: time.Minute, Last: &APIError{Code: CodeSigCheckRateLimited}})
	var spe *SigPauseError
	if !errors.Is(err, ErrHoldOff) || errors.Is(err, ErrBreakerOpen) || !errors.As(err, &spe) || errors.As(err, &boe) {
		t.Errorf("SigPauseError: Is/As wrong for %v", err)
	}
	if d, ok := RetryAfter(err); !ok || d != time.Minute {
		t.Errorf("RetryAfter(SigPauseError) = %s, %v", d, ok)
	}
	if d, ok := RetryAfter(&APIError{Code: CodeFrequencyLimit}); ok || d != 0 {
		t.Errorf("RetryAfter(APIError) = %s, %v", d, ok)
	}
	err = fmt.Errorf("walk: %w", &PaginationError{Reason: "repeated next", Pages: 3})
	if !errors.Is(err, ErrPagination) {
		t.Error("PaginationError is not ErrPagination")
	}
	err = &RetryDeadlineError{Attempts: 3, Last: &APIError{Code: CodeUserNotFound}}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != CodeUserNotFound {
		t.Errorf("errors.As APIError through RetryDeadlineError = %v", apiErr)
	}
}

func TestErrorTextRedactsUserSig(t *testing.T) {
	sig := "eJwtzM0KgkAYheFbmdX-SECRET-SIG"
	u := "https://example.test/v4/x?sdkappid=1&identifier=admin&usersig=" + sig + "&random=1&contenttype=json"
	tests := []error{
		&APIError{Code: 70001, Info: "bad sig in " + u, HTTPStatus: 200},
		&TransportError{Op: "send", Err: errors.New("dial " + u)},
		&TransportError{Op: "send", Err: stripURLError(&url.Error{Op: "Post", URL: u, Err: errors.New("refused")})},
		&RetryDeadlineError{Last: &TransportError{Op: "send", Err: errors.New(u)}},
		&BreakerOpenError{Last: &APIError{Code: 10004, Info: u}},
		&SigPauseError{Last: &APIError{Code: 70050, Info: u}},
	}
	for _, err := range tests {
		if strings.Contains(err.Error(), sig) {
			t.Errorf("error text contains the UserSig: %s", err)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			t.Errorf("%T still wraps *url.Error", err)
		}
	}
	if got := redact("a usersig=abc&random=1"); got != "a usersig=REDACTED&random=1" {
		t.Errorf("redact = %q", got)
	}
}

func TestAPIErrorText(t *testing.T) {
	tests := []struct {
		err  *APIError
		want []string
	}{
		{&APIError{Code: 130004, Info: "no user", HTTPStatus: 200, Attempt: 1}, []string{"ErrorCode 130004", "no user", "permanent", "attempt 1"}},
		{&APIError{HTTPStatus: http.StatusBadGateway, Attempt: 3}, []string{"HTTP 502", "transient", "attempt 3"}},
		{&APIError{Code: 70001, escalated: true, Attempt: 2}, []string{"ErrorCode 70001", "fatal", "repeated"}},
	}
	for _, tt := range tests {
		s := tt.err.Error()
		for _, w := range tt.want {
			if !strings.Contains(s, w) {
				t.Errorf("%q does not contain %q", s, w)
			}
		}
	}
}

// TestAPIErrorFix checks the setting named for every app-fatal answer.
func TestAPIErrorFix(t *testing.T) {
	const (
		admin   = "the admin identifier (Admin): it must be an imported app admin account"
		app     = "the SDKAppID: the app is invalid, disabled or its package expired"
		key     = "the SecretKey: the UserSig made with it is rejected"
		region  = "the Region (or BaseURL): the app is not found in this region"
		mangled = "the API base URL (BaseURL): requests arrive malformed, check proxies"
	)
	tests := []struct {
		codes    []int
		status   int
		hint     string
		settings []string
	}{
		{[]int{0}, 404, "the API base URL (BaseURL or Region): the server answered HTTP 404", []string{"BaseURL", "Region"}},
		{[]int{CodeNoPermission}, 200, "the admin identifier (Admin): it lacks permission for official accounts", []string{"Admin"}},
		{[]int{CodeServiceNotEnabled}, 200, "the SDKAppID: enable the official-account service (Ultimate or Enterprise edition) in the Chat console", []string{"SDKAppID"}},
		{[]int{CodeAppIDInvalid, CodeAppDisabled, CodePackageExpired, CodeMissingAppID}, 200, app, []string{"SDKAppID"}},
		{[]int{CodeRequestDisabled}, 200, "the SDKAppID: this API is disabled for the app in the Chat console", []string{"SDKAppID"}},
		{[]int{CodeAdminRequired, CodeIdentifierMismatch, CodeAccountBlacklisted, CodeAccountNotImported, CodeWrongAccountType}, 200, admin, []string{"Admin"}},
		{[]int{CodeIPNotAllowed}, 200, "the app's IP allow-list in the Chat console: this host's address is not allowed", nil},
		{[]int{CodeKeyNotFound, CodeAppIDNotFound}, 200, region, []string{"Region", "BaseURL"}},
		{[]int{CodeAppIDMismatch}, 200, "the SDKAppID or SecretKey: they do not belong together", []string{"SDKAppID", "SecretKey"}},
		{[]int{CodeAccountOrSigError, CodeSigParseError, CodeUserSigExpired, CodeSigVerifyFailed, CodeSigVerifyFailed2, CodeSigCheckRateLimited}, 200, key, []string{"SecretKey"}},
		{[]int{CodeMalformedURL, CodeMalformedJSON, CodeResourceError}, 200, mangled, []string{"BaseURL"}},
		{[]int{60099}, 200, "the API client configuration (ErrorCode 60099)", nil},
		{[]int{CodeResponseJSONError}, 200, "the API client configuration (ErrorCode 60013)", nil},
	}
	for _, tt := range tests {
		for _, code := range tt.codes {
			e := &APIError{Code: code, HTTPStatus: tt.status}
			if got := e.Hint(); got != tt.hint {
				t.Errorf("code %d: Hint = %q, want %q", code, got, tt.hint)
			}
			if got := e.Settings(); !slices.Equal(got, tt.settings) {
				t.Errorf("code %d: Settings = %q, want %q", code, got, tt.settings)
			}
		}
	}
	// Settings returns a copy: changing it does not change the table.
	e := &APIError{Code: CodeNoPermission}
	e.Settings()[0] = "changed"
	if e.Settings()[0] != "Admin" {
		t.Error("Settings shares the table's slice")
	}
	// Every fatal code of the table names a fix.
	for code, r := range codeRules {
		if r.class == ClassFatal && r.fix == nil {
			t.Errorf("fatal code %d has no fix", code)
		}
	}
}
