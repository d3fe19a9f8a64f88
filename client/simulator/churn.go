package simulator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// Subscriptions change over time: Subscribe and Unsubscribe (also POST
// /subscriptions) change one user's list, RunChurn changes a share of the
// users' lists every minute, and each change calls the webhook URL
// (Config.Webhook) the way Tencent does, so that the processor's receiver
// sees the change.
//
// A changed user's list lives in an overlay of the dataset (the dataset
// itself stays immutable): its subscriptions in their order, with the new
// ones last.

// The webhook commands the simulator sends.
const (
	CommandAddSubscriber    = "OfficialAccount.CallbackAfterAddSubscriber"
	CommandDeleteSubscriber = "OfficialAccount.CallbackAfterDeleteSubscriber"
)

// Webhook is where the simulator reports subscription changes.
type Webhook struct {
	// URL is the app's webhook URL; empty: changes are not reported.
	URL string
	// Token, when set, signs each call: RequestTime (Unix seconds) and
	// Sign = hex(SHA-256(Token + RequestTime)) in the query.
	Token string
	// Client sends the calls (default: a client with a 5s timeout).
	Client *http.Client
}

// WebhookStats counts the webhook calls: answered 200, and failed (no
// answer or another status).
type WebhookStats struct {
	Sent, Failed int64
}

// overlay returns user's changed list, if any.
func (s *Simulator) overlay(user string) ([]entry, bool) {
	if !s.changed.Load() {
		return nil, false
	}
	s.listsMu.RLock()
	defer s.listsMu.RUnlock()
	es, ok := s.lists[user]
	return es, ok
}

// count is the dataset's count, or the overlay's.
func (s *Simulator) count(user string) (int, bool) {
	if es, ok := s.overlay(user); ok {
		return len(es), true
	}
	return s.data.count(user)
}

// entries is the dataset's page, or the overlay's.
func (s *Simulator) entries(user string, offset, limit int) []entry {
	if es, ok := s.overlay(user); ok {
		if offset >= len(es) {
			return nil
		}
		return es[offset:min(len(es), offset+limit)]
	}
	return s.data.entries(user, offset, limit)
}

// ErrUnknown is returned for a user or an account the dataset does not hold.
var ErrUnknown = errors.New("simulator: unknown user or account")

// Subscribe subscribes user to the official account and reports it to the
// webhook. changed is false (and nothing is reported) when the user
// already subscribes to it. The error is ErrUnknown, or the webhook's.
func (s *Simulator) Subscribe(ctx context.Context, user, account string) (changed bool, err error) {
	return s.change(ctx, user, account, true)
}

// Unsubscribe unsubscribes user from the official account and reports it
// to the webhook; changed is false when the user does not subscribe to it.
func (s *Simulator) Unsubscribe(ctx context.Context, user, account string) (changed bool, err error) {
	return s.change(ctx, user, account, false)
}

func (s *Simulator) change(ctx context.Context, user, account string, subscribe bool) (bool, error) {
	j, ok := s.data.index[account]
	n, known := s.data.count(user)
	if !ok || !known {
		return false, ErrUnknown
	}
	s.listsMu.Lock()
	es, ok := s.lists[user]
	if !ok {
		es = slices.Clone(s.data.entries(user, 0, n))
	}
	i := slices.IndexFunc(es, func(e entry) bool { return e.account == j })
	if (i >= 0) == subscribe {
		s.listsMu.Unlock()
		return false, nil
	}
	// Event times are strictly increasing, so that two changes never tie.
	at := max(s.now().UnixMilli(), s.lastEvent+1)
	s.lastEvent = at
	if subscribe {
		es = append(slices.Clip(es), entry{account: j, subscribeTime: at / 1000})
	} else {
		es = slices.Delete(slices.Clone(es), i, i+1)
	}
	s.lists[user] = es
	s.changed.Store(true)
	s.listsMu.Unlock()
	if subscribe {
		s.churned[0].Add(1)
	} else {
		s.churned[1].Add(1)
	}
	return true, s.notify(ctx, user, account, subscribe, at)
}

// notify calls the webhook URL about one change, as Tencent does.
func (s *Simulator) notify(ctx context.Context, user, account string, subscribe bool, at int64) error {
	wh := *s.webhook.Load()
	if wh.URL == "" {
		return nil
	}
	command := CommandDeleteSubscriber
	if subscribe {
		command = CommandAddSubscriber
	}
	u, err := url.Parse(wh.URL)
	if err != nil {
		return fmt.Errorf("simulator: webhook URL: %w", err)
	}
	q := u.Query()
	q.Set("SdkAppid", s.appIDs)
	q.Set("CallbackCommand", command)
	q.Set("contenttype", "json")
	q.Set("ClientIP", "127.0.0.1")
	q.Set("OptPlatform", "RESTAPI")
	if wh.Token != "" {
		rt := strconv.FormatInt(s.now().Unix(), 10)
		h := sha256.Sum256([]byte(wh.Token + rt))
		q.Set("RequestTime", rt)
		q.Set("Sign", hex.EncodeToString(h[:]))
	}
	u.RawQuery = q.Encode()
	body, err := json.Marshal(map[string]any{
		"CallbackCommand": command, "Official_Account": account, "Operator_Account": user,
		"SubscribeAccountList": []map[string]string{{"Subscriber_Account": user}}, "EventTime": at,
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("simulator: webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	c := wh.Client
	if c == nil {
		c = webhookClient
	}
	resp, err := c.Do(req)
	if err != nil {
		s.hooksFailed.Add(1)
		return fmt.Errorf("simulator: webhook: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.hooksFailed.Add(1)
		return fmt.Errorf("simulator: webhook answered %s", resp.Status)
	}
	s.hooksSent.Add(1)
	return nil
}

var webhookClient = &http.Client{Timeout: 5 * time.Second}

// SetWebhook replaces where changes are reported (Config.Webhook).
func (s *Simulator) SetWebhook(w Webhook) { s.webhook.Store(&w) }

// WebhookStats returns the webhook call counts.
func (s *Simulator) WebhookStats() WebhookStats {
	return WebhookStats{Sent: s.hooksSent.Load(), Failed: s.hooksFailed.Load()}
}

// ChurnStats counts the changes RunChurn made.
type ChurnStats struct {
	Subscribed, Unsubscribed int64
}

// RunChurn changes the lists of perMinute×users users a minute (users is
// how many users the dataset's UserID(0..users-1) names; perMinute a
// fraction, 0.01 for 1%), at random times: each picked user unsubscribes
// from one of its accounts or subscribes to another one, with even odds
// (subscribes when it has none). Each change calls the webhook; a failed
// call is counted (WebhookStats) and churn goes on. RunChurn returns when
// ctx ends.
func (s *Simulator) RunChurn(ctx context.Context, perMinute float64, users int) error {
	if perMinute <= 0 || users <= 0 {
		return fmt.Errorf("simulator: churn %g of %d users a minute", perMinute, users)
	}
	const tick = 100 * time.Millisecond
	perTick := perMinute * float64(users) * tick.Seconds() / 60
	t := time.NewTicker(tick)
	defer t.Stop()
	var due float64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		due += perTick
		for ; due >= 1; due-- {
			s.churnOne(ctx, users)
		}
	}
}

// churnOne changes one random user's list.
func (s *Simulator) churnOne(ctx context.Context, users int) {
	for range 10 { // a few tries to find an existing user
		s.diceMu.Lock()
		user := UserID(s.dice.IntN(users))
		unsub := s.dice.IntN(2) == 0
		acct := s.dice.IntN(len(s.data.accounts))
		pick := s.dice.Uint64()
		s.diceMu.Unlock()
		n, ok := s.count(user)
		if !ok {
			continue
		}
		if unsub && n > 0 {
			es := s.entries(user, 0, n)
			a := s.data.accounts[es[pick%uint64(len(es))].account].OfficialAccount
			_, _ = s.Unsubscribe(ctx, user, a)
			return
		}
		_, _ = s.Subscribe(ctx, user, s.data.accounts[acct].OfficialAccount)
		return
	}
}

// ChurnStats returns the changes made so far (by RunChurn, Subscribe,
// Unsubscribe and POST /subscriptions).
func (s *Simulator) ChurnStats() ChurnStats {
	return ChurnStats{Subscribed: s.churned[0].Load(), Unsubscribed: s.churned[1].Load()}
}

// subscriptionRequest is the body of POST /subscriptions.
type subscriptionRequest struct {
	User       string `json:"user"`
	Account    string `json:"account"`
	Subscribed bool   `json:"subscribed"`
}

// serveSubscriptions changes one subscription: POST /subscriptions with
// {"user": "...", "account": "@TOA#_...", "subscribed": true|false}.
// It answers {"changed": bool, "webhook": "" or the webhook's error}, or
// 404 for an unknown user or account.
func (s *Simulator) serveSubscriptions(w http.ResponseWriter, r *http.Request) {
	var req subscriptionRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		http.Error(w, "body must be {\"user\":..., \"account\":..., \"subscribed\": true|false}", http.StatusBadRequest)
		return
	}
	changed, err := s.change(r.Context(), req.User, req.Account, req.Subscribed)
	if errors.Is(err, ErrUnknown) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	hook := ""
	if err != nil {
		hook = err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"changed": changed, "webhook": hook})
}

// churnState is the Simulator's part for changing subscriptions.
type churnState struct {
	webhook     atomic.Pointer[Webhook]
	changed     atomic.Bool
	lastEvent   int64 // guarded by listsMu
	hooksSent   atomic.Int64
	hooksFailed atomic.Int64
	churned     [2]atomic.Int64 // subscribed, unsubscribed
}

// Subscriptions returns user's subscriptions as the endpoint serves them
// now (with the changes made), in order; nil for an unknown user.
func (s *Simulator) Subscriptions(user string) []Subscription {
	n, ok := s.count(user)
	if !ok {
		return nil
	}
	out := make([]Subscription, 0, n)
	for _, e := range s.entries(user, 0, n) {
		out = append(out, Subscription{OfficialAccount: s.data.accounts[e.account].OfficialAccount, SubscribeTime: e.subscribeTime, CustomString: e.customString})
	}
	return out
}
