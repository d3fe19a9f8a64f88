package main

import (
	"context"
	"errors"

	"github.com/urfave/cli/v3"
)

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run everything on loopback: a Kafka broker, the API simulator, sample events and the processor",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			return errors.New("dev: not wired yet")
		},
	}
}
