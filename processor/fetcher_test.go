package processor

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/schemas"
)

type fetcherFunc func(ctx context.Context, user string) (*client.Subscriptions, error)

func (f fetcherFunc) GetAll(ctx context.Context, user string) (*client.Subscriptions, error) {
	return f(ctx, user)
}

// TestFetcherLookup: the client's answers map to the outcome table.
func TestFetcherLookup(t *testing.T) {
	name := "News"
	subs := &client.Subscriptions{TotalCount: 2, Pages: 1, Accounts: []client.OfficialAccount{
		{OfficialAccount: "@TOA#_a", Name: &name, SelfInfo: &client.SelfInfo{CustomString: &name}},
		{OfficialAccount: "@TOA#_b"},
	}}
	apiErr := func(code int) error { return &client.APIError{Code: code, HTTPStatus: 200, Attempt: 1} }
	tests := []struct {
		name        string
		subs        *client.Subscriptions
		err         error
		status      schemas.Status
		unavailable time.Duration // -1: not unavailable
		fatalCode   int
		setting     string
		enrichErr   bool
		outage      bool // unavailable, and the API as a whole
		open        bool // the fetcher's breaker is open after the call
	}{
		{name: "ok", subs: subs, status: schemas.StatusOK, unavailable: -1},
		{name: "130004", err: apiErr(client.CodeUserNotFound), status: schemas.StatusUserNotFound, unavailable: -1},
		{name: "130007", err: apiErr(client.CodeInvalidUserID), status: schemas.StatusInvalidUser, unavailable: -1},
		{name: "6017", err: apiErr(client.CodeInvalidParameter), status: schemas.StatusInvalidUser, unavailable: -1},
		{name: "20001", err: apiErr(client.CodeInvalidPacket), status: schemas.StatusInvalidUser, unavailable: -1},
		{name: "unlisted code", err: apiErr(123456), unavailable: -1, enrichErr: true},
		{name: "pagination", err: &client.PaginationError{Reason: "repeated next"}, unavailable: -1, enrichErr: true},
		{name: "131000", err: apiErr(client.CodeServiceNotEnabled), unavailable: -1, fatalCode: 131000, setting: "official-account service"},
		{name: "130002", err: apiErr(client.CodeNoPermission), unavailable: -1, fatalCode: 130002, setting: "Admin"},
		{name: "70016", err: apiErr(client.CodeKeyNotFound), unavailable: -1, fatalCode: 70016, setting: "Region"},
		{name: "HTTP 404", err: &client.APIError{HTTPStatus: 404}, unavailable: -1, fatalCode: 0, setting: "BaseURL"},
		{name: "breaker open", err: &client.BreakerOpenError{RetryAfter: 3 * time.Second}, unavailable: 3 * time.Second, outage: true},
		{name: "retries exhausted, breaker opened", err: &client.RetryDeadlineError{Attempts: 5, Last: apiErr(client.CodeInternalError)}, unavailable: 0, open: true, outage: true},
		{name: "retries exhausted", err: &client.RetryDeadlineError{Attempts: 5, Last: apiErr(client.CodeInternalError)}, unavailable: 0},
		{name: "transport", err: &client.TransportError{Op: "send", Err: errors.New("refused")}, unavailable: 0},
		{name: "client closed", err: client.ErrClosed, unavailable: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f Fetcher = fetcherFunc(func(ctx context.Context, user string) (*client.Subscriptions, error) { return tc.subs, tc.err })
			if tc.open {
				f = openFetcher{f}
			}
			now := time.Unix(1700000000, 0)
			l, err := fetcherLookup(f, func() time.Time { return now })(context.Background(), "u")
			var ue *unavailableError
			var fe *FatalError
			var ee *enrichError
			switch {
			case tc.unavailable >= 0:
				if !errors.As(err, &ue) || ue.retryAfter != tc.unavailable || !errors.Is(err, errUnavailable) || ue.outage != tc.outage {
					t.Fatalf("err %v, want unavailable after %v", err, tc.unavailable)
				}
			case tc.setting != "":
				if !errors.As(err, &fe) || fe.Code != tc.fatalCode || !strings.Contains(fe.Error(), tc.setting) || !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want fatal %d naming %s", err, tc.fatalCode, tc.setting)
				}
			case tc.enrichErr:
				if !errors.As(err, &ee) {
					t.Fatalf("err %v, want enrichError", err)
				}
			default:
				if err != nil || l.status != tc.status || !l.complete || !l.fetchedAt.Equal(now) {
					t.Fatalf("lookup %+v, %v; want status %s", l, err, tc.status)
				}
			}
			if tc.status == schemas.StatusOK {
				if l.total != 2 || len(l.accounts) != 2 || *l.accounts[0].Name != "News" || *l.accounts[0].SelfInfo.CustomString != "News" || l.accounts[1].SelfInfo != nil {
					t.Fatalf("accounts %+v", l.accounts)
				}
			}
		})
	}
}

// openFetcher is a fetcher whose breaker is open.
type openFetcher struct{ Fetcher }

func (openFetcher) BreakerState() client.BreakerState { return client.BreakerOpen }

func TestFetcherLookupCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := fetcherFunc(func(ctx context.Context, user string) (*client.Subscriptions, error) { return nil, ctx.Err() })
	if _, err := fetcherLookup(f, time.Now)(ctx, "u"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

func TestNewRejectsNilFetcher(t *testing.T) {
	if _, err := New(testConfig(), nil); !errors.Is(err, ErrConfig) {
		t.Fatalf("New(nil fetcher) = %v", err)
	}
	if _, err := NewPipeline(testConfig(), nil); !errors.Is(err, ErrConfig) {
		t.Fatalf("NewPipeline(nil fetcher) = %v", err)
	}
	bad := testConfig()
	bad.Brokers = nil
	if _, err := New(bad, fetcherFunc(nil)); !errors.Is(err, ErrConfig) {
		t.Fatalf("New(bad config) = %v", err)
	}
}

// pacedFetcher is a Fetcher that reports a rate, as *client.Client does.
type pacedFetcher struct {
	fetcherFunc
	rate float64
}

func (f pacedFetcher) EffectiveRate() float64 { return f.rate }

// TestLookupGateFollowsTheRate: the users waiting for the API are bounded
// by a few seconds of the fetcher's rate, or by DrainTimeout if shorter.
func TestLookupGateFollowsTheRate(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		drain time.Duration
		want  int
	}{
		{rate: 195, drain: 10 * time.Second, want: int(195 * lookupQueueTime.Seconds())},
		{rate: 195, drain: time.Second, want: 195},
		{rate: 50, drain: 2 * time.Second, want: 100},
		{rate: 1, drain: 10 * time.Second, want: minLookupUsers},
	} {
		cfg := testConfig()
		cfg.DrainTimeout = tc.drain
		p, _ := newTestPipeline(t, cfg, okLookup(1))
		p.paceLookups(pacedFetcher{rate: tc.rate})
		if got := p.lookupUsers.limit(); got != tc.want {
			t.Errorf("rate %v, DrainTimeout %v: %d users may wait, want %d", tc.rate, tc.drain, got, tc.want)
		}
	}
}
