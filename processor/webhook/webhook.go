// Package webhook receives Tencent Cloud Chat's subscription webhooks
// (OfficialAccount.CallbackAfterAddSubscriber and
// OfficialAccount.CallbackAfterDeleteSubscriber) and applies each change to
// the processor's subscription cache (processor.Pipeline.ApplyChange), and
// optionally writes one record per user to a changes topic
// (schemas.SubscriptionChange).
//
// # Protocol
//
// Tencent calls the webhook URL with
//
//	POST <url>?SdkAppid=<app>&CallbackCommand=<command>&contenttype=json&ClientIP=<ip>&OptPlatform=<platform>
//
// and a JSON body such as
//
//	{"CallbackCommand": "OfficialAccount.CallbackAfterAddSubscriber",
//	 "Official_Account": "@TOA#_example", "Operator_Account": "107867",
//	 "SubscribeAccountList": [{"Subscriber_Account": "jared"}],
//	 "EventTime": 1670574414123}
//
// (EventTime in Unix milliseconds), and expects
// {"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0} at once. The Receiver
// checks, in order, each failure answering a 4xx and counting its reason:
//
//  1. the method is POST (405, reason method);
//  2. SdkAppid and CallbackCommand are present (400, bad_query) and
//     SdkAppid is Config.SDKAppID (403, foreign_app);
//  3. with Config.Token set: RequestTime (Unix seconds) is within MaxSkew
//     of now (401, stale_time) and Sign is hex(SHA-256(token +
//     RequestTime)) (401, bad_sign), compared in constant time;
//  4. the body is at most MaxBodyBytes (413, too_large), JSON of the shape
//     above (400, bad_json) whose CallbackCommand is the query's
//     (400, bad_body), with an account, at least one subscriber and an
//     EventTime (400, bad_body).
//
// Other callback commands (the same URL may receive them all) are answered
// OK and counted as ignored. Bodies are never logged; a rejected request
// logs its reason and the peer's address, at most every 10 seconds.
package webhook

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/tencentchat-enricher/enricher/processor"
	"github.com/tencentchat-enricher/enricher/schemas"
)

// The callback commands about subscriptions.
const (
	CommandAdd    = "OfficialAccount.CallbackAfterAddSubscriber"
	CommandDelete = "OfficialAccount.CallbackAfterDeleteSubscriber"
)

// Defaults of Config fields left zero.
const (
	DefaultMaxBodyBytes   = 256 << 10
	DefaultMaxSkew        = 5 * time.Minute
	DefaultChangesTimeout = 5 * time.Second
)

// Applier applies a change to the caches; *processor.Processor and
// *processor.Pipeline implement it.
type Applier interface {
	ApplyChange(ctx context.Context, c processor.Change) ([]processor.ChangeOutcome, error)
}

// Writer writes the changes topic's records; a *kafka.Writer with its Topic
// set implements it.
type Writer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Config configures a Receiver. The zero value of every optional field
// selects the documented default.
type Config struct {
	// SDKAppID is the app whose webhooks are accepted (required).
	SDKAppID int
	// Token, when set, is the webhook authentication token configured for
	// the app: requests must carry RequestTime and Sign. Empty (default):
	// not checked (leave the URL unguessable and behind TLS).
	Token string
	// MaxBodyBytes bounds a request body. Default 256 KiB.
	MaxBodyBytes int64
	// MaxSkew bounds how far RequestTime may be from now. Default 5m.
	MaxSkew time.Duration
	// Applier applies the changes (required).
	Applier Applier
	// Changes, when set, receives one schemas.SubscriptionChange per user a
	// change applies to (duplicates and late changes excluded), keyed by
	// the user, before the webhook is answered; ChangesTimeout bounds the
	// write (default 5s).
	Changes        Writer
	ChangesTimeout time.Duration
	// Logger (default slog.Default()), MeterProvider and TracerProvider
	// (default the otel globals), Now (default time.Now).
	Logger         *slog.Logger
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
	Now            func() time.Time
}

// Receiver is the webhook endpoint, an http.Handler safe for concurrent use.
type Receiver struct {
	cfg    Config
	appID  string
	token  []byte
	tracer trace.Tracer
	reqs   metric.Int64Counter
	lag    metric.Float64Histogram
	pubs   metric.Int64Counter
	logLim *rate.Limiter
}

// New returns a Receiver for cfg.
func New(cfg Config) (*Receiver, error) {
	if cfg.SDKAppID <= 0 {
		return nil, errors.New("webhook: SDKAppID is required")
	}
	if cfg.Applier == nil {
		return nil, errors.New("webhook: Applier is required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = DefaultMaxSkew
	}
	if cfg.ChangesTimeout <= 0 {
		cfg.ChangesTimeout = DefaultChangesTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	mp, tp := cfg.MeterProvider, cfg.TracerProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	m := mp.Meter(instrumentationName)
	r := &Receiver{
		cfg: cfg, appID: strconv.Itoa(cfg.SDKAppID), token: []byte(cfg.Token),
		tracer: tp.Tracer(instrumentationName),
		logLim: rate.NewLimiter(rate.Every(10*time.Second), 1),
	}
	// Telemetry never fails the receiver: a nil instrument is skipped.
	r.reqs, _ = m.Int64Counter(MetricRequests, metric.WithDescription("Webhook requests, by webhook.command and webhook.outcome (accepted, ignored: another command, failed: the change could not be applied everywhere, or a rejection reason: method, bad_query, foreign_app, stale_time, bad_sign, too_large, bad_json, bad_body)."), metric.WithUnit("{request}"))
	r.lag, _ = m.Float64Histogram(MetricLag, metric.WithDescription("From a change's EventTime to its being applied to the caches."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))
	r.pubs, _ = m.Int64Counter(MetricChanges, metric.WithDescription("Records written to the changes topic, by webhook.result (ok, error)."), metric.WithUnit("{record}"))
	return r, nil
}

const instrumentationName = "github.com/tencentchat-enricher/enricher/processor/webhook"

// Metric names and attributes.
const (
	MetricRequests = "enricher.webhook.requests"
	MetricLag      = "enricher.webhook.lag"
	MetricChanges  = "enricher.webhook.changes_written"

	attrCommand = attribute.Key("webhook.command")
	attrOutcome = attribute.Key("webhook.outcome")
	attrResult  = attribute.Key("webhook.result")
	attrUsers   = attribute.Key("webhook.users")
)

// Rejection reasons (the outcome of a rejected request).
const (
	ReasonMethod     = "method"
	ReasonBadQuery   = "bad_query"
	ReasonForeignApp = "foreign_app"
	ReasonStaleTime  = "stale_time"
	ReasonBadSign    = "bad_sign"
	ReasonTooLarge   = "too_large"
	ReasonBadJSON    = "bad_json"
	ReasonBadBody    = "bad_body"
)

// body is the part of a webhook body the receiver reads.
type body struct {
	CallbackCommand      string `json:"CallbackCommand"`
	OfficialAccount      string `json:"Official_Account"`
	OperatorAccount      string `json:"Operator_Account"`
	SubscribeAccountList []struct {
		SubscriberAccount string `json:"Subscriber_Account"`
	} `json:"SubscribeAccountList"`
	EventTime int64 `json:"EventTime"`
}

var okAnswer = []byte(`{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`)

// ServeHTTP serves one webhook.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	command := q.Get("CallbackCommand")
	ctx, span := r.tracer.Start(req.Context(), "webhook "+commandName(command), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attrCommand.String(commandName(command))))
	defer span.End()
	outcome, status := r.serve(ctx, req, command)
	span.SetAttributes(attrOutcome.String(outcome))
	if status != http.StatusOK {
		span.SetStatus(codes.Error, outcome)
	}
	if r.reqs != nil {
		r.reqs.Add(ctx, 1, metric.WithAttributes(attrCommand.String(commandName(command)), attrOutcome.String(outcome)))
	}
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	w.WriteHeader(status)
	if status == http.StatusOK {
		_, _ = w.Write(okAnswer)
		return
	}
	_, _ = fmt.Fprintf(w, `{"ActionStatus":"FAIL","ErrorInfo":%q,"ErrorCode":%d}`, outcome, status)
}

// commandName is command as a metric attribute: one of the two known
// commands, "other" or "none", so that forged values do not make series.
func commandName(command string) string {
	switch command {
	case CommandAdd, CommandDelete:
		return command
	case "":
		return "none"
	}
	return "other"
}

// serve checks and applies one webhook and returns its outcome and status.
func (r *Receiver) serve(ctx context.Context, req *http.Request, command string) (string, int) {
	if req.Method != http.MethodPost {
		return r.reject(req, ReasonMethod, http.StatusMethodNotAllowed)
	}
	q := req.URL.Query()
	app := q.Get("SdkAppid")
	if app == "" || command == "" {
		return r.reject(req, ReasonBadQuery, http.StatusBadRequest)
	}
	if app != r.appID {
		return r.reject(req, ReasonForeignApp, http.StatusForbidden)
	}
	if len(r.token) > 0 {
		if reason := r.checkSign(q.Get("RequestTime"), q.Get("Sign")); reason != "" {
			return r.reject(req, reason, http.StatusUnauthorized)
		}
	}
	raw, err := io.ReadAll(io.LimitReader(req.Body, r.cfg.MaxBodyBytes+1))
	if err != nil {
		return r.reject(req, ReasonBadJSON, http.StatusBadRequest)
	}
	if int64(len(raw)) > r.cfg.MaxBodyBytes {
		return r.reject(req, ReasonTooLarge, http.StatusRequestEntityTooLarge)
	}
	if command != CommandAdd && command != CommandDelete {
		return "ignored", http.StatusOK
	}
	var b body
	if err := json.Unmarshal(raw, &b); err != nil {
		return r.reject(req, ReasonBadJSON, http.StatusBadRequest)
	}
	if b.CallbackCommand != command || b.OfficialAccount == "" || len(b.SubscribeAccountList) == 0 || b.EventTime <= 0 {
		return r.reject(req, ReasonBadBody, http.StatusBadRequest)
	}
	c := processor.Change{Account: b.OfficialAccount, Subscribed: command == CommandAdd, EventTime: time.UnixMilli(b.EventTime).UTC()}
	for _, s := range b.SubscribeAccountList {
		if s.SubscriberAccount == "" {
			return r.reject(req, ReasonBadBody, http.StatusBadRequest)
		}
		c.Users = append(c.Users, s.SubscriberAccount)
	}
	trace.SpanFromContext(ctx).SetAttributes(attrUsers.Int(len(c.Users)))
	received := r.cfg.Now()
	outcomes, err := r.cfg.Applier.ApplyChange(ctx, c)
	if r.lag != nil {
		r.lag.Record(ctx, max(0, r.cfg.Now().Sub(c.EventTime).Seconds()), metric.WithAttributes(attrCommand.String(command)))
	}
	werr := r.writeChanges(ctx, c, b.OperatorAccount, outcomes, received)
	if err != nil || werr != nil {
		if r.logLim.Allow() {
			r.cfg.Logger.Warn("webhook: change not applied everywhere", "command", command, "users", len(c.Users), "error", errors.Join(err, werr))
		}
		return "failed", http.StatusInternalServerError
	}
	return "accepted", http.StatusOK
}

// checkSign verifies RequestTime and Sign and returns "" or the reason.
func (r *Receiver) checkSign(requestTime, sign string) string {
	sec, err := strconv.ParseInt(requestTime, 10, 64)
	if err != nil {
		return ReasonStaleTime
	}
	if d := r.cfg.Now().Sub(time.Unix(sec, 0)); d > r.cfg.MaxSkew || d < -r.cfg.MaxSkew {
		return ReasonStaleTime
	}
	want := Sign(string(r.token), requestTime)
	if subtle.ConstantTimeCompare([]byte(want), []byte(sign)) != 1 {
		return ReasonBadSign
	}
	return ""
}

// Sign is the signature of a webhook sent at requestTime (Unix seconds, as
// in the URL) with token: hex(SHA-256(token + requestTime)).
func Sign(token, requestTime string) string {
	h := sha256.Sum256([]byte(token + requestTime))
	return hex.EncodeToString(h[:])
}

func (r *Receiver) reject(req *http.Request, reason string, status int) (string, int) {
	if r.logLim.Allow() {
		r.cfg.Logger.Warn("webhook: request rejected", "reason", reason, "remote", req.RemoteAddr)
	}
	return reason, status
}

// writeChanges writes one record per user the change applied to (not
// ignored as a duplicate or late).
func (r *Receiver) writeChanges(ctx context.Context, c processor.Change, operator string, outcomes []processor.ChangeOutcome, received time.Time) error {
	if r.cfg.Changes == nil {
		return nil
	}
	kind := schemas.ChangeUnsubscribed
	if c.Subscribed {
		kind = schemas.ChangeSubscribed
	}
	var msgs []kafka.Message
	for i, u := range c.Users {
		if i < len(outcomes) && outcomes[i] == processor.ChangeIgnored {
			continue
		}
		v, err := json.Marshal(schemas.SubscriptionChange{
			SchemaVersion: schemas.ChangeVersion, UserID: u, OfficialAccount: c.Account, Change: kind,
			EventTime: c.EventTime, OperatorAccount: operator, ReceivedAt: received.UTC(),
		})
		if err != nil {
			return err
		}
		msgs = append(msgs, kafka.Message{Key: []byte(u), Value: v})
	}
	if len(msgs) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, r.cfg.ChangesTimeout)
	defer cancel()
	err := r.cfg.Changes.WriteMessages(wctx, msgs...)
	if r.pubs != nil {
		res := "ok"
		if err != nil {
			res = "error"
		}
		r.pubs.Add(ctx, int64(len(msgs)), metric.WithAttributes(attrResult.String(res)))
	}
	if err != nil {
		return fmt.Errorf("changes topic: %w", err)
	}
	return nil
}
