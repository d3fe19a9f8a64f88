package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/tencentchat-enricher/enricher/internal/opshttp"
	"github.com/tencentchat-enricher/enricher/processor"
)

// flaggedError is an error whose message names the operator's flags in
// place of the packages' Config fields; it unwraps to the original.
type flaggedError struct {
	msg string
	err error
}

func (e *flaggedError) Error() string { return e.msg }
func (e *flaggedError) Unwrap() error { return e.err }

// fieldWord matches a capitalised Go identifier, a Config field candidate.
var fieldWord = regexp.MustCompile(`\b[A-Z][A-Za-z]+\b`)

// namingFlags renders the error that stopped a pipeline with the flags of
// cmd: a *processor.TopicError names --output-topic or --dlq-topic (and
// --max-record-bytes in its hint), a *processor.FatalError the flags of
// the client settings to fix. Other errors are returned as they are.
func namingFlags(cmd *cli.Command, err error) error {
	var te *processor.TopicError
	var fe *processor.FatalError
	switch {
	case errors.As(err, &te):
		msg := fmt.Sprintf("processor stopped: writing to topic %q failed permanently; fix %s: %s (%v)",
			te.Topic, fieldFlag(cmd, "processor", te.Field), fieldFlags(cmd, "processor", te.Hint()), te.Err)
		return &flaggedError{msg: msg, err: err}
	case errors.As(err, &fe):
		return &flaggedError{msg: fieldFlags(cmd, "client", fe.Error()), err: err}
	}
	return err
}

// fieldFlag names field of package pkg as its flag, or as itself when no
// flag of cmd sets it.
func fieldFlag(cmd *cli.Command, pkg, field string) string {
	if field == "SecretKey" && pkg == "client" {
		return envSecretKey + " or " + flagRef(cmd, "im-secret-key-file")
	}
	if flag, ok := configFlags[pkg+"."+field]; ok && hasFlag(cmd, flag) {
		return flagRef(cmd, flag)
	}
	return field
}

// fieldFlags replaces, in text, the Config fields of pkg that a flag of
// cmd sets with that flag.
func fieldFlags(cmd *cli.Command, pkg, text string) string {
	return fieldWord.ReplaceAllStringFunc(text, func(w string) string {
		if _, ok := configFlags[pkg+"."+w]; ok || (pkg == "client" && w == "SecretKey") {
			return fieldFlag(cmd, pkg, w)
		}
		return w
	})
}

// brokerWarnEvery is the period of the warning about unreachable brokers
// while the processor has not joined its group (a variable for tests).
var brokerWarnEvery = 5 * time.Second

// watchBrokers logs, every brokerWarnEvery until the processor joins its
// group or ctx ends, one line naming --brokers when no broker answers.
func watchBrokers(ctx context.Context, cmd *cli.Command, joined func() error, kafkaCheck opshttp.Check, brokers []string, log *slog.Logger) {
	t := time.NewTicker(brokerWarnEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if joined() == nil {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := kafkaCheck.Check(cctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Warn("cannot reach any Kafka broker: check "+flagRef(cmd, "brokers"),
				slog.String("brokers", strings.Join(brokers, ",")), slog.Any("error", err))
		}
	}
}
