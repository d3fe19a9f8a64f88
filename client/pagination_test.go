package client

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// pagedServer serves total accounts in pages of the requested Limit, with
// Next = the next offset, like the real endpoint.
func pagedServer(total int) func(int, seenRequest) (int, any) {
	return func(_ int, r seenRequest) (int, any) {
		off, lim := int(r.Body.Offset), r.Body.Limit
		var accs []map[string]any
		for i := off; i < min(total, off+lim); i++ {
			accs = append(accs, account(fmt.Sprintf("@TOA#_%04d", i)))
		}
		if off+lim >= total {
			return 200, okBody(total, 1, 0, accs...)
		}
		return 200, okBody(total, 0, uint64(off+lim), accs...)
	}
}

func TestGetAllFollowsNext(t *testing.T) {
	tests := []struct {
		total, limit, wantPages int
	}{
		{0, 200, 1},
		{7, 200, 1},
		{7, 3, 3},
		{10, 3, 4},
		{450, 200, 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d_by_%d", tt.total, tt.limit), func(t *testing.T) {
			f := newFake(t, pagedServer(tt.total))
			cfg := testConfig(f.URL)
			cfg.PageLimit = tt.limit
			c := newTestClient(t, cfg)
			subs, err := c.GetAll(context.Background(), "107867")
			if err != nil {
				t.Fatal(err)
			}
			if subs.Pages != tt.wantPages || subs.TotalCount != tt.total || len(subs.Accounts) != tt.total {
				t.Fatalf("pages %d total %d accounts %d", subs.Pages, subs.TotalCount, len(subs.Accounts))
			}
			for i, a := range subs.Accounts {
				if want := fmt.Sprintf("@TOA#_%04d", i); a.OfficialAccount != want {
					t.Fatalf("account %d = %s, want %s", i, a.OfficialAccount, want)
				}
			}
			reqs := f.requests()
			if len(reqs) != tt.wantPages {
				t.Fatalf("%d requests", len(reqs))
			}
			for i, r := range reqs {
				if r.Body.Offset != uint64(i*tt.limit) || r.Body.Limit != tt.limit || r.Body.SubscriberAccount != "107867" {
					t.Errorf("request %d body = %+v", i, r.Body)
				}
			}
		})
	}
}

func TestGetAllBrokenPagination(t *testing.T) {
	tests := []struct {
		name       string
		reply      func(int, seenRequest) (int, any)
		maxPages   int
		wantReason string
		wantCalls  int
	}{
		{"never completes", func(_ int, r seenRequest) (int, any) {
			return 200, okBody(1e6, 0, r.Body.Offset+1, account("@TOA#_x"))
		}, 5, "max pages", 5},
		{"repeats next", func(int, seenRequest) (int, any) {
			return 200, okBody(10, 0, 3, account("@TOA#_x"))
		}, 100, "repeated next", 2},
		{"next zero without completing", func(int, seenRequest) (int, any) {
			return 200, okBody(10, 0, 0)
		}, 100, "repeated next", 1},
		{"goes backwards", func(n int, r seenRequest) (int, any) {
			next := map[uint64]uint64{0: 5, 5: 9, 9: 2}[r.Body.Offset]
			return 200, okBody(10, 0, next, account("@TOA#_x"))
		}, 100, "next went backwards", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.reply)
			cfg := testConfig(f.URL)
			cfg.MaxPages = tt.maxPages
			c := newTestClient(t, cfg)
			subs, err := c.GetAll(context.Background(), "u")
			var pe *PaginationError
			if subs != nil || !errors.As(err, &pe) || !errors.Is(err, ErrPagination) {
				t.Fatalf("GetAll = %v, %v", subs, err)
			}
			if pe.Reason != tt.wantReason || Classify(err) != ClassPermanent {
				t.Errorf("reason %q class %s", pe.Reason, Classify(err))
			}
			if f.calls() != tt.wantCalls {
				t.Errorf("calls = %d, want %d", f.calls(), tt.wantCalls)
			}
		})
	}
}

func TestGetAllStopsOnPageError(t *testing.T) {
	f := newFake(t, func(n int, r seenRequest) (int, any) {
		if r.Body.Offset == 2 {
			return 200, errBody(CodeUserNotFound)
		}
		return 200, okBody(10, 0, r.Body.Offset+2, account("@TOA#_x"))
	})
	c := newTestClient(t, testConfig(f.URL))
	_, err := c.GetAll(context.Background(), "u")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != CodeUserNotFound || f.calls() != 2 {
		t.Fatalf("err = %v, calls %d", err, f.calls())
	}
}
