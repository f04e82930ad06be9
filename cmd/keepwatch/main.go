// Command keepwatch is the keepwatch monitoring service, its admin tool and
// its agent, in one binary. See `keepwatch help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"keepwatch"
)

// command is one subcommand.
type command struct {
	usage string
	run   func(ctx context.Context, env *env, args []string) error
}

// env is what commands read and write, so tests can run them in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	stdinIsPipe    bool
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"demo":  {"demo [--addr 127.0.0.1:8080] [--data DIR]", runDemo},
		"serve": {"serve [--addr :8443] [--data DIR | --db postgres://…] [--heartbeat-interval 60s] [--tls-cert F --tls-key F | --self-signed | --insecure-http]", runServe},
		"admin": {"admin [--data DIR | --db URL] <command> …   (keepwatch admin help)", runAdmin},
		"agent": {"agent enroll|run|send|status|consent …   (keepwatch agent help)", runAgent},
		"bench": {"bench [--servers N] [--duration D] [--store sqlite|postgres] [--json]", runBench},
		"version": {"version", func(_ context.Context, e *env, _ []string) error {
			fmt.Fprintln(e.stdout, keepwatch.Version)
			return nil
		}},
		"simulate": {"simulate --server URL --installations N --servers M [--interval D] [--faults RATE] …", runSimulate},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fi, _ := os.Stdin.Stat()
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, stdinIsPipe: fi != nil && fi.Mode()&os.ModeCharDevice == 0}
	os.Exit(run(ctx, e, os.Args[1:]))
}

// run executes args and returns the exit code.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(e.stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "keepwatch: unknown command %q\n", args[0])
		usage(e.stderr)
		return 2
	}
	if err := cmd.run(ctx, e, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(e.stderr, "keepwatch %s: %s\n", args[0], ue.msg)
			return 2
		}
		fmt.Fprintf(e.stderr, "keepwatch %s: %s\n", args[0], errText(err))
		return 1
	}
	return 0
}

func errText(err error) string {
	var ke *keepwatch.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	return err.Error()
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: keepwatch <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  keepwatch %s\n", commands[n].usage)
	}
	fmt.Fprintln(w, "\nEvery command takes --help.")
}

// usageError is a mistake in how a command was called (exit code 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// newFlags returns a flag set that reports to stderr and does not exit.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: keepwatch %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags and positional arguments in any order and returns the
// positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func logger(w io.Writer, debug bool) *slog.Logger {
	lvl := slog.LevelInfo
	if debug {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}
