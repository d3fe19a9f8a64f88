package simulator

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// GenConfig configures Generate. Zero fields take the documented defaults.
type GenConfig struct {
	// Seed makes the dataset: the same GenConfig always generates the same
	// accounts, users and subscriptions. 0 is a seed like any other.
	Seed int64
	// Users is how many user IDs are generated: UserID(0) .. UserID(Users-1).
	// Default 1000.
	Users int
	// Accounts is how many official accounts exist. Default 1000.
	Accounts int
	// UnknownShare is the share of UserID(0..Users-1) that do not exist (never
	// created or terminated: 130004), picked deterministically from the
	// seed. Default 0.05; a negative value means none.
	UnknownShare float64
	// HeavyShare is the share of existing users with more than 200
	// subscriptions (more than one page). Default 0.01; negative means none.
	HeavyShare float64
	// MaxSubscriptions is the most subscriptions a heavy user has, at least
	// 201. Default 500. Counts never exceed Accounts.
	MaxSubscriptions int
}

// Generator defaults.
const (
	DefaultUsers            = 1000
	DefaultAccounts         = 1000
	DefaultUnknownShare     = 0.05
	DefaultHeavyShare       = 0.01
	DefaultMaxSubscriptions = 500
)

// maxPage is the largest Limit, and the most subscriptions a light user has.
const maxPage = 200

// maxGenAccounts bounds Accounts, since accounts are materialised.
const maxGenAccounts = 1 << 20

// baseTime (2023-11-14) anchors generated timestamps, so they do not depend
// on the clock.
const baseTime = 1_700_000_000

// UserID returns the ID of generated user i: "user-<i>".
func UserID(i int) string { return "user-" + strconv.Itoa(i) }

// userIndex parses a UserID; it accepts only the canonical form.
func userIndex(user string) (int, bool) {
	rest, ok := strings.CutPrefix(user, "user-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || strconv.Itoa(i) != rest {
		return 0, false
	}
	return i, true
}

func (g GenConfig) withDefaults() GenConfig {
	if g.Users == 0 {
		g.Users = DefaultUsers
	}
	if g.Accounts == 0 {
		g.Accounts = DefaultAccounts
	}
	if g.UnknownShare == 0 {
		g.UnknownShare = DefaultUnknownShare
	}
	if g.HeavyShare == 0 {
		g.HeavyShare = DefaultHeavyShare
	}
	if g.MaxSubscriptions == 0 {
		g.MaxSubscriptions = DefaultMaxSubscriptions
	}
	return g
}

// Validate reports the first invalid field, after defaults.
func (g GenConfig) Validate() error {
	g = g.withDefaults()
	switch {
	case g.Users < 0:
		return fmt.Errorf("simulator: generator: Users %d is negative", g.Users)
	case g.Accounts < 0 || g.Accounts > maxGenAccounts:
		return fmt.Errorf("simulator: generator: Accounts %d is outside [1, %d]", g.Accounts, maxGenAccounts)
	case math.IsNaN(g.UnknownShare) || g.UnknownShare > 1:
		return fmt.Errorf("simulator: generator: UnknownShare %v is above 1", g.UnknownShare)
	case math.IsNaN(g.HeavyShare) || g.HeavyShare > 1:
		return fmt.Errorf("simulator: generator: HeavyShare %v is above 1", g.HeavyShare)
	case g.MaxSubscriptions <= maxPage:
		return errors.New("simulator: generator: MaxSubscriptions must be above 200")
	}
	return nil
}

// Generate returns a dataset derived from cfg. Accounts are built up front;
// each user's subscriptions are derived on demand from a hash of (Seed, user
// index), so 100,000+ users cost nothing until asked for.
//
// UserID(i) for i in [0, Users) exists unless it falls in the UnknownShare;
// every other ID (outside the range, or not of the UserID form) is unknown.
// Existing users have between 0 and 200 subscriptions (log-uniform: many
// users with a few, a long tail with many), except the HeavyShare with 201 to
// MaxSubscriptions. Invalid fields (see Validate) are replaced by their
// defaults, shares clamped to [0, 1].
func Generate(cfg GenConfig) *Dataset {
	cfg = cfg.withDefaults()
	if cfg.Users < 0 {
		cfg.Users = DefaultUsers
	}
	if cfg.Accounts < 0 || cfg.Accounts > maxGenAccounts {
		cfg.Accounts = DefaultAccounts
	}
	cfg.UnknownShare = clampShare(cfg.UnknownShare)
	cfg.HeavyShare = clampShare(cfg.HeavyShare)
	if cfg.MaxSubscriptions <= maxPage {
		cfg.MaxSubscriptions = DefaultMaxSubscriptions
	}

	g := &generator{cfg: cfg, seed: uint64(cfg.Seed)}
	d := &Dataset{
		accounts: make([]Account, cfg.Accounts),
		index:    make(map[string]int, cfg.Accounts),
		gen:      g,
	}
	for j := range d.accounts {
		d.accounts[j] = g.account(j)
		d.index[d.accounts[j].OfficialAccount] = j
	}
	g.accounts = d.accounts
	d.encode()
	return d
}

func clampShare(v float64) float64 {
	if math.IsNaN(v) || v < 0 {
		return 0
	}
	return min(v, 1)
}

// Hash salts, so that the values derived for users, accounts and
// subscriptions are independent.
const (
	saltUser    = 0x5d1c_8e3a_27f4_b169
	saltAccount = 0x93b2_40cf_e8a1_7d05
	saltSub     = 0x2f6e_b7d4_1c93_a85b
)

// generator derives a dataset from a GenConfig.
type generator struct {
	cfg      GenConfig
	seed     uint64
	accounts []Account
}

// unit maps a random uint64 to [0, 1).
func unit(v uint64) float64 { return float64(v>>11) / (1 << 53) }

var organizations = [...]string{"Tencent", "Example Media", "Acme Corp", "City Library", ""}

// account derives official account j.
func (g *generator) account(j int) Account {
	r := rand.NewPCG(g.seed^saltAccount, uint64(j))
	created := baseTime - int64(r.Uint64()%(3*365*86400))
	custom := ""
	if v := r.Uint64(); v%3 == 0 {
		custom = "category=" + strconv.FormatUint(v%17, 10)
	}
	return Account{
		OfficialAccount: AccountPrefix + "oa-" + strconv.Itoa(j),
		Name:            "Official Account " + strconv.Itoa(j),
		OwnerAccount:    "owner-" + strconv.FormatUint(r.Uint64()%1000, 10),
		CreateTime:      created,
		LastMsgTime:     created + int64(r.Uint64()%uint64(baseTime-created+1)),
		SubscriberNum:   int64(math.Pow(10, 1+5*unit(r.Uint64()))),
		Introduction:    "Introduction of official account " + strconv.Itoa(j),
		FaceURL:         "https://faces.example.com/oa-" + strconv.Itoa(j) + ".png",
		Organization:    organizations[r.Uint64()%uint64(len(organizations))],
		CustomString:    custom,
	}
}

// userPlan is how user i's subscriptions are derived: account index of
// subscription k is (start + k*stride) mod Accounts, with stride coprime to
// Accounts so that the accounts are distinct.
type userPlan struct {
	index, count, start, stride int
}

// plan derives user's plan; ok is false for unknown users.
func (g *generator) plan(user string) (userPlan, bool) {
	i, ok := userIndex(user)
	if !ok || i >= g.cfg.Users {
		return userPlan{}, false
	}
	r := rand.NewPCG(g.seed^saltUser, uint64(i))
	if unit(r.Uint64()) < g.cfg.UnknownShare {
		return userPlan{}, false
	}
	heavy := unit(r.Uint64()) < g.cfg.HeavyShare
	u, v := unit(r.Uint64()), r.Uint64()
	var n int
	if heavy {
		n = maxPage + 1 + int(v%uint64(g.cfg.MaxSubscriptions-maxPage))
	} else {
		n = int(math.Pow(maxPage+1, u)) - 1 // log-uniform in [0, 200]
	}
	m := g.cfg.Accounts
	n = min(n, m)
	p := userPlan{index: i, count: n, stride: 1}
	if m > 1 {
		p.start = int(r.Uint64() % uint64(m))
		p.stride = 1 + int(r.Uint64()%uint64(m))
		for gcd(p.stride, m) != 1 {
			p.stride = p.stride%m + 1
		}
	}
	return p, true
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (g *generator) count(user string) (int, bool) {
	p, ok := g.plan(user)
	return p.count, ok
}

func (g *generator) entries(user string, offset, limit int) []entry {
	p, ok := g.plan(user)
	if !ok || offset >= p.count {
		return nil
	}
	end := min(p.count, offset+limit)
	out := make([]entry, 0, end-offset)
	m := uint64(g.cfg.Accounts)
	for k := offset; k < end; k++ {
		j := int((uint64(p.start) + uint64(k)*uint64(p.stride)) % m)
		r := rand.NewPCG(g.seed^saltSub^uint64(k)*0x9e37_79b9_7f4a_7c15, uint64(p.index))
		created := g.accounts[j].CreateTime
		e := entry{account: j, subscribeTime: created + int64(r.Uint64()%uint64(baseTime-created+1))}
		if v := r.Uint64(); v%5 == 0 {
			e.customString = "notify=" + strconv.FormatUint(v%3, 10)
		}
		out = append(out, e)
	}
	return out
}
