package processor

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
	"github.com/tencentchat-enricher/enricher/schemas"
)

func newTestEnricher(t testing.TB, fetch lookupFunc) *enricher {
	t.Helper()
	e, err := newEnricher(context.Background(), testConfig().withDefaults(), fetch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	return e
}

// TestEnricherCoalesces: concurrent lookups of one user make one API call,
// and later lookups are cache hits.
func TestEnricherCoalesces(t *testing.T) {
	gate := make(chan struct{})
	var calls sync.Map
	fetch := func(ctx context.Context, user string) (lookup, error) {
		n, _ := calls.LoadOrStore(user, new(int))
		*n.(*int)++
		<-gate
		return okLookup(2)(ctx, user)
	}
	e := newTestEnricher(t, fetch)
	const waiters = 50
	var wg sync.WaitGroup
	results := make(chan layer, waiters)
	for range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, c, err := e.get(context.Background(), "u1")
			if err != nil || l.status != schemas.StatusOK || l.enc.Accounts() != 2 {
				t.Errorf("get = %+v, %v", l, err)
			}
			results <- c
		}()
	}
	testsupport.WaitFor(t, 5*time.Second, "all lookups started", func() bool { return e.misses.Load()+e.hits.Load() == waiters })
	close(gate)
	wg.Wait()
	n, _ := calls.Load("u1")
	if got := *n.(*int); got != 1 {
		t.Fatalf("%d API calls for 50 concurrent lookups of one user, want 1", got)
	}
	if _, c, _ := e.get(context.Background(), "u1"); c != layerLocal {
		t.Fatalf("later lookup: %s, want hit", c)
	}
	if e.calls.Load() != 1 {
		t.Fatalf("calls = %d", e.calls.Load())
	}
}

// TestEnricherCachesAnswersNotErrors: status answers are cached (negative
// ones too); unavailable and fatal errors are not.
func TestEnricherCachesAnswersNotErrors(t *testing.T) {
	tests := []struct {
		name      string
		answer    lookup
		err       error
		wantCache bool
	}{
		{"ok", lookup{status: schemas.StatusOK, complete: true}, nil, true},
		{"user not found", lookup{status: schemas.StatusUserNotFound, complete: true}, nil, true},
		{"invalid user", lookup{status: schemas.StatusInvalidUser, complete: true}, nil, true},
		{"unavailable", lookup{}, &unavailableError{err: errors.New("breaker open")}, false},
		{"fatal", lookup{}, &FatalError{Code: 131000, Setting: "x"}, false},
		{"enrichment failed", lookup{}, &enrichError{err: errors.New("pagination")}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			e := newTestEnricher(t, func(ctx context.Context, user string) (lookup, error) {
				calls++
				return tc.answer, tc.err
			})
			for range 2 {
				_, _, err := e.get(context.Background(), "u")
				if !errors.Is(err, tc.err) {
					t.Fatalf("get error %v, want %v", err, tc.err)
				}
			}
			want := 2
			if tc.wantCache {
				want = 1
			}
			if calls != want {
				t.Fatalf("%d calls, want %d", calls, want)
			}
		})
	}
}

func TestCacheTTLByStatus(t *testing.T) {
	cfg := testConfig().withDefaults()
	cfg.CacheTTL, cfg.NegativeCacheTTL = 10*time.Minute, time.Minute
	e, err := newEnricher(context.Background(), cfg, okLookup(1))
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	for _, tc := range []struct {
		s    schemas.Status
		want time.Duration
	}{
		{schemas.StatusOK, 10 * time.Minute},
		{schemas.StatusUserNotFound, time.Minute},
		{schemas.StatusInvalidUser, time.Minute},
	} {
		if got := e.ttl(tc.s); got != tc.want {
			t.Errorf("TTL(%s) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

// TestEnricherWaiterCancel: a canceled record stops waiting, while the
// coalesced call completes for the others.
func TestEnricherWaiterCancel(t *testing.T) {
	gate := make(chan struct{})
	e := newTestEnricher(t, func(ctx context.Context, user string) (lookup, error) {
		<-gate
		if ctx.Err() != nil {
			return lookup{}, ctx.Err()
		}
		return okLookup(1)(ctx, user)
	})
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error)
	go func() { _, _, err := e.get(ctx, "u"); first <- err }()
	testsupport.WaitFor(t, 5*time.Second, "first lookup started", func() bool { return e.calls.Load() == 1 })
	second := make(chan error)
	go func() { _, _, err := e.get(context.Background(), "u"); second <- err }()
	testsupport.WaitFor(t, 5*time.Second, "second lookup waiting", func() bool { return e.misses.Load() == 2 })
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled waiter got %v", err)
	}
	close(gate)
	if err := <-second; err != nil {
		t.Fatalf("other waiter got %v: the first caller's cancel leaked into the shared call", err)
	}
}

func BenchmarkEnrichCacheHit(b *testing.B) {
	e := newTestEnricher(b, okLookup(5))
	ctx := context.Background()
	if _, _, err := e.get(ctx, "u1"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, c, err := e.get(ctx, "u1"); err != nil || c != layerLocal {
			b.Fatal(c, err)
		}
	}
}
