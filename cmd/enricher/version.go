package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// version is set at build time with -ldflags "-X main.version=...";
// otherwise it is the module version the binary was built from.
var version = "dev"

// buildInfo is what the binary knows of its build.
type buildInfo struct {
	Version   string // -X main.version, the module version, or "dev"
	Revision  string // VCS revision, "" when not stamped (go run, no VCS)
	Time      string // VCS commit time (RFC 3339)
	Modified  bool   // built from a working tree with uncommitted changes
	GoVersion string
}

// readBuildInfo reads the build from runtime/debug.ReadBuildInfo.
func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if b.Version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		b.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the version line: "enricher VERSION (revision R, TIME,
// modified) GOVERSION".
func (b buildInfo) String() string {
	var vcs []string
	if b.Revision != "" {
		vcs = append(vcs, "revision "+b.Revision)
	}
	if b.Time != "" {
		vcs = append(vcs, b.Time)
	}
	if b.Modified {
		vcs = append(vcs, "modified")
	}
	s := "enricher " + b.Version
	if len(vcs) > 0 {
		s += " (" + strings.Join(vcs, ", ") + ")"
	}
	return s + " " + b.GoVersion
}

// registerBuildInfo exports the build as the gauge enricher.build.info
// (always 1) with version, revision and Go version attributes, the way
// Prometheus exporters conventionally do.
func registerBuildInfo(mp metric.MeterProvider, b buildInfo) {
	m := mp.Meter("github.com/tencentchat-enricher/enricher/cmd/enricher")
	attrs := metric.WithAttributes(attribute.String("version", b.Version), attribute.String("revision", b.Revision),
		attribute.String("goversion", b.GoVersion))
	_, _ = m.Int64ObservableGauge("enricher.build.info", metric.WithDescription("The build of this process (always 1)."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(1, attrs)
			return nil
		}))
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, VCS revision and time, and Go version",
		Action: func(_ context.Context, cmd *cli.Command) error {
			_, err := fmt.Fprintln(cmd.Root().Writer, readBuildInfo())
			return err
		},
	}
}
