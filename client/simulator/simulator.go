// Package simulator is an in-process simulator of the Tencent Cloud Chat
// REST API endpoint get_subscribed_official_account_list, for development,
// tests and benchmarks: the way net/http/httptest sits beside net/http.
//
// It validates the real URL parameters and verifies UserSigs with
// tencentyun.VerifyUserSig, answers with the spec's envelope, codes and
// pagination, enforces the per-app call frequency limit over a trailing
// second, injects faults (latency, HTTP 502, internal errors, outages, slow
// answers, forced codes per user) and counts what it saw (Stats).
//
// New returns the http.Handler; NewServer also listens on 127.0.0.1:0.
// Besides the API the handler serves GET /stats (Stats as JSON), DELETE
// /stats (reset), GET /faults and POST /faults (merge a JSON Faults), POST
// /subscriptions (subscribe or unsubscribe a user, reported to the webhook
// URL as Tencent does: churn.go) and GET /healthz.
//
// Order of checks for a call, each stopping the call with its answer (the
// body is read and its Subscriber_Account counted in Stats.PerUser first):
//  1. injected latency, outage (502), P502 (502), slow answer;
//  2. URL parameters: contenttype=json (60002), random a uint32 (60002),
//     sdkappid present (60012), a number (60002) and the app's (70020),
//     identifier present (60004), usersig valid for identifier (70001,
//     70003, 70009, 70013, 70014), identifier the admin (60010);
//  3. the frequency limit (60007);
//  4. injected P10004 / P20005;
//  5. the body (20001, 6017), then Faults.ForceCode for the user;
//  6. the user's data (130004, or a page).
//
// # Frequency limit
//
// Config.Rate calls (default 200, the spec's maximum) are allowed in any
// trailing second: a call at t is refused when Rate calls arrived in
// (t-1s, t]. The answer is ErrorCode 60007, the reference table's "call
// frequency over the limit" code that Tencent documents as "REST API call
// frequency exceeds the limit" (60011 is the whole-app limit, 60018/60019
// are generic "too frequent" codes). The limit is per app, so it applies to
// calls that passed authentication; every such call counts in the window,
// the ones it refuses included, because the service counts attempts
// (retries and extra pages are calls too): a client that keeps sending
// while limited stays limited. A negative Rate disables the limit, for
// tests and benchmarks that need more. Stats.MaxPerSecond counts every
// arrival whatever its outcome, so a bursting client is visible even when
// the limit is off.
//
// # Data
//
// Generate derives users from a seed on demand: UserID(i) for i in [0,
// Users) exist except a deterministic GenConfig.UnknownShare of them;
// every other ID is unknown (130004). Dataset.Known and
// Dataset.SubscriptionCount let tests compute the expected pages.
package simulator

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Path is the API endpoint's path.
const Path = "/v4/official_account_open_http_svc/get_subscribed_official_account_list"

// DefaultRate is the endpoint's documented limit: 200 calls per second.
const DefaultRate = 200

// maxBody bounds a request body; a longer one answers 20001.
const maxBody = 1 << 20

// Config configures a Simulator.
type Config struct {
	// SDKAppID, Admin and SecretKey are the simulated app, its admin
	// account and the key UserSigs are verified with. All required.
	SDKAppID  int
	Admin     string
	SecretKey string
	// Rate is the call frequency limit per trailing second. 0 means
	// DefaultRate (200); a negative value disables the limit.
	Rate int
	// Dataset is what the endpoint serves. nil means Generate(GenConfig{}).
	Dataset *Dataset
	// Faults are injected from the start; the zero value injects nothing.
	Faults Faults
	// Now is the clock for UserSig expiry, the frequency window, outages and
	// stats. nil means time.Now. Latency is always real time.
	Now func() time.Time
	// Seed seeds the fault dice (probabilities, jitter) and the churn.
	Seed uint64
	// Webhook is where subscription changes are reported (churn.go); the
	// zero value reports none.
	Webhook Webhook
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.SDKAppID <= 0 || uint64(c.SDKAppID) > 1<<32-1:
		return fmt.Errorf("simulator: SDKAppID %d is not a positive 32-bit number", c.SDKAppID)
	case c.Admin == "":
		return errors.New("simulator: Admin is required")
	case c.SecretKey == "":
		return errors.New("simulator: SecretKey is required")
	}
	return c.Faults.Validate()
}

// Simulator is the simulated endpoint, an http.Handler. It is safe for
// concurrent use; Stats, SetFaults and ResetStats may be called while it
// serves.
type Simulator struct {
	appID   int
	appIDs  string
	admin   string
	rate    int
	data    *Dataset
	now     func() time.Time
	sigs    *sigVerifier
	limiter *limiter
	stats   *recorder
	mux     *http.ServeMux

	faultsMu    sync.RWMutex
	faults      Faults
	outageUntil time.Time

	diceMu sync.Mutex
	dice   *rand.Rand

	listsMu sync.RWMutex
	lists   map[string][]entry // changed users' lists (churn.go)
	churnState
}

// New returns a Simulator for cfg.
func New(cfg Config) (*Simulator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Dataset == nil {
		cfg.Dataset = Generate(GenConfig{})
	}
	s := &Simulator{
		appID:   cfg.SDKAppID,
		appIDs:  strconv.Itoa(cfg.SDKAppID),
		admin:   cfg.Admin,
		rate:    cfg.Rate,
		data:    cfg.Dataset,
		now:     cfg.Now,
		sigs:    &sigVerifier{sdkAppID: uint64(cfg.SDKAppID), key: cfg.SecretKey, cache: make(map[string]sigEntry)},
		limiter: &limiter{limit: cfg.Rate},
		stats:   newRecorder(cfg.Now(), cfg.Rate),
		dice:    rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0xa076_1d64_78bd_642f)),
		lists:   map[string][]entry{},
	}
	s.SetWebhook(cfg.Webhook)
	s.setFaultsLocked(cfg.Faults, false)

	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST "+Path, s.serveAPI)
	s.mux.HandleFunc("GET /stats", s.serveStats)
	s.mux.HandleFunc("DELETE /stats", s.serveResetStats)
	s.mux.HandleFunc("GET /faults", s.serveGetFaults)
	s.mux.HandleFunc("POST /faults", s.servePostFaults)
	s.mux.HandleFunc("POST /subscriptions", s.serveSubscriptions)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	return s, nil
}

// ServeHTTP serves the API and the knob endpoints; other paths answer 404
// and other methods 405, as a web server does.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Dataset returns the data the simulator serves.
func (s *Simulator) Dataset() *Dataset { return s.data }

// SetFaults replaces the injected faults: an OutageFor starts an outage
// now, none ends a running one. It returns an error, and changes nothing,
// when f is invalid.
func (s *Simulator) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.faultsMu.Lock()
	s.setFaultsLocked(f, false)
	s.faultsMu.Unlock()
	return nil
}

// setFaultsLocked installs f. An OutageFor starts an outage now; without
// one, a running outage continues when keepOutage is set and ends otherwise.
func (s *Simulator) setFaultsLocked(f Faults, keepOutage bool) {
	f.ForceCode = cloneCodes(f.ForceCode)
	switch {
	case f.OutageFor > 0:
		s.outageUntil = s.now().Add(f.OutageFor)
	case !keepOutage:
		s.outageUntil = time.Time{}
	}
	f.OutageFor = 0 // the outage lives in outageUntil
	s.faults = f
}

func cloneCodes(m map[string]int) map[string]int {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int, len(m))
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// Faults returns the injected faults; OutageFor is what remains of a
// running outage.
func (s *Simulator) Faults() Faults {
	s.faultsMu.RLock()
	defer s.faultsMu.RUnlock()
	f := s.faults
	f.ForceCode = cloneCodes(f.ForceCode)
	f.OutageFor = max(0, s.outageUntil.Sub(s.now()))
	return f
}

// Stats returns a snapshot of the counters.
func (s *Simulator) Stats() Stats { return s.stats.snapshot() }

// ResetStats zeroes the counters (calls in flight stay in flight).
func (s *Simulator) ResetStats() {
	s.stats.mu.Lock()
	s.stats.reset(s.now())
	s.stats.mu.Unlock()
}

// roll reports true with probability p.
func (s *Simulator) roll(p float64) bool {
	if p <= 0 {
		return false
	}
	if p >= 1 {
		return true
	}
	s.diceMu.Lock()
	v := s.dice.Float64()
	s.diceMu.Unlock()
	return v < p
}

func (s *Simulator) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	s.diceMu.Lock()
	defer s.diceMu.Unlock()
	return time.Duration(s.dice.Int64N(int64(d)))
}

// outcomeAbandoned is the outcome of a call whose client went away.
const outcomeAbandoned = -1

func (s *Simulator) serveAPI(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	s.stats.arrive(now)
	code := s.answer(w, r, now)
	s.stats.done(code)
}

// answer answers one API call that arrived at now and returns its outcome
// for the stats.
func (s *Simulator) answer(w http.ResponseWriter, r *http.Request, now time.Time) int {
	ctx := r.Context()
	// Read the body first: the server notices a client going away (and
	// cancels ctx) only once the body has been read.
	body, bodyErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if bodyErr != nil && ctx.Err() != nil {
		return outcomeAbandoned
	}
	var (
		req pageRequest
		bad *badRequest
	)
	if bodyErr == nil {
		req, bad = decodeRequest(body)
		if req.user != "" { // attributed whatever happens next
			s.stats.user(req.user)
		}
	}
	s.faultsMu.RLock()
	f, outageUntil := s.faults, s.outageUntil // ForceCode is never mutated in place
	s.faultsMu.RUnlock()

	if !sleep(ctx, f.Latency+s.jitter(f.Jitter)) {
		return outcomeAbandoned
	}
	if now.Before(outageUntil) || s.roll(f.P502) {
		writeBadGateway(w)
		return http.StatusBadGateway
	}
	if s.roll(f.SlowProbability) && !sleep(ctx, f.SlowDelay) {
		return outcomeAbandoned
	}

	if code, info := s.checkURL(r, now); code != 0 {
		writeFail(w, code, info)
		return code
	}
	if !s.limiter.allow(now) {
		writeFail(w, CodeRateLimited, "")
		return CodeRateLimited
	}
	if s.roll(f.P10004) {
		writeFail(w, CodeInternal, "")
		return CodeInternal
	}
	if s.roll(f.P20005) {
		writeFail(w, CodeInternalRetry, "")
		return CodeInternalRetry
	}

	if bodyErr != nil {
		writeFail(w, CodeInvalidPacket, "invalid request packet: body unreadable or above 1 MiB")
		return CodeInvalidPacket
	}
	if bad != nil {
		writeFail(w, bad.code, bad.info)
		return bad.code
	}
	if code := f.forced(req.user); code != 0 {
		if code == http.StatusBadGateway {
			writeBadGateway(w)
		} else {
			writeFail(w, code, "")
		}
		return code
	}

	total, ok := s.count(req.user)
	if !ok {
		writeFail(w, CodeUserNotFound, "")
		return CodeUserNotFound
	}
	bp := bufPool.Get().(*[]byte)
	b := s.appendPage((*bp)[:0], req, total)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	if cap(b) <= 1<<20 {
		*bp = b
		bufPool.Put(bp)
	}
	return CodeOK
}

// checkURL validates the URL parameters and the UserSig; it returns 0 or
// the ErrorCode and ErrorInfo to answer.
func (s *Simulator) checkURL(r *http.Request, now time.Time) (int, string) {
	q := r.URL.Query()
	if q.Get("contenttype") != "json" {
		return CodeBadURL, "URL parameter contenttype must be json"
	}
	if _, err := strconv.ParseUint(q.Get("random"), 10, 32); err != nil {
		return CodeBadURL, "URL parameter random must be a 32-bit unsigned integer"
	}
	app := q.Get("sdkappid")
	switch {
	case app == "":
		return CodeNoAppID, "URL parameter sdkappid is required"
	case app != s.appIDs:
		if _, err := strconv.ParseUint(app, 10, 64); err != nil {
			return CodeBadURL, "URL parameter sdkappid must be a number"
		}
		return CodeAppNotFound, "sdkappid not found"
	}
	id := q.Get("identifier")
	if id == "" {
		return CodeNoAccount, "URL parameter identifier is required"
	}
	if code, info := s.sigs.verify(id, q.Get("usersig"), now); code != 0 {
		return code, info
	}
	if id != s.admin {
		return CodeNotAdmin, "identifier is not the app admin"
	}
	return 0, ""
}
