package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/tencentchat-enricher/enricher/internal/bench"
)

// benchCommand runs the end-to-end benchmark scenarios, each on a fresh
// in-process broker and simulator with its workload in a child process of
// this binary (started with the hidden --child flag).
func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure the processor against a raw-copy ceiling on an in-process broker and simulator",
		Description: "Scenarios: ceiling (raw kafka-go copy), warm, cold, skewed, warm-1p, cold-1p,\n" +
			"kill-restart, broker-restart, scale-out, shared-scale-out, shared-kill-restart,\n" +
			"shared-replay, shared-redis-outage; groups: all, one-partition, redelivery,\n" +
			"shared (needs redis-server; not in all).\n" +
			"Prints a table; --json writes the full report.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "scenario", Aliases: []string{"s"}, Value: []string{"all"}, Usage: "scenarios to run (repeat or comma-separate)"},
			&cli.FloatFlag{Name: "scale", Value: 1, Usage: "multiply every scenario's events and users (0.1 for a quick run)"},
			&cli.IntFlag{Name: "partitions", Value: 8, Usage: "partitions of all but the one-partition scenarios"},
			&cli.IntFlag{Name: "rate", Value: 200, Usage: "API budget in calls per second (simulator and client)"},
			&cli.DurationFlag{Name: "latency", Value: 20 * time.Millisecond, Usage: "simulated API latency per call"},
			&cli.DurationFlag{Name: "jitter", Value: 5 * time.Millisecond, Usage: "± jitter of the simulated API latency"},
			&cli.DurationFlag{Name: "timeout", Value: 30 * time.Minute, Usage: "give up on a scenario after this long"},
			&cli.DurationFlag{Name: "session-timeout", Usage: "the processors' group session timeout (default: the processor's)"},
			&cli.DurationFlag{Name: "commit-interval", Usage: "how often the processors commit (default: the processor's)"},
			&cli.StringFlag{Name: "output-compression", Usage: "`CODEC` of the processors' and copies' output: none, gzip, snappy, lz4 or zstd (default: the processor's)"},
			&cli.StringFlag{Name: "json", Usage: "also write the report as JSON to `FILE`"},
			&cli.StringFlag{Name: "profile", Usage: "write CPU and heap profiles of each scenario's workload into `DIR`"},
			&cli.BoolFlag{Name: "child", Hidden: true, Usage: "run one scenario's workload as told on standard input"},
		},
		Action: runBench,
	}
}

func runBench(ctx context.Context, cmd *cli.Command) error {
	if cmd.Bool("child") {
		return bench.ServeChild(ctx, os.Stdin, os.Stdout)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: find this program to run scenarios in: %w", err)
	}
	jitter := cmd.Duration("jitter")
	if jitter == 0 {
		jitter = -1 // none
	}
	if dir := cmd.String("profile"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return badConfig("--profile: %v", err)
		}
	}
	r, err := bench.New(bench.Config{
		Scenarios:      cmd.StringSlice("scenario"),
		Scale:          cmd.Float("scale"),
		Partitions:     cmd.Int("partitions"),
		Rate:           cmd.Int("rate"),
		Latency:        cmd.Duration("latency"),
		Jitter:         jitter,
		Timeout:        cmd.Duration("timeout"),
		SessionTimeout: cmd.Duration("session-timeout"),
		CommitInterval: cmd.Duration("commit-interval"),
		Compression:    cmd.String("output-compression"),
		ProfileDir:     cmd.String("profile"),
		Child: func(ctx context.Context) *exec.Cmd {
			return exec.CommandContext(ctx, self, "bench", "--child")
		},
		Progress: cmd.Root().ErrWriter,
	})
	if err != nil {
		return badConfig("%v", err)
	}
	rep, err := r.Run(ctx)
	if err != nil {
		return err
	}
	if err := rep.WriteTable(cmd.Root().Writer); err != nil {
		return err
	}
	if path := cmd.String("json"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		if err := rep.WriteJSON(f); err != nil {
			f.Close()
			return fmt.Errorf("bench: write %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("bench: write %s: %w", path, err)
		}
	}
	if n := rep.Failed(); n > 0 {
		return fmt.Errorf("bench: %d scenario(s) failed", n)
	}
	return nil
}
