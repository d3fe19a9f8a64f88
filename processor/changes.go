package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tencentchat-enricher/enricher/processor/sharedcache"
	"github.com/tencentchat-enricher/enricher/schemas"
)

// Changes Tencent reports (its subscription webhooks, received by
// processor/webhook) keep the cache current without API calls: an
// unsubscribe removes the account from each user's cached list; a
// subscribe adds it when its details are known from another cached list,
// and otherwise drops the user's entry, so that the next event of the user
// fetches the list. With a shared cache the patch is made to the shared
// value and every process drops its local copy (the shared cache's change
// channel), so an event after the change sees it wherever it is processed.
//
// Duplicated and late changes are harmless: each (user, account) keeps the
// event time of the last change applied (in Redis with a shared cache, in
// this process without), and a change at or before it is ignored, as is a
// change older than the cached list (fetched after it, so the list holds
// it). Patches are idempotent: adding an account already listed or
// removing one that is not changes nothing.

// Change is one subscription change: Users subscribed to (Subscribed) or
// unsubscribed from the official account Account at EventTime.
type Change struct {
	Account    string
	Users      []string
	Subscribed bool
	EventTime  time.Time
}

// ChangeOutcome is what a Change did to one user's cached list.
type ChangeOutcome int

// Change outcomes.
const (
	// ChangeUncached: no list of the user is cached; the next lookup
	// fetches it anyway.
	ChangeUncached ChangeOutcome = iota
	// ChangePatched: the cached list was patched, without an API call.
	ChangePatched
	// ChangeInvalidated: the cached list was dropped and the next lookup
	// fetches it (an added account whose details no cached list holds, or
	// a user whose status the change contradicts).
	ChangeInvalidated
	// ChangeUnchanged: the list already says so (a repeat, or a list
	// fetched after the change).
	ChangeUnchanged
	// ChangeIgnored: a duplicate, or older than a change already applied.
	ChangeIgnored
)

var changeOutcomeNames = [...]string{
	ChangeUncached: "uncached", ChangePatched: "patched", ChangeInvalidated: "invalidated",
	ChangeUnchanged: "unchanged", ChangeIgnored: "ignored",
}

func (o ChangeOutcome) String() string {
	if o < 0 || int(o) >= len(changeOutcomeNames) {
		return fmt.Sprintf("ChangeOutcome(%d)", int(o))
	}
	return changeOutcomeNames[o]
}

// changePatcher is the part of the shared cache that applies changes;
// *sharedcache.Store implements it.
type changePatcher interface {
	Patch(ctx context.Context, user, stamp string, at time.Time, stampTTL time.Duration, fn sharedcache.PatchFunc) (sharedcache.PatchAction, error)
	WatchChanges(ctx context.Context, fn func(user string)) error
	PutInfos(ctx context.Context, infos map[string][]byte) error
	Info(ctx context.Context, account string) (value []byte, ok bool, err error)
}

// ApplyChange applies c to the cached list of each of its users and
// returns the outcome per user (in the order of c.Users). A shared cache
// error is returned (joined per user) after the local cache has been
// patched anyway; other processes then keep their copy until it expires or
// is refreshed. Safe for concurrent use.
func (p *Pipeline) ApplyChange(ctx context.Context, c Change) ([]ChangeOutcome, error) {
	if c.Account == "" {
		return nil, errors.New("processor: change without an account")
	}
	out := make([]ChangeOutcome, len(c.Users))
	var errs []error
	for i, u := range c.Users {
		o, err := p.enr.applyChange(ctx, c, u)
		out[i] = o
		if err != nil {
			errs = append(errs, fmt.Errorf("user %q: %w", u, err))
		}
		p.met.change(ctx, o)
	}
	return out, errors.Join(errs...)
}

// ApplyChange applies a subscription change to the caches; see
// Pipeline.ApplyChange.
func (p *Processor) ApplyChange(ctx context.Context, c Change) ([]ChangeOutcome, error) {
	return p.pipe.ApplyChange(ctx, c)
}

// stampTTL is how long the event time of a change is kept: as long as an
// entry fetched before it may live. An entry fetched later holds the
// change, and a change older than the entry is ignored.
func (e *enricher) stampTTL() time.Duration { return e.ttl(schemas.StatusOK) + e.stale }

// applyChange applies c to user's entry: to the shared value (when there
// is a shared cache, which tells every process to drop its copy), and to
// this process's local entry.
func (e *enricher) applyChange(ctx context.Context, c Change, user string) (ChangeOutcome, error) {
	if sp, ok := e.shared.(changePatcher); ok {
		if c.Subscribed {
			e.sharedInfo(ctx, sp, c.Account)
		}
		outcome := ChangeUncached
		_, err := sp.Patch(ctx, user, c.Account, c.EventTime, e.stampTTL(), func(b []byte) ([]byte, sharedcache.PatchAction, error) {
			if b == nil {
				outcome = ChangeUncached
				return nil, sharedcache.PatchKeep, nil
			}
			v, err := decodeLookup(b)
			if err != nil {
				outcome = ChangeInvalidated
				return nil, sharedcache.PatchDelete, nil
			}
			var nv lookup
			nv, outcome = e.patch(v, c)
			switch outcome {
			case ChangePatched:
				enc, err := encodeEnrichment(nv, e.fields)
				if err != nil {
					return nil, sharedcache.PatchKeep, err
				}
				nb, err := encodeLookup(enc)
				if err != nil {
					return nil, sharedcache.PatchKeep, err
				}
				return nb, sharedcache.PatchReplace, nil
			case ChangeInvalidated:
				return nil, sharedcache.PatchDelete, nil
			}
			return nil, sharedcache.PatchKeep, nil
		})
		switch {
		case errors.Is(err, sharedcache.ErrStale):
			return ChangeIgnored, nil
		case err == nil:
			// The change channel drops it too; this process need not wait.
			if outcome == ChangePatched || outcome == ChangeInvalidated {
				e.cache.Invalidate(user)
			}
			return outcome, nil
		default:
			e.sharedFailed(err)
			o, _ := e.applyLocal(c, user)
			return o, err
		}
	}
	return e.applyLocal(c, user)
}

// applyLocal applies c to the local entry, under the local stamps.
func (e *enricher) applyLocal(c Change, user string) (ChangeOutcome, error) {
	key := user + "\x00" + c.Account
	at := c.EventTime.UnixMilli()
	if prev, ok := e.stamps.GetIfPresent(key); ok && prev >= at {
		return ChangeIgnored, nil
	}
	e.stamps.Set(key, at)
	v, ok := e.cache.GetIfPresent(user)
	if !ok {
		return ChangeUncached, nil
	}
	accounts, err := accountsOf(v)
	if err != nil {
		e.cache.Invalidate(user)
		return ChangeInvalidated, nil
	}
	v.accounts = accounts
	nv, outcome := e.patch(v, c)
	switch outcome {
	case ChangePatched:
		enc, err := encodeEnrichment(nv, e.fields)
		if err != nil {
			e.cache.Invalidate(user)
			return ChangeInvalidated, err
		}
		e.cache.Set(user, enc)
	case ChangeInvalidated:
		e.cache.Invalidate(user)
	}
	return outcome, nil
}

// accountsOf decodes the accounts of a cached (encoded) lookup.
func accountsOf(v lookup) ([]schemas.OfficialAccount, error) {
	if v.enc == nil || v.enc.Accounts() == 0 {
		return nil, nil
	}
	var out []schemas.OfficialAccount
	if err := json.Unmarshal(v.enc.AppendAccounts(nil), &out); err != nil {
		return nil, err
	}
	return out, nil
}

// patch applies c to v, whose accounts are decoded (v.accounts), and
// returns the patched lookup (not yet encoded) with the outcome.
func (e *enricher) patch(v lookup, c Change) (lookup, ChangeOutcome) {
	if !v.fetchedAt.Before(c.EventTime) {
		return v, ChangeUnchanged // fetched after the change: the list holds it
	}
	if v.status != schemas.StatusOK {
		if c.Subscribed {
			return v, ChangeInvalidated // a user who subscribes exists now
		}
		return v, ChangeUnchanged
	}
	i := -1
	for j := range v.accounts {
		if v.accounts[j].OfficialAccount == c.Account {
			i = j
			break
		}
	}
	if !c.Subscribed {
		if i < 0 {
			return v, ChangeUnchanged
		}
		v.accounts = append(v.accounts[:i:i], v.accounts[i+1:]...)
		v.total = max(0, v.total-1)
		return v, ChangePatched
	}
	if i >= 0 {
		return v, ChangeUnchanged
	}
	a, ok := e.infos.GetIfPresent(c.Account)
	if !ok {
		return v, ChangeInvalidated
	}
	sub := c.EventTime.Unix()
	a.SelfInfo = &schemas.SelfInfo{SubscribeTime: &sub}
	v.accounts = append(v.accounts[:len(v.accounts):len(v.accounts)], a)
	v.total++
	return v, ChangePatched
}

// learn remembers the base information of accounts (without the
// subscriber's own), so that a change adding one of them to another user's
// list is patched without an API call; with a shared cache, the accounts
// this process had not seen are added to the shared details, so that the
// process receiving the change knows them too.
func (e *enricher) learn(ctx context.Context, accounts []schemas.OfficialAccount) {
	sp, shared := e.shared.(changePatcher)
	var fresh map[string][]byte
	for _, a := range accounts {
		if _, ok := e.infos.GetIfPresent(a.OfficialAccount); ok {
			continue
		}
		a.SelfInfo = nil
		e.infos.Set(a.OfficialAccount, a)
		if shared {
			if b, err := json.Marshal(a); err == nil {
				if fresh == nil {
					fresh = map[string][]byte{}
				}
				fresh[a.OfficialAccount] = b
			}
		}
	}
	if len(fresh) > 0 {
		e.sharedFailed(sp.PutInfos(ctx, fresh))
	}
}

// sharedInfo loads an account's details from the shared cache when this
// process does not know them.
func (e *enricher) sharedInfo(ctx context.Context, sp changePatcher, account string) {
	if _, ok := e.infos.GetIfPresent(account); ok {
		return
	}
	b, ok, err := sp.Info(ctx, account)
	if e.sharedFailed(err) || !ok {
		return
	}
	var a schemas.OfficialAccount
	if json.Unmarshal(b, &a) == nil && a.OfficialAccount == account {
		e.infos.Set(account, a)
	}
}

// watchChanges drops the local copy of each user whose shared value a
// change patched (in any process), and every local entry when
// notifications may have been missed. It runs until the enricher closes.
func (e *enricher) watchChanges(w changePatcher) {
	defer e.wg.Done()
	for e.base.Err() == nil {
		err := w.WatchChanges(e.base, func(user string) {
			if user == "" {
				e.cache.InvalidateAll()
				e.watching.Store(true)
				return
			}
			e.cache.Invalidate(user)
		})
		if e.base.Err() != nil || errors.Is(err, sharedcache.ErrClosed) {
			return
		}
		e.sharedFailed(fmt.Errorf("change notifications: %w", err))
		t := time.NewTimer(time.Second)
		select {
		case <-t.C:
		case <-e.base.Done():
			t.Stop()
			return
		}
	}
}
