package main

// The webhook receiver of `run` and `dev` (--webhook-addr): Tencent's
// subscription webhooks applied to the cache, and the changes topic.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/urfave/cli/v3"

	"github.com/tencentchat-enricher/enricher/internal/telemetry"
	"github.com/tencentchat-enricher/enricher/processor/webhook"
)

// envWebhookToken holds the webhook authentication token (a secret: never a flag).
const envWebhookToken = "ENRICHER_WEBHOOK_TOKEN"

const catWebhook = "Webhooks"

// webhookPath is the path the receiver serves (any other path answers 404).
const webhookPath = "/tencent/callback"

func webhookFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "webhook-addr", Category: catWebhook, Sources: env("ENRICHER_WEBHOOK_ADDR"),
			Usage: "`ADDR` receiving Tencent's subscription webhooks at " + webhookPath + " (its own listener; empty: off)"},
		&cli.StringFlag{Name: "webhook-token-file", Category: catWebhook, Sources: env("ENRICHER_WEBHOOK_TOKEN_FILE"),
			Usage: "`FILE` holding the app's webhook authentication token (or set " + envWebhookToken + "); when set, RequestTime and Sign are verified"},
		&cli.StringFlag{Name: "webhook-tls-cert", Category: catWebhook, Sources: env("ENRICHER_WEBHOOK_TLS_CERT"),
			Usage: "PEM certificate `FILE` to serve the webhooks over HTTPS (with --webhook-tls-key; or terminate TLS in a proxy)"},
		&cli.StringFlag{Name: "webhook-tls-key", Category: catWebhook, Sources: env("ENRICHER_WEBHOOK_TLS_KEY"),
			Usage: "PEM key `FILE` of --webhook-tls-cert"},
		&cli.StringFlag{Name: "changes-topic", Category: catWebhook, Sources: env("ENRICHER_CHANGES_TOPIC"),
			Usage: "`TOPIC` receiving one record per subscription change from the webhooks (subscription-change.v1, keyed by user); needs --webhook-addr"},
	}
}

// webhookSettings configure the receiver; Addr empty: off.
type webhookSettings struct {
	Addr         string
	Token        string
	TLS          *tls.Config
	ChangesTopic string
}

func parseWebhook(cmd *cli.Command) (webhookSettings, error) {
	s := webhookSettings{
		Addr:         strings.TrimSpace(cmd.String("webhook-addr")),
		ChangesTopic: strings.TrimSpace(cmd.String("changes-topic")),
	}
	cert, key := cmd.String("webhook-tls-cert"), cmd.String("webhook-tls-key")
	tokenFile := cmd.String("webhook-token-file")
	if s.Addr == "" {
		for _, f := range []string{"changes-topic", "webhook-tls-cert", "webhook-tls-key", "webhook-token-file"} {
			if cmd.String(f) != "" {
				return s, flagError(cmd, f, "needs %s", flagRef(cmd, "webhook-addr"))
			}
		}
		return s, nil
	}
	if _, _, err := net.SplitHostPort(s.Addr); err != nil {
		return s, flagError(cmd, "webhook-addr", "must be [HOST]:PORT, got %q", s.Addr)
	}
	if (cert == "") != (key == "") {
		return s, usageError{fmt.Errorf("%s and %s must be set together", flagRef(cmd, "webhook-tls-cert"), flagRef(cmd, "webhook-tls-key"))}
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return s, usageError{fmt.Errorf("%s / %s: not a usable certificate and key: %w", flagRef(cmd, "webhook-tls-cert"), flagRef(cmd, "webhook-tls-key"), err)}
		}
		s.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	}
	if tokenFile != "" || strings.TrimSpace(os.Getenv(envWebhookToken)) != "" {
		tok, err := secret(envWebhookToken, flagRef(cmd, "webhook-token-file"), tokenFile)
		if err != nil {
			return s, err
		}
		s.Token = tok
	}
	return s, nil
}

// webhookServer is the receiver's listener and its changes writer.
type webhookServer struct {
	ln      net.Listener
	srv     *http.Server
	changes *kafka.Writer // nil without --changes-topic
	https   bool
	log     *slog.Logger
}

// startWebhook listens on s.Addr (nil, nil when off); Run serves.
func startWebhook(s webhookSettings, appID int, applier webhook.Applier, k kafkaSettings, log *slog.Logger, prov *telemetry.Providers) (*webhookServer, error) {
	if s.Addr == "" {
		return nil, nil
	}
	w := &webhookServer{log: log}
	cfg := webhook.Config{SDKAppID: appID, Token: s.Token, Applier: applier, Logger: log,
		MeterProvider: prov.MeterProvider, TracerProvider: prov.TracerProvider}
	if s.ChangesTopic != "" {
		w.changes = &kafka.Writer{
			Addr: kafka.TCP(k.Brokers...), Topic: s.ChangesTopic, Balancer: &kafka.Hash{},
			RequiredAcks: kafka.RequireAll, BatchTimeout: 2 * time.Millisecond,
			Transport: &kafka.Transport{TLS: k.TLS, SASL: k.SASL},
		}
		cfg.Changes = w.changes
	}
	recv, err := webhook.New(cfg)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(webhookPath, recv)
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		if w.changes != nil {
			_ = w.changes.Close()
		}
		return nil, fmt.Errorf("--webhook-addr %s: %w", s.Addr, err)
	}
	if s.TLS != nil {
		ln = tls.NewListener(ln, s.TLS)
		w.https = true
	}
	w.ln = ln
	w.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	return w, nil
}

// URL is the webhook URL on the listener's address.
func (w *webhookServer) URL() string {
	scheme := "http"
	if w.https {
		scheme = "https"
	}
	return scheme + "://" + w.ln.Addr().String() + webhookPath
}

// Run serves until ctx ends, then shuts down (within 5s) and closes the
// changes writer.
func (w *webhookServer) Run(ctx context.Context) error {
	served := make(chan error, 1)
	go func() { served <- w.srv.Serve(w.ln) }()
	var err error
	select {
	case err = <-served:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = w.srv.Shutdown(sctx)
		cancel()
		<-served
	}
	if w.changes != nil {
		err = errors.Join(err, w.changes.Close())
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("webhook receiver: %w", err)
	}
	return nil
}
