// Command imgvec keeps a vector index of an image collection in sync. See
// README.md for the commands; `imgvec help` lists them.
//
// Exit codes: 0 all good, 1 fatal error, 2 usage error, 3 finished but some
// items failed (they are in the failure ledger).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"
	"github.com/imgvec/imgvec/schema"

	"github.com/spf13/cobra"

	"github.com/imgvec/imgvec/connector"
)

const (
	exitOK           = 0
	exitFatal        = 1
	exitUsage        = 2
	exitItemFailures = 3
)

// errItemFailures marks a run that finished with per-item failures.
var errItemFailures = errors.New("some items failed")

type globalFlags struct {
	logFormat string
	logLevel  string
	quiet     bool
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	var g globalFlags
	root := &cobra.Command{
		Use:           "imgvec",
		Short:         "Keep a vector index of an image collection in sync (VGG19 fc7 by default)",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(stderr, g.logFormat, g.logLevel)
			if err != nil {
				return err
			}
			slog.SetDefault(logger)
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return wiring.Usage(err) })
	pf := root.PersistentFlags()
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "no progress bar")

	root.AddCommand(newModelCmd(&g), newEmbedCmd(&g), newVersionCmd(), newServeCmd(), newDoctorCmd())
	addConnectorCommands(root, &g)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	return exitCode(err, stderr)
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ue wiring.UsageError
	switch {
	case errors.As(err, &ue) || isCobraUsage(err):
		fmt.Fprintf(stderr, "imgvec: %s\nRun 'imgvec help' for usage.\n", printableLines(err))
		return exitUsage
	case errors.Is(err, connector.ErrStopped) || errors.Is(err, connector.ErrGraceExpired) || errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "imgvec: %s; committed batches are kept, the next run continues where this one stopped\n", printableLines(err))
		return exitFatal
	case errors.Is(err, errItemFailures):
		fmt.Fprintf(stderr, "imgvec: %s\n", printableLines(err))
		return exitItemFailures
	default:
		fmt.Fprintf(stderr, "imgvec: %s\n", printableLines(err))
		return exitFatal
	}
}

// printableLines is err's message for a terminal: control characters a
// key or path may carry are escaped (schema.Printable), line by line, so
// that joined errors keep one line each.
func printableLines(err error) string {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = schema.Printable(l)
	}
	return strings.Join(lines, "\n")
}

// isCobraUsage recognises cobra's own argument errors, which it does not type.
func isCobraUsage(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "accepts ") ||
		strings.HasPrefix(msg, "requires at least") || strings.HasPrefix(msg, "unknown flag") ||
		strings.HasPrefix(msg, "required flag")
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, wiring.Usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, wiring.Usagef("--log-format %q: want text or json", format)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the imgvec and ONNX Runtime versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "imgvec %s (onnxruntime %s)\n", version, ortVersion())
			return nil
		},
	}
}
