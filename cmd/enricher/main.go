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
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v3"
)

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

// newApp builds the command tree. Every command maps flag, argument and
// environment parse errors to usageError, so they exit with exitCodeUsage.
func newApp() *cli.Command {
	app := &cli.Command{
		Name:  "enricher",
		Usage: "enrich Kafka user events with Tencent Cloud Chat official-account subscriptions",
		Description: "Configuration: every option is a flag with an environment fallback;\n" +
			"a flag wins over its environment variable, which wins over the default.\n" +
			"Secrets are read only from " + envSecretKey + " / " + envSASLPassword + "\n" +
			"or from the files named by --im-secret-key-file / --kafka-sasl-password-file.",
		Commands: []*cli.Command{
			runCommand(),
			devCommand(),
			brokerCommand(),
			generateCommand(),
			versionCommand(),
			simulatorCommand(),
			replayCommand(),
			benchCommand(),
			dlqCommand(),
			waitCommand(),
		},
		Action: func(_ context.Context, cmd *cli.Command) error {
			if cmd.Args().Present() {
				return badConfig("unknown command %q (see enricher --help)", cmd.Args().First())
			}
			return cli.ShowRootCommandHelp(cmd)
		},
		// An error from cli's ExitCoder handling must not exit the process
		// behind main's back; exitCode decides.
		ExitErrHandler: func(context.Context, *cli.Command, error) {},
	}
	forEachCommand(app, func(c *cli.Command) {
		c.OnUsageError = func(_ context.Context, _ *cli.Command, err error, _ bool) error {
			return usageError{err}
		}
	})
	return app
}

// forEachCommand calls fn for cmd and all its descendants.
func forEachCommand(cmd *cli.Command, fn func(*cli.Command)) {
	fn(cmd)
	for _, sub := range cmd.Commands {
		forEachCommand(sub, fn)
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal starts a clean shutdown; a second one kills the process.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line args and returns the process exit code: 0 on
// success, exitCodeUsage for bad configuration, 1 for any other failure.
// Errors are printed to stderr as one line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp()
	app.Writer, app.ErrWriter = stdout, stderr
	var started bool
	forEachCommand(app, func(c *cli.Command) {
		if c.Action == nil {
			return
		}
		action := c.Action
		c.Action = func(ctx context.Context, cmd *cli.Command) error {
			started = true
			return action(ctx, cmd)
		}
	})
	err := app.Run(ctx, args)
	if err != nil && !started {
		// cli returns environment-variable parse errors without calling
		// OnUsageError; anything failing before an action ran is configuration.
		var ue usageError
		if !errors.As(err, &ue) {
			err = usageError{err}
		}
	}
	return exitCode(stderr, err)
}

// exitCode prints err as one line on stderr and maps it to the exit code.
func exitCode(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	msg := strings.Join(strings.Fields(err.Error()), " ")
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "enricher: bad configuration:", msg)
		return exitCodeUsage
	}
	fmt.Fprintln(stderr, "enricher:", msg)
	return 1
}
