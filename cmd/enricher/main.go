// Command enricher consumes user events from Kafka, enriches each with the
// official accounts its user subscribes to (Tencent Cloud Chat REST API) and
// publishes one enriched record per event.
//
// main only parses configuration and wires packages together; each
// subcommand lives in a file of its own.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v3"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitCodeUsage is the exit code for bad configuration.
const exitCodeUsage = 2

// usageError marks an error caused by bad configuration; main exits with
// exitCodeUsage and prints the message as one line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// badConfig returns a usageError naming the setting at fault.
func badConfig(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func newApp() *cli.Command {
	return &cli.Command{
		Name:  "enricher",
		Usage: "enrich Kafka user events with Tencent Cloud Chat official-account subscriptions",
		Commands: []*cli.Command{
			versionCommand(),
			simulatorCommand(),
		},
		// Flag and argument parse errors are configuration errors.
		OnUsageError: func(_ context.Context, _ *cli.Command, err error, _ bool) error {
			return usageError{err}
		},
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version",
		Action: func(_ context.Context, cmd *cli.Command) error {
			_, err := fmt.Fprintln(cmd.Root().Writer, "enricher", version)
			return err
		},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newApp().Run(ctx, os.Args)
	stop()
	os.Exit(exitCode(err))
}

// exitCode prints err as one line on stderr and maps it to the exit code.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "enricher:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitCodeUsage
	}
	return 1
}
