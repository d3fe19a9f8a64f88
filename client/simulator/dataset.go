package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// AccountPrefix starts every official account ID.
const AccountPrefix = "@TOA#_"

// maxAccountID is the longest official account ID, in bytes.
const maxAccountID = 48

// Account is an official account's base information; the JSON names are the
// spec's (OfficialAccountInfoList items and the dataset file).
type Account struct {
	OfficialAccount string `json:"Official_Account"`
	Name            string `json:"Name"`
	OwnerAccount    string `json:"Owner_Account"`
	CreateTime      int64  `json:"CreateTime"`
	LastMsgTime     int64  `json:"LastMsgTime"`
	SubscriberNum   int64  `json:"SubscriberNum"`
	Introduction    string `json:"Introduction"`
	FaceURL         string `json:"FaceUrl"`
	Organization    string `json:"Organization"`
	CustomString    string `json:"CustomString"`
}

// Subscription is one official account a user subscribes to, with the
// subscriber's own information (SelfInfo).
type Subscription struct {
	OfficialAccount string `json:"Official_Account"`
	SubscribeTime   int64  `json:"SubscribeTime"`
	CustomString    string `json:"CustomString"`
}

// entry is a subscription by account index, as the handler renders it.
type entry struct {
	account       int
	subscribeTime int64
	customString  string
}

// Dataset holds the official accounts and who subscribes to what. A
// Dataset is immutable and safe for concurrent use. It is either explicit
// (NewDataset, LoadDataset) or generated on demand from a seed (Generate).
type Dataset struct {
	accounts []Account
	frags    []fragments    // the accounts' JSON fragments
	index    map[string]int // Official_Account -> accounts index

	subs map[string][]entry // explicit datasets: user -> subscriptions in order
	gen  *generator         // generated datasets
}

// DatasetFile is the JSON form LoadDataset reads:
//
//	{"OfficialAccounts": [{"Official_Account": "@TOA#_news", "Name": "News", ...}],
//	 "Subscriptions": {"alice": [{"Official_Account": "@TOA#_news", "SubscribeTime": 1700000000, "CustomString": ""}],
//	                   "bob": []}}
//
// Users listed in Subscriptions exist (an empty list: no subscriptions);
// every other user is unknown (130004). Subscriptions are returned in file
// order.
type DatasetFile struct {
	OfficialAccounts []Account                 `json:"OfficialAccounts"`
	Subscriptions    map[string][]Subscription `json:"Subscriptions"`
}

// NewDataset builds an explicit dataset. Account IDs must be unique, start
// with AccountPrefix and be at most 48 bytes; every subscription must name
// one of the accounts, at most once per user.
func NewDataset(accounts []Account, subscriptions map[string][]Subscription) (*Dataset, error) {
	d := &Dataset{
		accounts: append([]Account(nil), accounts...),
		index:    make(map[string]int, len(accounts)),
		subs:     make(map[string][]entry, len(subscriptions)),
	}
	for i, a := range d.accounts {
		id := a.OfficialAccount
		if !strings.HasPrefix(id, AccountPrefix) || len(id) <= len(AccountPrefix) || len(id) > maxAccountID {
			return nil, fmt.Errorf("simulator: dataset: account %d: Official_Account %q must be %s followed by an ID, at most %d bytes", i, id, AccountPrefix, maxAccountID)
		}
		if _, dup := d.index[id]; dup {
			return nil, fmt.Errorf("simulator: dataset: account %q is listed twice", id)
		}
		d.index[id] = i
	}
	d.encode()
	for user, list := range subscriptions {
		if user == "" {
			return nil, errors.New("simulator: dataset: empty user ID in Subscriptions")
		}
		es := make([]entry, 0, len(list))
		seen := make(map[int]bool, len(list))
		for _, s := range list {
			j, ok := d.index[s.OfficialAccount]
			if !ok {
				return nil, fmt.Errorf("simulator: dataset: user %q subscribes to unknown account %q", user, s.OfficialAccount)
			}
			if seen[j] {
				return nil, fmt.Errorf("simulator: dataset: user %q subscribes to %q twice", user, s.OfficialAccount)
			}
			seen[j] = true
			es = append(es, entry{account: j, subscribeTime: s.SubscribeTime, customString: s.CustomString})
		}
		d.subs[user] = es
	}
	return d, nil
}

// ParseDataset decodes a DatasetFile and builds the dataset (see NewDataset).
// Unknown JSON fields are rejected so that a misspelt name is noticed.
func ParseDataset(b []byte) (*Dataset, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f DatasetFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("simulator: dataset: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("simulator: dataset: trailing data after the JSON object")
	}
	return NewDataset(f.OfficialAccounts, f.Subscriptions)
}

// LoadDataset reads a DatasetFile from path.
func LoadDataset(path string) (*Dataset, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("simulator: dataset: %w", err)
	}
	return ParseDataset(b)
}

// Known reports whether user exists; calls for other users answer 130004.
func (d *Dataset) Known(user string) bool {
	_, ok := d.count(user)
	return ok
}

// SubscriptionCount returns how many official accounts user subscribes to
// (the TotalCount the endpoint reports), 0 for an unknown user.
func (d *Dataset) SubscriptionCount(user string) int {
	n, _ := d.count(user)
	return n
}

// Subscriptions returns user's subscriptions in the order the endpoint
// pages through them; nil for an unknown user.
func (d *Dataset) Subscriptions(user string) []Subscription {
	n, ok := d.count(user)
	if !ok {
		return nil
	}
	out := make([]Subscription, 0, n)
	for _, e := range d.entries(user, 0, n) {
		out = append(out, Subscription{
			OfficialAccount: d.accounts[e.account].OfficialAccount,
			SubscribeTime:   e.subscribeTime,
			CustomString:    e.customString,
		})
	}
	return out
}

// Account returns the official account with the given ID.
func (d *Dataset) Account(id string) (Account, bool) {
	i, ok := d.index[id]
	if !ok {
		return Account{}, false
	}
	return d.accounts[i], true
}

// NumAccounts returns how many official accounts the dataset holds.
func (d *Dataset) NumAccounts() int { return len(d.accounts) }

// count returns user's subscription count and whether user exists.
func (d *Dataset) count(user string) (int, bool) {
	if d.gen != nil {
		return d.gen.count(user)
	}
	es, ok := d.subs[user]
	return len(es), ok
}

// entries returns up to limit of user's subscriptions starting at offset.
// The user must exist.
func (d *Dataset) entries(user string, offset, limit int) []entry {
	if d.gen != nil {
		return d.gen.entries(user, offset, limit)
	}
	es := d.subs[user]
	if offset >= len(es) {
		return nil
	}
	return es[offset:min(len(es), offset+limit)]
}

// encode prepares the accounts' JSON fragments.
func (d *Dataset) encode() {
	d.frags = make([]fragments, len(d.accounts))
	for i := range d.accounts {
		d.frags[i] = accountFragments(&d.accounts[i])
	}
}
