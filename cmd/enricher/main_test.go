package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// validRunEnv is a complete `run` configuration from the environment; the
// tests below break one setting at a time.
func validRunEnv(t *testing.T) {
	t.Helper()
	clearEnv(t)
	t.Setenv("ENRICHER_IM_REGION", "china")
	t.Setenv("ENRICHER_IM_SDKAPPID", "1400000001")
	t.Setenv("ENRICHER_IM_ADMIN", "administrator")
	t.Setenv(envSecretKey, testSecret)
	t.Setenv("ENRICHER_HTTP_ADDR", "")
}

func TestBadConfigurationExitsTwo(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name    string
		env     map[string]string // applied over validRunEnv; "" unsets
		args    []string
		setting string // the one line must name it
	}{
		{name: "unknown flag", args: []string{"run", "--bogus"}, setting: "bogus"},
		{name: "unknown root flag", args: []string{"--bogus"}, setting: "bogus"},
		{name: "bad flag value", args: []string{"run", "--api-rate", "fast"}, setting: "api-rate"},
		{name: "bad env value", env: map[string]string{"ENRICHER_API_RATE": "fast"}, args: []string{"run"}, setting: "ENRICHER_API_RATE"},
		{name: "bad duration", args: []string{"run", "--cache-ttl", "soon"}, setting: "cache-ttl"},
		{name: "zero cache ttl", args: []string{"run", "--cache-ttl", "0s"}, setting: "--cache-ttl"},
		{name: "negative unavailable-after", args: []string{"run", "--unavailable-after", "-1s"}, setting: "--unavailable-after"},
		{name: "missing secret", env: map[string]string{envSecretKey: ""}, args: []string{"run"}, setting: envSecretKey},
		{name: "secret file missing", env: map[string]string{envSecretKey: ""}, args: []string{"run", "--im-secret-key-file", missing}, setting: "--im-secret-key-file"},
		{name: "both secret sources", args: []string{"run", "--im-secret-key-file", missing}, setting: "--im-secret-key-file"},
		{name: "missing region", env: map[string]string{"ENRICHER_IM_REGION": ""}, args: []string{"run"}, setting: "--im-region"},
		{name: "missing sdkappid", env: map[string]string{"ENRICHER_IM_SDKAPPID": ""}, args: []string{"run"}, setting: "--im-sdkappid"},
		{name: "missing admin", env: map[string]string{"ENRICHER_IM_ADMIN": ""}, args: []string{"run"}, setting: "--im-admin"},
		{name: "api rate above limit", args: []string{"run", "--api-rate", "201"}, setting: "--api-rate"},
		{name: "api rate zero", env: map[string]string{"ENRICHER_API_RATE": "0"}, args: []string{"run"}, setting: "--api-rate"},
		{name: "bad broker", args: []string{"run", "--brokers", "nohost"}, setting: "--brokers"},
		{name: "empty brokers", env: map[string]string{"ENRICHER_BROKERS": ","}, args: []string{"run"}, setting: "--brokers"},
		{name: "same topics", args: []string{"run", "--output-topic", "user-events"}, setting: "--output-topic"},
		{name: "empty group", args: []string{"run", "--group", " "}, setting: "--group"},
		{name: "bad pointer", args: []string{"run", "--user-id-pointer", "user_id"}, setting: "--user-id-pointer"},
		{name: "zero in-flight", args: []string{"run", "--max-in-flight", "0"}, setting: "--max-in-flight"},
		{name: "zero cache size", args: []string{"run", "--cache-size", "0"}, setting: "--cache-size"},
		{name: "bad http addr", args: []string{"run", "--http-addr", "9464"}, setting: "--http-addr"},
		{name: "bad log level", args: []string{"run", "--log-level", "loud"}, setting: "--log-level"},
		{name: "bad sasl mechanism", args: []string{"run", "--kafka-sasl-mechanism", "GSSAPI", "--kafka-sasl-username", "u"}, setting: "--kafka-sasl-mechanism"},
		{name: "sasl without user", args: []string{"run", "--kafka-sasl-mechanism", "PLAIN"}, setting: "--kafka-sasl-username"},
		{name: "sasl without password", args: []string{"run", "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-username", "u"}, setting: envSASLPassword},
		{name: "tls cert without key", args: []string{"run", "--kafka-tls-cert-file", missing}, setting: "--kafka-tls-key-file"},
		{name: "tls ca missing", args: []string{"run", "--kafka-tls-ca-file", missing}, setting: "--kafka-tls-ca-file"},
		{name: "broker bad partitions", args: []string{"broker", "--partitions", "0"}, setting: "--partitions"},
		{name: "broker bad addr", args: []string{"broker", "--addr", "x"}, setting: "--addr"},
		{name: "broker unknown flag", args: []string{"broker", "--nope"}, setting: "nope"},
		{name: "dev unknown flag", args: []string{"dev", "--nope"}, setting: "nope"},
		{name: "unknown command", args: []string{"frobnicate"}, setting: "frobnicate"},
		{name: "dev zero rate", args: []string{"dev", "--rate", "0"}, setting: "--rate"},
		{name: "dev skew too small", args: []string{"dev", "--skew", "1"}, setting: "--skew"},
		{name: "dev malformed share", env: map[string]string{"ENRICHER_GEN_MALFORMED_SHARE": "2"}, args: []string{"dev"}, setting: "--malformed-share"},
		{name: "dev zero summary interval", args: []string{"dev", "--summary-interval", "0s"}, setting: "--summary-interval"},
		{name: "dev api rate", args: []string{"dev", "--api-rate", "500"}, setting: "--api-rate"},
		{name: "dev unusable data dir", args: []string{"dev", "--data-dir", filepath.Join(missing, "\x00")}, setting: "--data-dir"},
		{name: "generate bad count", args: []string{"generate", "--count", "-1"}, setting: "--count"},
		{name: "generate bad brokers", args: []string{"generate", "--brokers", "x"}, setting: "--brokers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			validRunEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
				if v == "" {
					os.Unsetenv(k)
				}
			}
			code, stdout, stderr := runApp(t, context.Background(), tt.args...)
			if code != exitCodeUsage {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, exitCodeUsage, stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tt.setting) {
				t.Errorf("stderr must be one line naming %q, got %q", tt.setting, stderr)
			}
			if strings.Contains(stdout+stderr, testSecret) {
				t.Error("output contains the secret")
			}
		})
	}
}

func TestHelpNeverShowsSecret(t *testing.T) {
	validRunEnv(t)
	t.Setenv(envSASLPassword, testSecret)
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"dev", "--help"}, {"broker", "--help"}, {"generate", "--help"}, {"simulator", "--help"}, {"replay", "--help"}, {"help", "run"}} {
		code, stdout, stderr := runApp(t, context.Background(), args...)
		if code != 0 {
			t.Errorf("%v: exit code %d, stderr %q", args, code, stderr)
		}
		if strings.Contains(stdout+stderr, testSecret) {
			t.Errorf("%v: help shows the secret", args)
		}
		if args[0] == "run" && !strings.Contains(stdout, envSecretKey) {
			t.Errorf("run --help does not document %s", envSecretKey)
		}
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runApp(t, context.Background(), "version")
	if code != 0 || !strings.HasPrefix(stdout, "enricher "+readBuildInfo().Version) || !strings.Contains(stdout, runtime.Version()) {
		t.Errorf("version: code %d, output %q", code, stdout)
	}
}
