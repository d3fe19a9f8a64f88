package client

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	return Config{SDKAppID: testAppID, Admin: testAdmin, SecretKey: testSecret, Region: RegionSingapore}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string // substring; "" = valid
	}{
		{"valid defaults", func(*Config) {}, ""},
		{"base url overrides region", func(c *Config) { c.Region = ""; c.BaseURL = "http://127.0.0.1:8080" }, ""},
		{"base url host only", func(c *Config) { c.BaseURL = "proxy.internal:8443" }, ""},
		{"no app id", func(c *Config) { c.SDKAppID = 0 }, "SDKAppID"},
		{"no admin", func(c *Config) { c.Admin = " " }, "Admin"},
		{"no key", func(c *Config) { c.SecretKey = "" }, "SecretKey"},
		{"no region", func(c *Config) { c.Region = "" }, "Region or BaseURL"},
		{"bad region", func(c *Config) { c.Region = "mars" }, "unknown region"},
		{"bad scheme", func(c *Config) { c.BaseURL = "ftp://x" }, "scheme"},
		{"query in base url", func(c *Config) { c.BaseURL = "https://x/?usersig=1" }, "query"},
		{"rate negative", func(c *Config) { c.Rate = -1 }, "Rate"},
		{"rate NaN", func(c *Config) { c.Rate = math.NaN() }, "Rate"},
		{"rate infinite", func(c *Config) { c.Rate = math.Inf(1) }, "Rate"},
		{"rate one per second", func(c *Config) { c.Rate = 1 }, ""},
		{"rate fractional", func(c *Config) { c.Rate = 0.5 }, ""},
		{"rate safety NaN", func(c *Config) { c.RateSafety = math.NaN() }, "RateSafety"},
		{"safety above 1", func(c *Config) { c.RateSafety = 1.5 }, "RateSafety"},
		{"decrease 1", func(c *Config) { c.RateDecrease = 1 }, "RateDecrease"},
		{"page limit 201", func(c *Config) { c.PageLimit = 201 }, "PageLimit"},
		{"page limit negative", func(c *Config) { c.PageLimit = -1 }, "PageLimit"},
		{"bad filter", func(c *Config) { c.Filter = &ResponseFilter{OfficialAccountBaseInfoFilter: []string{"Nmae"}} }, "Nmae"},
		{"bad self filter", func(c *Config) { c.Filter = &ResponseFilter{SelfInfoFilter: []string{"Name"}} }, "SelfInfoFilter"},
		{"good filter", func(c *Config) { c.Filter = &ResponseFilter{SelfInfoFilter: []string{"SubscribeTime"}} }, ""},
		{"timeout below server", func(c *Config) { c.Timeout = 2 * time.Second }, "Timeout"},
		{"sig ttl 1h", func(c *Config) { c.UserSigTTL = time.Hour }, "UserSigTTL"},
		{"attempts", func(c *Config) { c.MaxAttempts = -1 }, "MaxAttempts"},
		{"deadline", func(c *Config) { c.RetryDeadline = -time.Second }, "RetryDeadline"},
		{"backoff", func(c *Config) { c.BackoffBase = time.Second; c.BackoffMax = time.Millisecond }, "Backoff"},
		{"pages", func(c *Config) { c.MaxPages = -2 }, "MaxPages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mod(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				cl, err := New(c)
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				_ = cl.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want error containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), testSecret) {
				t.Errorf("error contains the secret key")
			}
			if cl, err := New(c); err == nil || cl != nil {
				t.Errorf("New accepted an invalid config")
			}
		})
	}
}

func TestNewZeroConfigDoesNotPanic(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New(Config{}) returned no error")
	}
}

func TestDefaults(t *testing.T) {
	d := validConfig().withDefaults()
	if d.Rate != 200 || d.PageLimit != 200 || d.Timeout != 5*time.Second || d.UserSigTTL < 24*time.Hour ||
		d.MaxAttempts < 1 || d.RetryDeadline <= 0 || d.MaxPages < 1 || d.Now == nil {
		t.Errorf("unexpected defaults: %+v", d)
	}
	u, err := d.baseURL()
	if err != nil || u.String() != "https://adminapisgp.im.qcloud.com" {
		t.Errorf("baseURL = %v, %v", u, err)
	}
	c := validConfig()
	c.BaseURL = "proxy.internal:8443/prefix/"
	u, err = c.baseURL()
	if err != nil || u.String() != "https://proxy.internal:8443/prefix" {
		t.Errorf("baseURL = %v, %v", u, err)
	}
}

func TestConfigRedactsSecret(t *testing.T) {
	c := validConfig()
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "cfg", c)
	for _, s := range []string{c.String(), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), buf.String()} {
		if strings.Contains(s, testSecret) {
			t.Errorf("secret key printed: %s", s)
		}
		if !strings.Contains(s, "REDACTED") {
			t.Errorf("no redaction marker: %s", s)
		}
	}
}

// TestValidateConfigErrors: every problem is a *ConfigError naming its
// field, in the order of the Config fields, and New returns the same.
func TestValidateConfigErrors(t *testing.T) {
	c := Config{SDKAppID: -1, Admin: "admin", SecretKey: "", BaseURL: "ftp://user:pw@x", Rate: -2,
		PageLimit: 500, Timeout: time.Second, Breaker: BreakerConfig{Interval: -time.Second}}
	err := c.Validate()
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("Validate = %v, not ErrConfig", err)
	}
	var first *ConfigError
	if !errors.As(err, &first) || first.Field != "SDKAppID" || first.Value != -1 {
		t.Fatalf("first problem = %#v", first)
	}
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *ConfigError
		if !errors.As(e, &ce) {
			t.Fatalf("%v is not a *ConfigError", e)
		}
		fields = append(fields, ce.Field)
	}
	want := []string{"SDKAppID", "SecretKey", "BaseURL", "Rate", "PageLimit", "Timeout", "Breaker.Interval"}
	if !slices.Equal(fields, want) {
		t.Errorf("fields = %q, want %q", fields, want)
	}
	if strings.Contains(err.Error(), "pw") {
		t.Errorf("error shows the BaseURL's password: %v", err)
	}
	_, nerr := New(c)
	if nerr == nil || nerr.Error() != err.Error() {
		t.Errorf("New = %v, want the error of Validate", nerr)
	}
}

func TestConfigErrorText(t *testing.T) {
	tests := []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Rate = math.Inf(1) }, "client: invalid config: Rate +Inf: must be above 0 and at most 200 calls/s (the API's limit per app)"},
		{func(c *Config) { c.Admin = " " }, `client: invalid config: Admin " ": the app admin identifier is required`},
		{func(c *Config) { c.SecretKey = "" }, "client: invalid config: SecretKey: is required"},
		{func(c *Config) { c.Region = "" }, "client: invalid config: Region: one of Region or BaseURL is required"},
		{func(c *Config) { c.Timeout = 2 * time.Second }, "client: invalid config: Timeout 2s: must exceed the server's 3s timeout"},
		{func(c *Config) { c.BaseURL = "https://x/?usersig=abc" }, `client: invalid config: BaseURL "https://x/?usersig=REDACTED": must not carry a query or user info`},
		{func(c *Config) { c.Filter = &ResponseFilter{SelfInfoFilter: []string{"Name"}} },
			`client: invalid config: Filter.SelfInfoFilter "Name": unknown field, want one of [SubscribeTime CustomString]`},
	}
	for _, tt := range tests {
		c := validConfig()
		tt.mod(&c)
		if err := c.Validate(); err == nil || err.Error() != tt.want {
			t.Errorf("Validate = %v\nwant         %s", err, tt.want)
		}
	}
	cause := errors.New("cause")
	ce := &ConfigError{Field: "BaseURL", Reason: "is not a URL", Err: cause}
	if !errors.Is(ce, cause) || !errors.Is(ce, ErrConfig) || ce.Error() != "client: invalid config: BaseURL: is not a URL: cause" {
		t.Errorf("ConfigError %q: Is/Unwrap wrong", ce)
	}
}

// TestValidateNeverShowsTheKey: no problem, whatever the key, prints it.
func TestValidateNeverShowsTheKey(t *testing.T) {
	c := Config{SecretKey: testSecret, Rate: -1, BaseURL: "https://%zz" + testSecret}
	err := c.Validate()
	if err == nil || strings.Contains(err.Error(), testSecret) {
		t.Errorf("Validate = %v", err)
	}
}
