package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/tencentchat-enricher/enricher/client/simulator"
)

// Dev credentials of the simulator: for local development and tests only.
const (
	devSDKAppID  = 1400000001
	devAdmin     = "administrator"
	devSecretKey = "dev-only-secret-key"
)

// simulatorWebhookTokenEnv holds the token the simulator signs its webhook
// calls with (a secret: never a flag).
const simulatorWebhookTokenEnv = "SIMULATOR_WEBHOOK_TOKEN"

// simulatorSecretEnv holds the simulator's secret key. The key is read
// from the environment only, never from a flag, so that it does not show in
// process listings.
const simulatorSecretEnv = "SIMULATOR_SECRET_KEY"

func simulatorCommand() *cli.Command {
	return &cli.Command{
		Name:  "simulator",
		Usage: "serve a simulated Tencent Cloud Chat get_subscribed_official_account_list endpoint",
		Description: "The secret key UserSigs are verified with comes from " + simulatorSecretEnv +
			"; --dev-credentials falls back to the dev-only key when it is unset.\n" +
			"Runtime knobs: GET /stats, DELETE /stats, GET /faults, POST /faults (JSON, merged), GET /healthz,\n" +
			"POST /subscriptions ({\"user\":...,\"account\":...,\"subscribed\":true|false}).\n" +
			"Subscription changes (--churn, POST /subscriptions) call --webhook-url as Tencent does, signed with " + simulatorWebhookTokenEnv + " when set.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "`address` to listen on", Sources: cli.EnvVars("SIMULATOR_LISTEN")},
			&cli.IntFlag{Name: "sdkappid", Value: devSDKAppID, Usage: "SDKAppID of the simulated app", Sources: cli.EnvVars("SIMULATOR_SDKAPPID")},
			&cli.StringFlag{Name: "admin", Value: devAdmin, Usage: "the app admin account (URL identifier)", Sources: cli.EnvVars("SIMULATOR_ADMIN")},
			&cli.BoolFlag{Name: "dev-credentials", Usage: "use the dev-only secret key when " + simulatorSecretEnv + " is unset", Sources: cli.EnvVars("SIMULATOR_DEV_CREDENTIALS")},
			&cli.StringFlag{Name: "data", Usage: "JSON dataset `file` (instead of generated data)", Sources: cli.EnvVars("SIMULATOR_DATA")},
			&cli.IntFlag{Name: "users", Value: simulator.DefaultUsers, Usage: "generated users user-0..user-N-1", Sources: cli.EnvVars("SIMULATOR_USERS")},
			&cli.IntFlag{Name: "accounts", Value: simulator.DefaultAccounts, Usage: "generated official accounts", Sources: cli.EnvVars("SIMULATOR_ACCOUNTS")},
			&cli.FloatFlag{Name: "unknown-share", Value: simulator.DefaultUnknownShare, Usage: "share of generated users that do not exist (130004)", Sources: cli.EnvVars("SIMULATOR_UNKNOWN_SHARE")},
			&cli.FloatFlag{Name: "heavy-share", Value: simulator.DefaultHeavyShare, Usage: "share of existing users with more than 200 subscriptions", Sources: cli.EnvVars("SIMULATOR_HEAVY_SHARE")},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "generator seed", Sources: cli.EnvVars("SIMULATOR_SEED")},
			&cli.IntFlag{Name: "rate", Value: simulator.DefaultRate, Usage: "calls per trailing second before 60007 (negative: no limit)", Sources: cli.EnvVars("SIMULATOR_RATE")},
			&cli.DurationFlag{Name: "latency", Value: 20 * time.Millisecond, Usage: "base latency of every call", Sources: cli.EnvVars("SIMULATOR_LATENCY")},
			&cli.DurationFlag{Name: "jitter", Value: 40 * time.Millisecond, Usage: "random extra latency in [0, jitter)", Sources: cli.EnvVars("SIMULATOR_JITTER")},
			&cli.FloatFlag{Name: "p502", Usage: "probability of HTTP 502", Sources: cli.EnvVars("SIMULATOR_P502")},
			&cli.FloatFlag{Name: "p10004", Usage: "probability of ErrorCode 10004", Sources: cli.EnvVars("SIMULATOR_P10004")},
			&cli.FloatFlag{Name: "p20005", Usage: "probability of ErrorCode 20005", Sources: cli.EnvVars("SIMULATOR_P20005")},
			&cli.FloatFlag{Name: "slow-probability", Usage: "probability of a call delayed by --slow-delay", Sources: cli.EnvVars("SIMULATOR_SLOW_PROBABILITY")},
			&cli.StringFlag{Name: "webhook-url", Usage: "`URL` called on every subscription change (the processor's --webhook-addr, path " + webhookPath + ")", Sources: cli.EnvVars("SIMULATOR_WEBHOOK_URL")},
			&cli.FloatFlag{Name: "churn", Usage: "`FRACTION` of the generated users whose subscriptions change every minute (0: none)", Sources: cli.EnvVars("SIMULATOR_CHURN")},
			&cli.DurationFlag{Name: "slow-delay", Value: 10 * time.Second, Usage: "extra delay of slow calls", Sources: cli.EnvVars("SIMULATOR_SLOW_DELAY")},
		},
		Action: runSimulator,
		OnUsageError: func(_ context.Context, _ *cli.Command, err error, _ bool) error {
			return usageError{err}
		},
	}
}

func runSimulator(ctx context.Context, cmd *cli.Command) error {
	key := os.Getenv(simulatorSecretEnv)
	if key == "" {
		if !cmd.Bool("dev-credentials") {
			return badConfig("simulator: %s is not set (pass --dev-credentials to use the dev-only key)", simulatorSecretEnv)
		}
		key = devSecretKey
	}

	data, describe, err := simulatorData(cmd)
	if err != nil {
		return err
	}
	cfg := simulator.Config{
		SDKAppID:  cmd.Int("sdkappid"),
		Admin:     cmd.String("admin"),
		SecretKey: key,
		Rate:      cmd.Int("rate"),
		Dataset:   data,
		Seed:      uint64(time.Now().UnixNano()),
		Faults: simulator.Faults{
			Latency: cmd.Duration("latency"), Jitter: cmd.Duration("jitter"),
			P502: cmd.Float64("p502"), P10004: cmd.Float64("p10004"), P20005: cmd.Float64("p20005"),
			SlowProbability: cmd.Float64("slow-probability"), SlowDelay: cmd.Duration("slow-delay"),
		},
	}
	cfg.Webhook = simulator.Webhook{URL: cmd.String("webhook-url"), Token: os.Getenv(simulatorWebhookTokenEnv)}
	churn := cmd.Float("churn")
	if churn < 0 || churn > 1 {
		return badConfig("simulator: --churn must be a fraction from 0 to 1, got %g", churn)
	}
	if churn > 0 && cmd.String("data") != "" {
		return badConfig("simulator: --churn changes generated users; it excludes --data")
	}
	if cfg.Rate == 0 {
		return badConfig("simulator: --rate 0 would refuse every call (use a negative rate for no limit)")
	}
	sim, err := simulator.New(cfg)
	if err != nil {
		return badConfig("%w", err)
	}

	ln, err := net.Listen("tcp", cmd.String("listen"))
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	rate := fmt.Sprintf("%d/s", cfg.Rate)
	if cfg.Rate < 0 {
		rate = "unlimited"
	}
	fmt.Fprintf(cmd.Root().Writer, "simulator listening on http://%s%s (sdkappid %d, admin %s, %s, rate %s, latency %v+[0,%v))\n",
		ln.Addr(), simulator.Path, cfg.SDKAppID, cfg.Admin, describe, rate, cfg.Faults.Latency, cfg.Faults.Jitter)

	churnCtx, stopChurn := context.WithCancel(ctx)
	churned := make(chan struct{})
	go func() {
		defer close(churned)
		if churn > 0 {
			_ = sim.RunChurn(churnCtx, churn, cmd.Int("users"))
		}
	}()
	defer func() { stopChurn(); <-churned }()
	select {
	case err := <-served:
		return fmt.Errorf("simulator: %w", err)
	case <-ctx.Done():
	}
	// Let calls in flight finish, within bounds.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if err != nil {
		err = errors.Join(err, srv.Close())
	}
	<-served
	st := sim.Stats()
	c, w := sim.ChurnStats(), sim.WebhookStats()
	fmt.Fprintf(cmd.Root().Writer, "simulator stopped: %d calls, by code %v, max %d in a second, max %d concurrent; changes +%d/-%d, webhooks %d (%d failed)\n",
		st.Total, st.ByCode, st.MaxPerSecond, st.MaxConcurrent, c.Subscribed, c.Unsubscribed, w.Sent, w.Failed)
	if err != nil {
		return fmt.Errorf("simulator: shutdown: %w", err)
	}
	return nil
}

// simulatorData loads --data or generates a dataset from the generator
// flags, and describes it for the start line.
func simulatorData(cmd *cli.Command) (*simulator.Dataset, string, error) {
	if path := cmd.String("data"); path != "" {
		for _, f := range []string{"users", "accounts", "unknown-share", "heavy-share", "seed"} {
			if cmd.IsSet(f) {
				return nil, "", badConfig("simulator: --data and --%s exclude each other", f)
			}
		}
		d, err := simulator.LoadDataset(path)
		if err != nil {
			return nil, "", badConfig("%w", err)
		}
		return d, fmt.Sprintf("%d accounts from %s", d.NumAccounts(), path), nil
	}
	gen := simulator.GenConfig{
		Seed:         cmd.Int64("seed"),
		Users:        cmd.Int("users"),
		Accounts:     cmd.Int("accounts"),
		UnknownShare: noneIfZero(cmd.Float64("unknown-share")),
		HeavyShare:   noneIfZero(cmd.Float64("heavy-share")),
	}
	if gen.Users <= 0 || gen.Accounts <= 0 {
		return nil, "", badConfig("simulator: --users and --accounts must be positive")
	}
	if err := gen.Validate(); err != nil {
		return nil, "", badConfig("%w", err)
	}
	return simulator.Generate(gen), fmt.Sprintf("%d users, %d accounts, seed %d", gen.Users, gen.Accounts, gen.Seed), nil
}

// noneIfZero maps a share flag of 0 to the generator's "none" (a negative
// share); the generator reads 0 as "default".
func noneIfZero(v float64) float64 {
	if v == 0 {
		return -1
	}
	return v
}
