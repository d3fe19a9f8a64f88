package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/tencentyun/tls-sig-api-v2-golang/tencentyun"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
)

const (
	testAppID = 1400000001
	testAdmin = "administrator"
	testKey   = "dev-only-secret-key"
)

// newFakeClock is a clock the test moves, at a whole second, so that
// per-second buckets line up with the test.
func newFakeClock() *testsupport.Clock {
	return testsupport.NewClock(time.Now().Truncate(time.Second))
}

// testData is a small explicit dataset: alice has 3 subscriptions, bob none.
func testData(t testing.TB) *Dataset {
	t.Helper()
	accounts := []Account{
		{OfficialAccount: "@TOA#_news", Name: "News", OwnerAccount: "owner-1", CreateTime: 1690000000, LastMsgTime: 1698894911, SubscriberNum: 499800, Introduction: "This is news", FaceURL: "http://this.is.face.url", Organization: "Tencent", CustomString: "news_custom"},
		{OfficialAccount: "@TOA#_sport", Name: "Sport", OwnerAccount: "owner-2", CreateTime: 1690000001, LastMsgTime: 1698894912, SubscriberNum: 12, Introduction: "Sport", FaceURL: "http://sport", Organization: "Acme", CustomString: ""},
		{OfficialAccount: "@TOA#_music", Name: "Music", OwnerAccount: "owner-3", CreateTime: 1690000002, LastMsgTime: 1698894913, SubscriberNum: 7, Introduction: "Music", FaceURL: "http://music", Organization: "", CustomString: "m"},
	}
	d, err := NewDataset(accounts, map[string][]Subscription{
		"alice": {
			{OfficialAccount: "@TOA#_news", SubscribeTime: 1700655351, CustomString: ""},
			{OfficialAccount: "@TOA#_music", SubscribeTime: 1700655352, CustomString: "vip"},
			{OfficialAccount: "@TOA#_sport", SubscribeTime: 1700655353, CustomString: "x"},
		},
		"bob": {},
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// testEnv is a running simulator with a fake clock and a valid admin sig.
type testEnv struct {
	srv   *Server
	clock *testsupport.Clock
	sig   string
}

func newEnv(t *testing.T, mod func(*Config)) *testEnv {
	t.Helper()
	clock := newFakeClock()
	// The clock stands still, so the frequency limit is off unless a test
	// sets one.
	cfg := Config{SDKAppID: testAppID, Admin: testAdmin, SecretKey: testKey, Dataset: testData(t), Now: clock.Now, Rate: -1}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return &testEnv{srv: srv, clock: clock, sig: genSig(t, testAppID, testKey, testAdmin, 86400)}
}

func genSig(t testing.TB, app int, key, id string, expire int) string {
	t.Helper()
	s, err := tencentyun.GenUserSig(app, key, id, expire)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// params returns valid URL parameters for the admin.
func (e *testEnv) params() url.Values {
	return url.Values{
		"sdkappid":    {strconv.Itoa(testAppID)},
		"identifier":  {testAdmin},
		"usersig":     {e.sig},
		"random":      {"99999999"},
		"contenttype": {"json"},
	}
}

// answer is a decoded API answer.
type answer struct {
	ActionStatus            string
	ErrorInfo               string
	ErrorCode               int
	TotalCount              int
	OfficialAccountInfoList []map[string]any
	CompleteFlag            int
	Next                    uint64
}

// post sends body with the given URL parameters and returns the HTTP
// status and raw body.
func (e *testEnv) post(t *testing.T, q url.Values, body string) (int, []byte) {
	t.Helper()
	return e.do(t, http.MethodPost, Path+"?"+q.Encode(), body)
}

func (e *testEnv) do(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, e.srv.URL()+path, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// call makes a valid call for body and decodes the answer; it fails the
// test unless the HTTP status is 200.
func (e *testEnv) call(t *testing.T, body string) answer {
	t.Helper()
	return e.callWith(t, e.params(), body)
}

func (e *testEnv) callWith(t *testing.T, q url.Values, body string) answer {
	t.Helper()
	status, b := e.post(t, q, body)
	if status != http.StatusOK {
		t.Fatalf("HTTP %d: %s", status, b)
	}
	var a answer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("answer %s: %v", b, err)
	}
	return a
}

func userBody(user string) string {
	b, _ := json.Marshal(map[string]any{"Subscriber_Account": user})
	return string(b)
}

// waitLimit bounds the tests' waits for a condition (testsupport.WaitFor).
const waitLimit = 10 * time.Second

func TestConfigValidate(t *testing.T) {
	ok := Config{SDKAppID: testAppID, Admin: testAdmin, SecretKey: testKey}
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"valid", func(*Config) {}, true},
		{"no app", func(c *Config) { c.SDKAppID = 0 }, false},
		{"app above 32 bits", func(c *Config) { c.SDKAppID = 1 << 33 }, false},
		{"no admin", func(c *Config) { c.Admin = "" }, false},
		{"no key", func(c *Config) { c.SecretKey = "" }, false},
		{"bad probability", func(c *Config) { c.Faults.P502 = 1.5 }, false},
		{"negative latency", func(c *Config) { c.Faults.Latency = -1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			err := c.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if _, err2 := New(c); (err2 == nil) != tt.ok {
				t.Fatalf("New() = %v, want ok=%v", err2, tt.ok)
			}
		})
	}
}
