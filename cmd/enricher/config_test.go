package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/processor"
)

// testSecret is a sentinel secret key; no output may ever contain it.
const testSecret = "s3cr3t-sentinel-7f1e9a"

// clearEnv removes every ENRICHER_* variable for the duration of the test.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "ENRICHER_") {
			t.Setenv(name, "") // restores the old value after the test
			os.Unsetenv(name)
		}
	}
}

// runApp runs the command line in-process and returns the exit code and outputs.
func runApp(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(ctx, append([]string{"enricher"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// parsed runs a command made of flags and returns what parse produced.
func parsed[T any](t *testing.T, flags []cli.Flag, parse func(*cli.Command) (T, error), args ...string) (T, error) {
	t.Helper()
	var got T
	var perr error
	cmd := &cli.Command{Name: "t", Flags: flags, Action: func(_ context.Context, c *cli.Command) error {
		got, perr = parse(c)
		return nil
	}}
	if err := cmd.Run(context.Background(), append([]string{"t"}, args...)); err != nil {
		t.Fatalf("cli: %v", err)
	}
	return got, perr
}

func TestPipelinePrecedence(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		topic string
		ttl   time.Duration
		infl  int
	}{
		{name: "default", topic: defaultInputTopic, ttl: processor.DefaultCacheTTL, infl: processor.DefaultMaxInFlight},
		{name: "env over default", env: map[string]string{"ENRICHER_INPUT_TOPIC": "env-topic", "ENRICHER_CACHE_TTL": "90s", "ENRICHER_MAX_IN_FLIGHT": "7"},
			topic: "env-topic", ttl: 90 * time.Second, infl: 7},
		{name: "flag over env", env: map[string]string{"ENRICHER_INPUT_TOPIC": "env-topic", "ENRICHER_CACHE_TTL": "90s", "ENRICHER_MAX_IN_FLIGHT": "7"},
			args: []string{"--input-topic", "flag-topic", "--cache-ttl", "2m", "--max-in-flight", "9"}, topic: "flag-topic", ttl: 2 * time.Minute, infl: 9},
		{name: "flag over default", args: []string{"--input-topic=flag-topic"}, topic: "flag-topic", ttl: processor.DefaultCacheTTL, infl: processor.DefaultMaxInFlight},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			got, err := parsed(t, pipelineFlags(), parsePipeline, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if got.InputTopic != tt.topic || got.CacheTTL != tt.ttl || got.MaxInFlight != tt.infl {
				t.Errorf("got topic=%q ttl=%s in-flight=%d, want %q %s %d", got.InputTopic, got.CacheTTL, got.MaxInFlight, tt.topic, tt.ttl, tt.infl)
			}
		})
	}
}

func TestKafkaAndTencentPrecedence(t *testing.T) {
	clearEnv(t)
	t.Setenv("ENRICHER_BROKERS", "a:1,b:2")
	t.Setenv("ENRICHER_IM_REGION", "singapore")
	t.Setenv("ENRICHER_IM_SDKAPPID", "1400000001")
	t.Setenv("ENRICHER_IM_ADMIN", "administrator")
	t.Setenv("ENRICHER_API_RATE", "50")
	t.Setenv(envSecretKey, testSecret)

	k, err := parsed(t, kafkaFlags(), parseKafka)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(k.Brokers, ",") != "a:1,b:2" || k.TLS != nil || k.SASL != nil {
		t.Errorf("env brokers: got %+v", k)
	}
	k, err = parsed(t, kafkaFlags(), parseKafka, "--brokers", "c:3")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(k.Brokers, ",") != "c:3" {
		t.Errorf("flag brokers: got %v", k.Brokers)
	}

	im, err := parsed(t, tencentFlags(), parseTencent, "--api-rate", "100")
	if err != nil {
		t.Fatal(err)
	}
	if im.Region != client.RegionSingapore || im.SDKAppID != 1400000001 || im.Admin != "administrator" || im.SecretKey != testSecret || im.Rate != 100 {
		t.Errorf("got %v", im)
	}
	if strings.Contains(im.String(), testSecret) {
		t.Error("String() leaks the secret")
	}
}

func TestSecretFromFile(t *testing.T) {
	clearEnv(t)
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	im, err := parsed(t, tencentFlags(), parseTencent, "--im-region", "china", "--im-sdkappid", "1", "--im-admin", "a", "--im-secret-key-file", path)
	if err != nil {
		t.Fatal(err)
	}
	if im.SecretKey != testSecret {
		t.Errorf("secret from file: got %d bytes, want %d", len(im.SecretKey), len(testSecret))
	}
}

func TestSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "scram-sha-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			clearEnv(t)
			t.Setenv(envSASLPassword, testSecret)
			k, err := parsed(t, kafkaFlags(), parseKafka, "--kafka-sasl-mechanism", mech, "--kafka-sasl-username", "u", "--kafka-tls")
			if err != nil {
				t.Fatal(err)
			}
			if k.SASL == nil || !strings.EqualFold(k.SASL.Name(), mech) || k.TLS == nil {
				t.Errorf("got SASL %v TLS %v", k.SASL, k.TLS)
			}
		})
	}
}

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestKafkaTLS(t *testing.T) {
	clearEnv(t)
	cert, key := writeCert(t)
	junk := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}

	k, err := parsed(t, kafkaFlags(), parseKafka, "--kafka-tls-ca-file", cert, "--kafka-tls-cert-file", cert, "--kafka-tls-key-file", key)
	if err != nil {
		t.Fatal(err)
	}
	if k.TLS == nil || k.TLS.RootCAs == nil || len(k.TLS.Certificates) != 1 || k.TLS.InsecureSkipVerify {
		t.Errorf("mutual TLS config incomplete: %+v", k.TLS)
	}

	t.Setenv("ENRICHER_KAFKA_TLS", "true")
	k, err = parsed(t, kafkaFlags(), parseKafka)
	if err != nil || k.TLS == nil || k.TLS.RootCAs != nil {
		t.Errorf("ENRICHER_KAFKA_TLS=true: TLS %+v, err %v; want system roots", k.TLS, err)
	}

	for _, tt := range []struct {
		args    []string
		setting string
	}{
		{[]string{"--kafka-tls-ca-file", junk}, "--kafka-tls-ca-file"},
		{[]string{"--kafka-tls-cert-file", cert, "--kafka-tls-key-file", junk}, "--kafka-tls-cert-file"},
	} {
		_, err := parsed(t, kafkaFlags(), parseKafka, tt.args...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.setting) {
			t.Errorf("%v: err %v, want a usage error naming %s", tt.args, err, tt.setting)
		}
	}
}
