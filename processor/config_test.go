package processor

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string // substring naming the setting; "" = valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no brokers", func(c *Config) { c.Brokers = nil }, "Brokers"},
		{"empty broker", func(c *Config) { c.Brokers = []string{""} }, "Brokers"},
		{"no input", func(c *Config) { c.InputTopic = "" }, "InputTopic"},
		{"no output", func(c *Config) { c.OutputTopic = "" }, "OutputTopic"},
		{"no dlq", func(c *Config) { c.DLQTopic = "" }, "DLQTopic"},
		{"no group", func(c *Config) { c.Group = "" }, "Group"},
		{"input is output", func(c *Config) { c.OutputTopic = c.InputTopic }, "OutputTopic"},
		{"dlq is output", func(c *Config) { c.DLQTopic = c.OutputTopic }, "DLQTopic"},
		{"bad start", func(c *Config) { c.StartOffset = "middle" }, "StartOffset"},
		{"latest", func(c *Config) { c.StartOffset = StartLatest }, ""},
		{"bad order", func(c *Config) { c.OrderBy = "random" }, "OrderBy"},
		{"bad pointer", func(c *Config) { c.UserIDPointer = "user_id" }, "UserIDPointer"},
		{"nested pointer", func(c *Config) { c.UserIDPointer = "/user/id" }, ""},
		{"negative in-flight", func(c *Config) { c.MaxInFlight = -1 }, "MaxInFlight"},
		{"per partition above global", func(c *Config) { c.MaxInFlight, c.MaxInFlightPerPartition = 10, 20 }, ""},
		{"window past the largest", func(c *Config) { c.MaxInFlightPerPartition = MaxPartitionWindow + 1 }, "MaxInFlightPerPartition"},
		{"negative ttl", func(c *Config) { c.CacheTTL = -time.Second }, "CacheTTL"},
		{"negative unavailable", func(c *Config) { c.UnavailableAfter = -time.Second }, "UnavailableAfter"},
		{"negative record deadline", func(c *Config) { c.RecordRetryDeadline = -time.Second }, "RecordRetryDeadline"},
		{"negative record bytes", func(c *Config) { c.MaxRecordBytes = -1 }, "MaxRecordBytes"},
		{"tiny record bytes", func(c *Config) { c.MaxRecordBytes = 100 }, "MaxRecordBytes"},
		{"drain at rebalance", func(c *Config) { c.DrainTimeout, c.RebalanceTimeout = 5*time.Second, 5*time.Second }, "RebalanceTimeout"},
		{"drain above default rebalance", func(c *Config) { c.DrainTimeout = time.Minute }, "RebalanceTimeout"},
		{"drain below rebalance", func(c *Config) { c.DrainTimeout, c.RebalanceTimeout = 4*time.Second, 5*time.Second }, ""},
		{"default drain, short rebalance", func(c *Config) { c.RebalanceTimeout = 2 * time.Second }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.mutate(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want ErrConfig naming %s", err, tc.wantErr)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := testConfig().withDefaults()
	if c.StartOffset != StartEarliest || c.startOffset() != kafka.FirstOffset || c.UserIDPointer != "/user_id" ||
		c.OrderBy != OrderByKafkaKey || c.MaxInFlight != DefaultMaxInFlight || c.MaxInFlightPerPartition != DefaultMaxInFlightPerPartition ||
		c.CacheTTL != 10*time.Minute || c.NegativeCacheTTL != time.Minute || c.MaxEventBytes != 1<<20 ||
		c.Now == nil || c.Logger == nil {
		t.Fatalf("defaults %+v", c)
	}
	if c.RecordRetryDeadline != 10*time.Minute || c.MaxRecordBytes != 1048576 || c.DrainTimeout != 10*time.Second {
		t.Fatalf("defaults %+v", c)
	}
	short := testConfig()
	short.RebalanceTimeout = 2 * time.Second
	if got := short.withDefaults().DrainTimeout; got != time.Second {
		t.Fatalf("default DrainTimeout with RebalanceTimeout 2s = %s, want 1s", got)
	}
	latest := testConfig()
	latest.StartOffset = StartLatest
	if latest.startOffset() != kafka.LastOffset {
		t.Fatal("latest")
	}
}

func TestFatalErrorMessage(t *testing.T) {
	inner := errors.New("tencentchat: ErrorCode 131000")
	err := error(&FatalError{Code: 131000, Setting: "the SDKAppID (enable the official-account service)", Err: inner})
	msg := err.Error()
	for _, want := range []string{"131000", "SDKAppID"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not name %s", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("message %q is not one line", msg)
	}
	if !errors.Is(err, inner) {
		t.Error("does not unwrap to the client error")
	}
	writeErr := &TopicError{Topic: "out", Field: "OutputTopic", Err: errors.New("denied")}
	if msg := writeErr.Error(); !strings.Contains(msg, `"out"`) || !strings.Contains(msg, "OutputTopic") || strings.Contains(msg, "API") {
		t.Errorf("message %q", msg)
	}
	httpErr := &FatalError{HTTPStatus: 404, Setting: "BaseURL"}
	if !strings.Contains(httpErr.Error(), "HTTP status 404") {
		t.Errorf("message %q", httpErr.Error())
	}
}
