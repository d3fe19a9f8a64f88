package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tencentyun/tls-sig-api-v2-golang/tencentyun"
)

// startSimulator runs the simulator subcommand with args and returns the
// endpoint URL from its start line and a stop func returning the command's
// error and its remaining output.
func startSimulator(t *testing.T, args ...string) (endpoint string, stop func() (string, error)) {
	t.Helper()
	pr, pw := io.Pipe()
	app := newApp()
	app.Writer = pw
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		err := app.Run(ctx, append([]string{"enricher", "simulator", "--listen", "127.0.0.1:0"}, args...))
		pw.Close()
		done <- err
	}()
	r := bufio.NewReader(pr)
	line, err := r.ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("no start line: %v (command: %v)", err, <-done)
	}
	m := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(line)
	if m == nil {
		cancel()
		t.Fatalf("start line %q", line)
	}
	return m[1], func() (string, error) {
		cancel()
		rest, _ := io.ReadAll(r)
		return string(rest), <-done
	}
}

func postSimulator(t *testing.T, endpoint, key, body string) string {
	t.Helper()
	sig, err := tencentyun.GenUserSig(devSDKAppID, key, devAdmin, 3600)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"sdkappid": {"1400000001"}, "identifier": {devAdmin}, "usersig": {sig}, "random": {"7"}, "contenttype": {"json"}}
	resp, err := http.Post(endpoint+"?"+q.Encode(), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d %s %v", resp.StatusCode, b, err)
	}
	return string(b)
}

func TestSimulatorCommandServes(t *testing.T) {
	t.Setenv(simulatorSecretEnv, "")
	t.Setenv("SIMULATOR_USERS", "50") // flags map to env vars
	endpoint, stop := startSimulator(t, "--dev-credentials", "--latency", "0", "--jitter", "0", "--unknown-share", "0")
	got := postSimulator(t, endpoint, devSecretKey, `{"Subscriber_Account":"user-3","Limit":1}`)
	if !strings.Contains(got, `"ActionStatus":"OK"`) {
		t.Fatalf("answer %s", got)
	}
	// user-50 is outside the 50 users from SIMULATOR_USERS.
	if got := postSimulator(t, endpoint, devSecretKey, `{"Subscriber_Account":"user-50"}`); !strings.Contains(got, `"ErrorCode":130004`) {
		t.Fatalf("answer %s", got)
	}
	rest, err := stop()
	if err != nil {
		t.Fatalf("command: %v", err)
	}
	if !strings.Contains(rest, "2 calls") {
		t.Fatalf("stop line %q", rest)
	}
}

func TestSimulatorCommandSecretFromEnv(t *testing.T) {
	t.Setenv(simulatorSecretEnv, "a-real-looking-key")
	data := filepath.Join(t.TempDir(), "data.json")
	if err := os.WriteFile(data, []byte(`{"OfficialAccounts":[{"Official_Account":"@TOA#_a","Name":"A"}],"Subscriptions":{"alice":[{"Official_Account":"@TOA#_a"}]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// The env key wins over --dev-credentials.
	endpoint, stop := startSimulator(t, "--dev-credentials", "--data", data, "--latency", "0", "--jitter", "0")
	if got := postSimulator(t, endpoint, "a-real-looking-key", `{"Subscriber_Account":"alice"}`); !strings.Contains(got, `"Official_Account":"@TOA#_a"`) {
		t.Fatalf("answer %s", got)
	}
	if got := postSimulator(t, endpoint, devSecretKey, `{"Subscriber_Account":"alice"}`); !strings.Contains(got, `"ErrorCode":70009`) {
		t.Fatalf("the dev key was accepted: %s", got)
	}
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestSimulatorCommandBadConfig(t *testing.T) {
	tests := []struct {
		name string
		env  string
		args []string
	}{
		{"no key", "", nil},
		{"bad probability", "k", []string{"--p502", "2"}},
		{"zero rate", "k", []string{"--rate", "0"}},
		{"data and generator", "k", []string{"--data", "x.json", "--users", "5"}},
		{"missing data file", "k", []string{"--data", "does-not-exist.json"}},
		{"no users", "k", []string{"--users", "0"}},
		{"unparsable flag", "k", []string{"--rate", "many"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(simulatorSecretEnv, tt.env)
			app := newApp()
			app.Writer, app.ErrWriter = io.Discard, io.Discard
			err := app.Run(context.Background(), append([]string{"enricher", "simulator", "--listen", "127.0.0.1:0"}, tt.args...))
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v, want a usage error", err)
			}
		})
	}
}
