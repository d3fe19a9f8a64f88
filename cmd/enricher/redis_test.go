package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v3"

	"github.com/tencentchat-enricher/enricher/client"
)

const testRedisPassword = "redis-pass-never-shown"

// Redis settings that are wrong are reported as their flag, on one line,
// and the password never appears in the output.
func TestRedisConfigErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{name: "password in url", args: []string{"run", "--redis-url", "redis://u:" + testRedisPassword + "@127.0.0.1:6379"},
			want: "--redis-url (ENRICHER_REDIS_URL) must not carry a password: set ENRICHER_REDIS_PASSWORD or --redis-password-file"},
		{name: "password in url (env)", env: map[string]string{"ENRICHER_REDIS_URL": "rediss://:" + testRedisPassword + "@cache.example:6380"}, args: []string{"run"},
			want: "must not carry a password"},
		{name: "scheme", args: []string{"run", "--redis-url", "http://127.0.0.1:6379"}, want: "--redis-url (ENRICHER_REDIS_URL) must start with redis:// or rediss://"},
		{name: "no host", args: []string{"run", "--redis-url", "redis://"}, want: "--redis-url (ENRICHER_REDIS_URL) has no host"},
		{name: "bad db", args: []string{"run", "--redis-url", "redis://127.0.0.1:6379/x"}, want: "--redis-url (ENRICHER_REDIS_URL) is not a Redis URL"},
		{name: "password file without url", args: []string{"run", "--redis-password-file", empty}, want: "--redis-password-file (ENRICHER_REDIS_PASSWORD_FILE) needs --redis-url"},
		{name: "empty password file", args: []string{"run", "--redis-url", "redis://127.0.0.1:6379", "--redis-password-file", empty}, want: "--redis-password-file (ENRICHER_REDIS_PASSWORD_FILE): " + empty + " is empty"},
		{name: "password twice", env: map[string]string{envRedisPassword: testRedisPassword},
			args: []string{"run", "--redis-url", "redis://127.0.0.1:6379", "--redis-password-file", empty}, want: "set either ENRICHER_REDIS_PASSWORD or --redis-password-file"},
		{name: "stale ttl", args: []string{"run", "--cache-stale-ttl", "-1s"}, want: "--cache-stale-ttl (ENRICHER_CACHE_STALE_TTL)"},
		{name: "replay url", args: []string{"replay", "--redis-url", "redis://u:" + testRedisPassword + "@h"}, want: "--redis-url (ENRICHER_REDIS_URL) must not carry a password"},
		{name: "replay app rate", args: []string{"replay", "--redis-url", "redis://127.0.0.1:6379", "--app-api-rate", "300"},
			want: "--app-api-rate (ENRICHER_API_RATE) must be above 0 and at most 200"},
		{name: "dev instances", args: []string{"dev", "--instances", "0"}, want: "--instances (ENRICHER_DEV_INSTANCES) must be at least 1"},
		{name: "dev url", args: []string{"dev", "--redis-url", "redis://:" + testRedisPassword + "@h"}, want: "--redis-url (ENRICHER_REDIS_URL) must not carry a password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			validRunEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, stdout, stderr := runApp(t, context.Background(), tt.args...)
			if code != exitCodeUsage {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, exitCodeUsage, stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Fatalf("stderr must be one line containing %q, got %q", tt.want, stderr)
			}
			if strings.Contains(stdout+stderr, testRedisPassword) {
				t.Error("output contains the Redis password")
			}
		})
	}
}

// parseRedis reads the URL, TLS for rediss and the password from the
// environment or the file; the URL as logged holds no password.
func TestParseRedis(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(testRedisPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	parse := func(env string, args ...string) redisSettings {
		t.Helper()
		clearEnv(t)
		if env != "" {
			t.Setenv(envRedisPassword, env)
		}
		var got redisSettings
		var perr error
		cmd := &cli.Command{Name: "run", Flags: redisFlags(), Action: func(_ context.Context, cmd *cli.Command) error {
			got, perr = parseRedis(cmd)
			return nil
		}}
		if err := cmd.Run(context.Background(), append([]string{"run"}, args...)); err != nil || perr != nil {
			t.Fatalf("%v %v", err, perr)
		}
		return got
	}
	if s := parse(""); s.Options != nil {
		t.Errorf("no --redis-url: %+v, want no Redis", s)
	}
	s := parse(testRedisPassword, "--redis-url", "rediss://enricher@cache.example:6380/2")
	if o := s.Options; o == nil || o.TLSConfig == nil || o.TLSConfig.ServerName != "cache.example" || o.Addr != "cache.example:6380" ||
		o.DB != 2 || o.Username != "enricher" || o.Password != testRedisPassword {
		t.Errorf("rediss URL: %+v", s.Options)
	}
	s = parse("", "--redis-url", "redis://127.0.0.1:6379", "--redis-password-file", pwFile)
	if o := s.Options; o == nil || o.TLSConfig != nil || o.Password != testRedisPassword {
		t.Errorf("redis URL with password file: %+v", s.Options)
	}
	if strings.Contains(s.Shown, testRedisPassword) || s.Shown != "redis://127.0.0.1:6379" {
		t.Errorf("shown URL %q", s.Shown)
	}
}

// With --redis-url the replay's --api-rate is the cap of its part of the
// shared budget, whose rate is --app-api-rate; without it, its own rate.
func TestReplayRateIsACapWithRedis(t *testing.T) {
	appRate := ""
	parse := func(args ...string) replaySettings {
		t.Helper()
		validRunEnv(t)
		if appRate != "" {
			t.Setenv("ENRICHER_API_RATE", appRate)
		}
		cmd := replayCommand()
		var s replaySettings
		var perr error
		cmd.Action = func(_ context.Context, cmd *cli.Command) error {
			s, perr = parseReplay(cmd)
			return nil
		}
		if err := cmd.Run(context.Background(), append([]string{"replay"}, args...)); err != nil || perr != nil {
			t.Fatalf("%v %v", err, perr)
		}
		return s
	}
	if s := parse("--api-rate", "80"); s.Redis.Options != nil || s.Tencent.Rate != 80 || s.Cap != 0 {
		t.Errorf("without Redis: rate %g cap %g, want its own rate 80", s.Tencent.Rate, s.Cap)
	}
	if s := parse("--api-rate", "80", "--redis-url", "redis://127.0.0.1:6379"); s.Tencent.Rate != client.DefaultRate || s.Cap != 80 {
		t.Errorf("with Redis: rate %g cap %g, want the shared 200 capped at 80", s.Tencent.Rate, s.Cap)
	}
	appRate = "150"
	if s := parse("--redis-url", "redis://127.0.0.1:6379"); s.Tencent.Rate != 150 || s.Cap != defaultReplayAPIRate {
		t.Errorf("with Redis and ENRICHER_API_RATE=150: rate %g cap %g", s.Tencent.Rate, s.Cap)
	}
}
