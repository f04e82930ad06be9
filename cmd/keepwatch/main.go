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
	"strings"
	"syscall"

	"keepwatch"
)

// command is one subcommand.
type command struct {
	summary string // one line for the command list
	run     func(ctx context.Context, e *env, args []string) error
}

// env is what commands read and write, so tests can run them in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	stdinIsPipe    bool
}

// commandOrder is the order in which `keepwatch help` lists commands: the
// way a newcomer meets them.
var commandOrder = []string{"demo", "serve", "admin", "agent", "simulate", "bench", "version"}

var commands map[string]command

func init() {
	commands = map[string]command{
		"demo":     {"a living demo on this machine: server, demo integrator and a simulated fleet", runDemo},
		"serve":    {"run the keepwatch service", runServe},
		"admin":    {"set up integrators, users, API tokens and licences in keepwatch's database", runAdmin},
		"agent":    {"the agent on a recording server: enroll, run, send, consent, status", runAgent},
		"simulate": {"enroll and run a simulated fleet of recording servers against a keepwatch", runSimulate},
		"bench":    {"measure ingest throughput, detection delay and memory per server", runBench},
		"version":  {"print the version", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first Ctrl-C stops gracefully; a second one, while that
		// takes its time, ends the process.
		<-ctx.Done()
		stop()
	}()
	fi, _ := os.Stdin.Stat()
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, stdinIsPipe: fi != nil && fi.Mode()&os.ModeCharDevice == 0}
	os.Exit(run(ctx, e, os.Args[1:]))
}

// run executes args and returns the exit code: 0, 1 when the command
// failed, 2 when it was called wrongly. Help goes to stdout; errors and
// messages go to stderr.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		usage(e.stderr)
		return 2
	}
	if isHelp(args[0]) {
		if args[0] == "help" && len(args) > 1 {
			// keepwatch help admin token create = keepwatch admin token create --help
			return run(ctx, e, append(append([]string{}, args[1:]...), "--help"))
		}
		usage(e.stdout)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "keepwatch: unknown command %q\n\n", args[0])
		usage(e.stderr)
		return 2
	}
	return exitCode(e, args[0], cmd.run(ctx, e, args[1:]))
}

// exitCode reports err on stderr and returns the exit code for it.
func exitCode(e *env, name string, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		if ue.cmd != "" {
			name = ue.cmd
		}
		fmt.Fprintf(e.stderr, "keepwatch %s: %s\n", name, ue.msg)
		if ue.more != "" {
			fmt.Fprint(e.stderr, ue.more)
		}
		fmt.Fprintf(e.stderr, "Run 'keepwatch %s --help' for usage.\n", name)
		return 2
	}
	fmt.Fprintf(e.stderr, "keepwatch %s: %s\n", name, errText(err))
	var h hintedError
	if errors.As(err, &h) {
		fmt.Fprintf(e.stderr, "hint: %s\n", h.hint)
	}
	return 1
}

// isHelp reports whether a word asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

func errText(err error) string {
	var ke *keepwatch.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	return err.Error()
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: keepwatch <command> [flags]

keepwatch watches video-surveillance recording servers: agents push sealed
status reports and heartbeats, keepwatch shows each integrator the errors
and silent servers of their customers' installations.

Commands:
`)
	for _, n := range commandOrder {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, `
Run 'keepwatch <command> --help' (or 'keepwatch help <command>') for its flags.
`)
}

func runVersion(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "version", "version", "Prints keepwatch's version.")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, keepwatch.Version)
	return nil
}

// usageError is a mistake in how a command was called (exit code 2).
type usageError struct {
	cmd  string // the command, as in "admin token create"; empty: the top-level one
	msg  string
	more string // printed after the message, e.g. the list of subcommands
}

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{msg: fmt.Sprintf(format, args...)} }

// inCommand names the command a usage error belongs to, when it does not
// say yet, so that its message points at the right --help.
func inCommand(name string, err error) error {
	var ue usageError
	if errors.As(err, &ue) && ue.cmd == "" {
		ue.cmd = name
		return ue
	}
	return err
}

// logger writes structured logs to w.
func logger(w io.Writer, debug bool) *slog.Logger {
	lvl := slog.LevelInfo
	if debug {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
