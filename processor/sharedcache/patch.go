package sharedcache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Changes reported from outside (Tencent's subscription webhooks) patch
// values in place instead of waiting for their TTL.
//
// # Keys
//
//	P{u}:e     the ordering stamps of u: a hash of stamp -> event time
//	           (Unix milliseconds), with the TTL Patch is given
//	Pchanged   the pub/sub channel on which Patch publishes u
//
// Patch runs as an optimistic transaction (WATCH the value and the stamps,
// read them, compute the new value, MULTI/EXEC the writes and the PUBLISH),
// so a Set or another Patch between the read and the write makes it start
// again rather than lose either write. Every process watches Pchanged
// (WatchChanges) and drops its local copy of u, so its next read of u comes
// from the patched value.

// PatchAction is what a PatchFunc does with the value.
type PatchAction int

// Patch actions.
const (
	// PatchKeep leaves the value as it is (the change is already in it, or
	// there is no value); the stamp is still recorded.
	PatchKeep PatchAction = iota
	// PatchReplace stores the returned value with the value's remaining TTL.
	PatchReplace
	// PatchDelete deletes the value: the next reader fetches the user again.
	PatchDelete
)

// PatchFunc computes a patch of value (nil when the user has no value).
// It may be called more than once (when the transaction is retried) and
// must not keep value.
type PatchFunc func(value []byte) (newValue []byte, action PatchAction, err error)

// ErrStale is returned by Patch for a change at or before the stamp already
// recorded: a duplicate or a late change, which changes nothing.
var ErrStale = errors.New("sharedcache: change is not newer than the one applied")

// patchAttempts bounds the retries of a Patch whose keys changed meanwhile.
const patchAttempts = 8

func (s *Store) stampKey(user string) string { return s.cfg.Prefix + "{" + user + "}:e" }

// ChangeChannel is the channel Patch publishes users on.
func (s *Store) ChangeChannel() string { return s.cfg.Prefix + "changed" }

// Patch applies one change to the user's value: unless the user's stamp
// already holds at or after at (ErrStale, nothing written), it calls fn
// with the current value and, in one transaction, records at under stamp
// (the stamps expire stampTTL after the last change), writes fn's result
// and publishes the user on ChangeChannel. It returns fn's action. fn's
// error is returned as it is, with nothing written.
func (s *Store) Patch(ctx context.Context, user, stamp string, at time.Time, stampTTL time.Duration, fn PatchFunc) (PatchAction, error) {
	if s.isClosed() {
		return PatchKeep, ErrClosed
	}
	if stampTTL < time.Millisecond {
		return PatchKeep, fmt.Errorf("sharedcache: Patch %q: stamp TTL must be at least 1ms, got %s", user, stampTTL)
	}
	vk, ek := s.valueKey(user), s.stampKey(user)
	atMs := at.UnixMilli()
	var action PatchAction
	var fnErr error
	txf := func(ctx context.Context, tx *redis.Tx) error {
		fnErr = nil
		prev, err := tx.HGet(ctx, ek, stamp).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if err == nil {
			if p, perr := strconv.ParseInt(prev, 10, 64); perr == nil && p >= atMs {
				return ErrStale
			}
		}
		value, err := tx.Get(ctx, vk).Bytes()
		if errors.Is(err, redis.Nil) {
			value, err = nil, nil
		}
		if err != nil {
			return err
		}
		var ttl time.Duration
		if value != nil {
			if ttl, err = tx.PTTL(ctx, vk).Result(); err != nil {
				return err
			}
		}
		next, act, err := fn(value)
		if err != nil {
			fnErr = err
			return err
		}
		if act == PatchReplace && (value == nil || ttl < time.Millisecond) {
			act = PatchKeep // expired meanwhile: nothing to patch
		}
		action = act
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, ek, stamp, atMs)
			p.PExpire(ctx, ek, stampTTL)
			switch act {
			case PatchReplace:
				p.Set(ctx, vk, next, ttl)
			case PatchDelete:
				p.Del(ctx, vk)
			}
			p.Publish(ctx, s.ChangeChannel(), user)
			return nil
		})
		return err
	}
	for range patchAttempts {
		_, err := s.run(ctx, "patch", func(ctx context.Context) (any, error) {
			return nil, s.cfg.Redis.Watch(ctx, func(tx *redis.Tx) error { return txf(ctx, tx) }, vk, ek)
		})
		switch {
		case err == nil:
			s.tel.patch(ctx, patchResult(action))
			return action, nil
		case errors.Is(err, ErrStale):
			s.tel.patch(ctx, "stale")
			return PatchKeep, ErrStale
		case fnErr != nil:
			s.tel.patch(ctx, "error")
			return PatchKeep, fnErr
		case errors.Is(err, redis.TxFailedErr):
			continue // the value or the stamps changed meanwhile
		default:
			s.tel.patch(ctx, "error")
			return PatchKeep, err
		}
	}
	s.tel.patch(ctx, "error")
	return PatchKeep, fmt.Errorf("sharedcache: Patch %q: the value kept changing (%d attempts)", user, patchAttempts)
}

func patchResult(a PatchAction) string {
	switch a {
	case PatchReplace:
		return "replaced"
	case PatchDelete:
		return "deleted"
	}
	return "kept"
}

// WatchChanges calls fn with each user a Patch (of any process) published,
// and with "" when notifications may have been missed: when the
// subscription is (re)established, after a disconnect. fn runs on one
// goroutine, in order, and must be quick. WatchChanges returns when ctx
// ends or the Store is closed; the subscription reconnects by itself in
// between.
func (s *Store) WatchChanges(ctx context.Context, fn func(user string)) error {
	if s.isClosed() {
		return ErrClosed
	}
	sub := s.cfg.Redis.Subscribe(ctx, s.ChangeChannel())
	defer func() { _ = sub.Close() }()
	msgs := sub.ChannelWithSubscriptions()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m, ok := <-msgs:
			if !ok {
				return ErrClosed
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					fn("")
				}
			case *redis.Message:
				fn(m.Payload)
			}
		}
	}
}

// infosKey is the hash of the accounts' details (opaque values by account
// ID) that every process adds to as it fetches lists, so that a Patch
// adding an account to a list can build the entry without an API call
// whichever process fetched the account's details.
func (s *Store) infosKey() string { return s.cfg.Prefix + "accounts" }

// infosTTL is how long the details hash lives after its last write.
const infosTTL = 24 * time.Hour

// PutInfos stores details by account ID (overwriting older ones).
func (s *Store) PutInfos(ctx context.Context, infos map[string][]byte) error {
	if s.isClosed() {
		return ErrClosed
	}
	if len(infos) == 0 {
		return nil
	}
	_, err := s.run(ctx, "put_infos", func(ctx context.Context) (any, error) {
		_, err := s.cfg.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
			args := make([]any, 0, 2*len(infos))
			for k, v := range infos {
				args = append(args, k, v)
			}
			p.HSet(ctx, s.infosKey(), args...)
			p.PExpire(ctx, s.infosKey(), infosTTL)
			return nil
		})
		return nil, err
	})
	return err
}

// Info returns the details PutInfos stored for account; ok is false when
// there are none.
func (s *Store) Info(ctx context.Context, account string) (value []byte, ok bool, err error) {
	if s.isClosed() {
		return nil, false, ErrClosed
	}
	v, err := s.run(ctx, "info", func(ctx context.Context) (any, error) {
		return s.cfg.Redis.HGet(ctx, s.infosKey(), account).Bytes()
	})
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return v.([]byte), true, nil
}
