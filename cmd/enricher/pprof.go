package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/urfave/cli/v3"
)

// pprofFlag is run's --pprof: net/http/pprof for operators, off by default.
func pprofFlag() cli.Flag {
	return &cli.StringFlag{Name: "pprof", Category: catOps, Sources: env("ENRICHER_PPROF"),
		Usage: "`ADDR` serving net/http/pprof under /debug/pprof/ (e.g. 127.0.0.1:6060); empty (default) disables; it exposes profiles and stacks: bind it to a private address"}
}

func parsePprof(cmd *cli.Command) (string, error) {
	addr := strings.TrimSpace(cmd.String("pprof"))
	if addr == "" {
		return "", nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", flagError(cmd, "pprof", "must be [HOST]:PORT, got %q", addr)
	}
	return addr, nil
}

// pprofHandler serves the net/http/pprof endpoints.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// servePprof listens on addr and serves pprofHandler until stop is called
// or ctx ends.
func servePprof(ctx context.Context, addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof %s: %w", addr, err)
	}
	srv := &http.Server{Handler: pprofHandler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { // owned: ends when the server is closed below
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof server stopped", slog.Any("error", err))
		}
	}()
	stopCtx := context.AfterFunc(ctx, func() { _ = srv.Close() })
	log.Info("pprof listening", slog.String("addr", ln.Addr().String()))
	return func() {
		stopCtx()
		_ = srv.Close()
		<-done
	}, nil
}
