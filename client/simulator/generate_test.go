package simulator

import (
	"fmt"
	"reflect"
	"testing"
)

func TestGenerateDeterministic(t *testing.T) {
	cfg := GenConfig{Seed: 42, Users: 500, Accounts: 300}
	a, b := Generate(cfg), Generate(cfg)
	other := Generate(GenConfig{Seed: 43, Users: 500, Accounts: 300})
	differs := false
	for i := range 500 {
		u := UserID(i)
		if !reflect.DeepEqual(a.Subscriptions(u), b.Subscriptions(u)) || a.Known(u) != b.Known(u) {
			t.Fatalf("%s differs between two generations with one seed", u)
		}
		if !reflect.DeepEqual(a.Subscriptions(u), other.Subscriptions(u)) {
			differs = true
		}
	}
	if !differs {
		t.Fatal("seeds 42 and 43 generate the same subscriptions")
	}
	for j := range 300 {
		id := AccountPrefix + "oa-" + fmt.Sprint(j)
		x, ok1 := a.Account(id)
		y, ok2 := b.Account(id)
		if !ok1 || !ok2 || x != y {
			t.Fatalf("account %s: %v %v", id, x, y)
		}
	}
}

func TestGenerateShape(t *testing.T) {
	const users, accounts = 100_000, 2_000
	d := Generate(GenConfig{Seed: 1, Users: users, Accounts: accounts})
	if d.NumAccounts() != accounts {
		t.Fatalf("%d accounts", d.NumAccounts())
	}
	unknown, heavy, zero, total := 0, 0, 0, 0
	for i := range users {
		u := UserID(i)
		n := d.SubscriptionCount(u)
		if !d.Known(u) {
			unknown++
			if n != 0 {
				t.Fatalf("unknown %s has %d subscriptions", u, n)
			}
			continue
		}
		total += n
		switch {
		case n > maxPage:
			heavy++
			if n > DefaultMaxSubscriptions {
				t.Fatalf("%s has %d subscriptions, above the maximum", u, n)
			}
		case n == 0:
			zero++
		}
	}
	known := users - unknown
	if share := float64(unknown) / users; share < 0.045 || share > 0.055 {
		t.Fatalf("unknown share %.4f, want about %v", share, DefaultUnknownShare)
	}
	if share := float64(heavy) / float64(known); share < 0.008 || share > 0.012 {
		t.Fatalf("heavy share %.4f, want about %v", share, DefaultHeavyShare)
	}
	// Skewed: the median user has few subscriptions, the mean is pulled up
	// by the tail.
	if mean := float64(total) / float64(known); mean < 30 || mean > 50 {
		t.Fatalf("mean subscriptions %.1f", mean)
	}
	if zero == 0 {
		t.Fatal("no known user without subscriptions")
	}
	// IDs outside the range and non-canonical forms are unknown.
	for _, u := range []string{UserID(users), UserID(-1), "user-007", "user-+7", "alice", ""} {
		if d.Known(u) {
			t.Fatalf("%q is known", u)
		}
	}
}

func TestGenerateSubscriptionsAreDistinctAccounts(t *testing.T) {
	for _, accounts := range []int{1, 2, 6, 250, 1000} {
		t.Run(fmt.Sprint(accounts, " accounts"), func(t *testing.T) {
			d := Generate(GenConfig{Seed: 9, Users: 300, Accounts: accounts, HeavyShare: 0.2})
			for i := range 300 {
				u := UserID(i)
				subs := d.Subscriptions(u)
				if len(subs) != d.SubscriptionCount(u) || len(subs) > accounts {
					t.Fatalf("%s: %d subscriptions, count %d", u, len(subs), d.SubscriptionCount(u))
				}
				seen := map[string]bool{}
				for _, s := range subs {
					acc, ok := d.Account(s.OfficialAccount)
					if !ok || seen[s.OfficialAccount] {
						t.Fatalf("%s: account %s unknown or repeated", u, s.OfficialAccount)
					}
					seen[s.OfficialAccount] = true
					if s.SubscribeTime < acc.CreateTime {
						t.Fatalf("%s subscribed to %s before it was created", u, s.OfficialAccount)
					}
				}
				// A page is the same slice of the list.
				if n := len(subs); n > 3 {
					page := d.entries(u, 2, 2)
					if d.accounts[page[0].account].OfficialAccount != subs[2].OfficialAccount {
						t.Fatalf("%s: page differs from the list", u)
					}
				}
			}
		})
	}
}

func TestGenConfigDefaultsAndValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  GenConfig
		ok   bool
	}{
		{"zero", GenConfig{}, true},
		{"no unknown users", GenConfig{UnknownShare: -1}, true},
		{"negative users", GenConfig{Users: -1}, false},
		{"too many accounts", GenConfig{Accounts: maxGenAccounts + 1}, false},
		{"share above 1", GenConfig{UnknownShare: 1.5}, false},
		{"heavy above 1", GenConfig{HeavyShare: 2}, false},
		{"max one page", GenConfig{MaxSubscriptions: 200}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v", err)
			}
			_ = Generate(tt.cfg) // never panics
		})
	}

	d := Generate(GenConfig{UnknownShare: -1, Users: 50})
	for i := range 50 {
		if !d.Known(UserID(i)) {
			t.Fatalf("%s unknown with UnknownShare < 0", UserID(i))
		}
	}
	if d := Generate(GenConfig{}); d.NumAccounts() != DefaultAccounts || !d.Known(firstKnown(d)) {
		t.Fatal("defaults")
	}
}

func firstKnown(d *Dataset) string {
	for i := 0; ; i++ {
		if d.Known(UserID(i)) {
			return UserID(i)
		}
	}
}

func BenchmarkGeneratedPage(b *testing.B) {
	d := Generate(GenConfig{Seed: 1, Users: 100_000})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		u := UserID(i % 100_000)
		n, _ := d.count(u)
		d.entries(u, 0, min(n, maxPage))
		i++
	}
}
