package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/urfave/cli/v3"
)

// waitPoll is the period of the readiness probes of waitReady.
const waitPoll = 200 * time.Millisecond

// waitCommand waits until brokers answer and HTTP endpoints return 2xx, so
// that scripts (the README's walkthroughs, init containers) can start the
// next step once the previous one is up, with a bounded wait.
func waitCommand() *cli.Command {
	var flags []cli.Flag
	flags = append(flags, kafkaFlags()...)
	flags = append(flags,
		&cli.StringSliceFlag{Name: "http", Category: catOps, Sources: env("ENRICHER_WAIT_HTTP"),
			Usage: "`URL` that must answer 2xx (e.g. the simulator, or an enricher's /readyz); repeatable"},
		&cli.DurationFlag{Name: "timeout", Category: catOps, Value: 30 * time.Second, Sources: env("ENRICHER_WAIT_TIMEOUT"),
			Usage: "give up after this long, exiting 1 with what did not answer"},
	)
	return &cli.Command{
		Name:  "wait",
		Usage: "wait until the Kafka brokers answer and the --http URLs return 2xx (bounded by --timeout)",
		Description: "Checks the brokers when --brokers (or ENRICHER_BROKERS) is set or no --http URL is given.\n" +
			"Exits 0 once everything answers, 1 after --timeout naming what did not.",
		Flags: flags,
		Action: func(ctx context.Context, cmd *cli.Command) error {
			timeout := cmd.Duration("timeout")
			if timeout <= 0 {
				return flagError(cmd, "timeout", "must be positive, got %s", timeout)
			}
			var urls []string
			for _, u := range cmd.StringSlice("http") {
				if u = strings.TrimSpace(u); u == "" {
					continue
				}
				if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
					return flagError(cmd, "http", "must be an http:// or https:// URL, got %q", u)
				}
				urls = append(urls, u)
			}
			var k *kafkaSettings
			if cmd.IsSet("brokers") || len(urls) == 0 {
				s, err := parseKafka(cmd)
				if err != nil {
					return err
				}
				k = &s
			}
			start := time.Now()
			if err := waitReady(ctx, k, urls, timeout); err != nil {
				return err
			}
			var what []string
			if k != nil {
				what = append(what, "kafka "+strings.Join(k.Brokers, ","))
			}
			what = append(what, urls...)
			fmt.Fprintf(cmd.Root().Writer, "ready after %s: %s\n", time.Since(start).Round(time.Millisecond), strings.Join(what, ", "))
			return nil
		},
	}
}

// waitReady polls until a broker of k answers (k nil: no broker check) and
// every URL answers 2xx, or timeout passes: the error then says what did
// not answer, and how.
func waitReady(ctx context.Context, k *kafkaSettings, urls []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	probe := min(2*time.Second, timeout)
	hc := &http.Client{Timeout: probe}
	tick := time.NewTicker(waitPoll)
	defer tick.Stop()
	for {
		var pending []error
		if k != nil {
			if err := brokerAnswers(ctx, *k, probe); err != nil {
				pending = append(pending, fmt.Errorf("kafka %s: %w", strings.Join(k.Brokers, ","), err))
			}
		}
		for _, u := range urls {
			if err := urlAnswers(ctx, hc, u); err != nil {
				pending = append(pending, fmt.Errorf("%s: %w", u, err))
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().Add(waitPoll).After(deadline) {
			return fmt.Errorf("not ready after %s: %w", timeout, errors.Join(pending...))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// brokerAnswers reports whether any broker of k accepts a Kafka connection.
func brokerAnswers(ctx context.Context, k kafkaSettings, timeout time.Duration) error {
	d := &kafka.Dialer{Timeout: timeout, TLS: k.TLS, SASLMechanism: k.SASL}
	var errs []error
	for _, b := range k.Brokers {
		conn, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			_, err = conn.ApiVersions()
			conn.Close()
			if err == nil {
				return nil
			}
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func urlAnswers(ctx context.Context, hc *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}
