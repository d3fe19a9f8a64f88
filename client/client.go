// Package client calls the Tencent Cloud Chat REST API
// get_subscribed_official_account_list: one page per call or a user's
// complete list, with a signed and cached UserSig, a client-side rate
// limiter that keeps every trailing second within the app's budget, a
// circuit breaker, bounded retries and OpenTelemetry spans and metrics.
//
// Every failure is returned as a typed error and mapped by Classify to one
// Class (transient, rate-limited, re-sign, per-record permanent, app-fatal,
// canceled), which the processor uses to decide what to do with a record.
// Neither the secret key nor the UserSig is ever written to errors, logs,
// spans or metrics.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// APIPath is the path of the endpoint, appended to the base URL.
const APIPath = "/v4/official_account_open_http_svc/get_subscribed_official_account_list"

// maxBodyBytes bounds a response body: 200 accounts with every field at its
// documented maximum size stay well below it.
const maxBodyBytes = 16 << 20

// Client calls get_subscribed_official_account_list. It is safe for
// concurrent use by any number of goroutines; all of them share one rate
// limiter (or the Config.Budget shared with other processes), one circuit
// breaker and one cached UserSig. Create it with New
// and release it with Close.
type Client struct {
	cfg      Config
	endpoint string // base URL + APIPath
	hc       *http.Client
	own      *http.Transport // the transport New created, closed by Close
	sig      *signer
	lim      *limiter
	br       *breaker
	bo       backoff
	tel      *telemetry
	random   func() uint32
	closed   atomic.Bool
	// pauseEnd (unix nanos, 0 = none) is when the pause the server asked
	// for with 70050 ends. No call is made before it; a 70050 for a call
	// sent after it (with a fresh UserSig) is app-fatal.
	pauseEnd atomic.Int64
	sigPause time.Duration // the pause after 70050: one minute
}

// New validates cfg, applies defaults and returns a ready Client. It does
// not contact the server. An invalid cfg gives the error of Validate.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	base, err := cfg.baseURL()
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:      cfg,
		endpoint: base.String() + APIPath,
		bo:       backoff{base: cfg.BackoffBase, max: cfg.BackoffMax},
		tel:      newTelemetry(cfg),
		random:   rand.Uint32,
		sigPause: sigCheckRateLimitedPause,
	}
	if cfg.HTTPClient != nil {
		hc := *cfg.HTTPClient
		c.hc = &hc
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 256
		tr.MaxIdleConnsPerHost = 256
		tr.IdleConnTimeout = 90 * time.Second
		c.own = tr
		c.hc = &http.Client{Transport: tr}
	}
	// A redirect would resend the UserSig to another URL: never follow one.
	c.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	c.sig = newSigner(cfg.SDKAppID, cfg.SecretKey, cfg.Admin, cfg.UserSigTTL, cfg.Now)
	c.sig.onRenew = c.tel.sigRenewed
	if cfg.Budget != nil {
		c.lim = newGuard(cfg)
	} else {
		c.lim = newLimiter(cfg)
		c.lim.onChange = c.tel.rateChanged
	}
	c.br = newBreaker(cfg.Breaker, c.tel.breakerChanged)
	c.tel.breaker.Record(context.Background(), int64(BreakerClosed))
	c.tel.rate.Record(context.Background(), c.EffectiveRate())
	return c, nil
}

// Close marks the client closed and releases idle connections of the
// transport New created. Calls in flight finish; later calls return ErrClosed.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if c.own != nil {
		c.own.CloseIdleConnections()
	}
	return nil
}

// BreakerState returns the circuit breaker's current state.
func (c *Client) BreakerState() BreakerState { return c.br.state() }

// EffectiveRate returns the rate the limiter currently allows, in calls/s:
// with a Config.Budget, the shared rate (Budget.Rate) for all processes
// together.
func (c *Client) EffectiveRate() float64 {
	if c.cfg.Budget != nil {
		return c.cfg.Budget.Rate()
	}
	return c.lim.current()
}

// GetPage fetches one page: one API call, retried per Config. A successful
// HTTP answer with a non-zero ErrorCode is an *APIError, never a Page.
func (c *Client) GetPage(ctx context.Context, req PageRequest) (*Page, error) {
	return c.getPage(ctx, req, 1)
}

func (c *Client) normalize(req PageRequest) (wireRequest, error) {
	if strings.TrimSpace(req.SubscriberAccount) == "" {
		return wireRequest{}, fmt.Errorf("%w: empty Subscriber_Account", ErrInvalidRequest)
	}
	if req.Limit == 0 {
		req.Limit = c.cfg.PageLimit
	}
	if req.Limit < 1 || req.Limit > MaxPageLimit {
		return wireRequest{}, fmt.Errorf("%w: Limit %d not in 1..%d", ErrInvalidRequest, req.Limit, MaxPageLimit)
	}
	f := req.Filter
	if f == nil {
		f = c.cfg.Filter
	} else if list, name, known := f.unknownField(); name != "" {
		return wireRequest{}, fmt.Errorf("%w: unknown %s field %q (want one of %v)", ErrInvalidRequest, list, name, known)
	}
	if f != nil && len(f.OfficialAccountBaseInfoFilter) == 0 && len(f.SelfInfoFilter) == 0 {
		f = nil // absent = all fields
	}
	return wireRequest{SubscriberAccount: req.SubscriberAccount, Limit: req.Limit, Offset: req.Offset, ResponseFilter: f}, nil
}

// getPage runs the retry loop for one page; page is its 1-based number
// within a GetAll walk (1 for GetPage).
func (c *Client) getPage(ctx context.Context, req PageRequest, page int) (p *Page, err error) {
	ctx, span := c.tel.tracer.Start(ctx, spanGetPage, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attrPage.Int(page), attrOffset.Int64(int64(req.Offset))))
	defer func() {
		if err != nil {
			_, _, class := outcomeAttrs(err)
			span.SetAttributes(attrClass.String(class.String()))
			span.SetStatus(codes.Error, err.Error())
		} else {
			span.SetAttributes(attrAccounts.Int(len(p.Accounts)), attrComplete.Int(p.CompleteFlag))
		}
		span.End()
	}()

	if c.closed.Load() {
		return nil, ErrClosed
	}
	wire, err := c.normalize(req)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(wire)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}

	start := time.Now()
	deadline := start.Add(c.cfg.RetryDeadline)
	var (
		last     error
		resigned bool // the one re-sign of this call is spent
		resent   bool // the one re-send after 60013 is spent
	)
	giveUp := func(attempts int) error {
		return &RetryDeadlineError{Attempts: attempts, Elapsed: time.Since(start), Last: last}
	}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Never retry (or start) while the server asked for a pause, or
		// while the breaker refuses: it is asked before the limiter, so a
		// refused call takes no token.
		if d := c.pauseLeft(); d > 0 {
			return nil, &SigPauseError{RetryAfter: d, Last: last}
		}
		done, err := c.br.allow(last)
		if err != nil {
			return nil, err
		}
		waited, slot, err := c.waitTurn(ctx, deadline)
		c.tel.recordWait(ctx, waited)
		if err != nil {
			done(errNotSent)
		}
		if errors.Is(err, errWaitPastDeadline) {
			if last == nil {
				last = &TransportError{Op: "rate limit", Attempt: attempt, Timeout: true, Err: err}
			}
			return nil, giveUp(attempt - 1)
		}
		if err != nil {
			return nil, err
		}
		// The breaker may have opened while the call waited for its turn
		// (calls queue behind the limiter): do not send it to a server
		// known to be down.
		if err := c.br.refuse(last); err != nil {
			slot.cancel()
			done(errNotSent)
			return nil, err
		}

		sent := time.Now()
		p, usedSig, err := c.attempt(ctx, body, attempt, page, deadline, waited, slot, done)
		if err == nil {
			if end := c.pauseEnd.Load(); end != 0 && sent.UnixNano() >= end {
				c.pauseEnd.CompareAndSwap(end, 0) // the signature works again
			}
			return p, nil
		}
		if errors.Is(err, ErrBreakerOpen) || Classify(err) == ClassCanceled {
			return nil, err
		}
		cl := Classify(err)
		var apiErr *APIError
		errors.As(err, &apiErr)
		code := 0
		if apiErr != nil {
			code = apiErr.Code
		}
		switch {
		case code == CodeSigCheckRateLimited:
			// 70050: re-sign and pause all calls for a minute; the same
			// answer to a call sent after the pause is fatal.
			pause, repeated := c.sigCheckFailed(sent)
			if repeated {
				apiErr.escalated = true
				return nil, err
			}
			if pause > 0 {
				if _, serr := c.sig.invalidate(usedSig); serr != nil {
					return nil, serr
				}
			}
			return nil, &SigPauseError{RetryAfter: c.pauseLeft(), Last: err}
		case cl == ClassResign:
			if resigned {
				apiErr.escalated = true
				return nil, err
			}
			resigned = true
			if _, serr := c.sig.invalidate(usedSig); serr != nil {
				return nil, serr
			}
		case code == CodeResponseJSONError:
			if resent {
				apiErr.escalated = true
				return nil, err
			}
			resent = true
		case cl == ClassRateLimited:
			c.throttled(ctx)
		case !cl.Retryable():
			return nil, err
		}
		last = err
		if attempt >= c.cfg.MaxAttempts {
			return nil, giveUp(attempt)
		}
		d := c.bo.retryDelay(attempt, cl, code)
		if time.Now().Add(d).After(deadline) {
			return nil, giveUp(attempt)
		}
		if d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			}
		}
	}
}

// pauseLeft returns how long the pause requested by 70050 still lasts.
func (c *Client) pauseLeft() time.Duration {
	end := c.pauseEnd.Load()
	if end == 0 {
		return 0
	}
	return time.Until(time.Unix(0, end))
}

// sigCheckFailed records a 70050 answer to a call sent at sent. It starts a
// pause (returned as pause > 0) unless one is running already; it reports
// repeated when the call was sent after an earlier pause had ended.
func (c *Client) sigCheckFailed(sent time.Time) (pause time.Duration, repeated bool) {
	for {
		end := c.pauseEnd.Load()
		if end != 0 && sent.UnixNano() >= end {
			return 0, true
		}
		if end != 0 {
			return 0, false // the same episode: another call started the pause
		}
		if c.pauseEnd.CompareAndSwap(0, time.Now().Add(c.sigPause).UnixNano()) {
			return c.sigPause, false
		}
	}
}

// attempt makes one HTTP call the breaker allowed, under its own span, and
// reports its outcome to done. It returns the UserSig it used so that a
// rejection can invalidate exactly it.
func (c *Client) attempt(ctx context.Context, body []byte, attempt, page int, deadline time.Time, waited time.Duration, slot *sendSlot, done func(error)) (*Page, string, error) {
	defer slot.cancel() // no-op once send marked the slot sent
	ctx, span := c.tel.tracer.Start(ctx, spanAttempt, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attrAttempt.Int(attempt),
			attrPage.Int(page),
			attrBreaker.String(c.br.state().String()),
			attrLimiterWait.Float64(float64(waited)/float64(time.Millisecond)),
		))
	defer span.End()

	sig, err := c.sig.get()
	if err != nil {
		done(errNotSent)
		span.SetStatus(codes.Error, err.Error())
		return nil, "", err
	}
	start := time.Now()
	p, status, err := c.send(ctx, body, sig, attempt, deadline, slot)
	done(err)
	c.tel.recordAttempt(ctx, span, err, status, time.Since(start))
	return p, sig, err
}

// requestURL builds the URL with the query in the order of the API spec.
// The result carries the UserSig: it must never be logged or recorded.
func (c *Client) requestURL(sig string) string {
	var b strings.Builder
	b.Grow(len(c.endpoint) + len(sig) + 96)
	b.WriteString(c.endpoint)
	b.WriteString("?sdkappid=")
	b.WriteString(strconv.Itoa(c.cfg.SDKAppID))
	b.WriteString("&identifier=")
	b.WriteString(url.QueryEscape(c.cfg.Admin))
	b.WriteString("&usersig=")
	b.WriteString(url.QueryEscape(sig))
	b.WriteString("&random=")
	b.WriteString(strconv.FormatUint(uint64(c.random()), 10))
	b.WriteString("&contenttype=json")
	return b.String()
}

// send performs one HTTP exchange. Errors are *APIError, *TransportError
// (never net/http's *url.Error, whose text contains the URL) or the
// caller's context error.
func (c *Client) send(ctx context.Context, body []byte, sig string, attempt int, deadline time.Time, slot *sendSlot) (*Page, int, error) {
	timeout := min(c.cfg.Timeout, time.Until(deadline))
	if timeout <= 0 {
		timeout = time.Millisecond
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The call counts as sent for the rate limiter once the request is
	// written, or at the latest when the exchange ends.
	defer slot.sent()
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { slot.sent() },
	})

	req, err := http.NewRequestWithContext(actx, http.MethodPost, c.requestURL(sig), bytes.NewReader(body))
	if err != nil {
		return nil, 0, &TransportError{Op: "send", Attempt: attempt, Err: stripURLError(err)}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, 0, cerr
		}
		return nil, 0, &TransportError{Op: "send", Attempt: attempt,
			Timeout: errors.Is(actx.Err(), context.DeadlineExceeded) || isTimeout(err), Err: stripURLError(err)}
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBodyBytes))
		_ = resp.Body.Close()
	}()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, resp.StatusCode, cerr
		}
		return nil, resp.StatusCode, &TransportError{Op: "read", Attempt: attempt,
			Timeout: errors.Is(actx.Err(), context.DeadlineExceeded), Err: stripURLError(err)}
	}
	if len(raw) > maxBodyBytes {
		return nil, resp.StatusCode, &TransportError{Op: "read", Attempt: attempt,
			Err: fmt.Errorf("response body larger than %d bytes", maxBodyBytes)}
	}
	p, err := decodeResponse(raw, resp.StatusCode)
	if err != nil {
		var apiErr *APIError
		if errors.As(err, &apiErr) {
			apiErr.Attempt = attempt
			return nil, resp.StatusCode, apiErr
		}
		return nil, resp.StatusCode, &TransportError{Op: "decode", Attempt: attempt, Err: err}
	}
	return p, resp.StatusCode, nil
}

// stripURLError drops the *url.Error layer (its text holds the URL with
// the UserSig) and keeps the cause.
func stripURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
