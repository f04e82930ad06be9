package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// newFlags returns the flag set of a command. synopsis is its usage line
// after "keepwatch ", about says what it does; --help prints both and the
// flags on stdout. Mistakes are returned by parse, never printed by the
// flag package.
func newFlags(e *env, name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		helpHeader(e.stdout, synopsis, about)
		printFlags(e.stdout, "Flags", fs, nil)
	}
	return fs
}

// helpHeader prints the usage line and the description of a command.
func helpHeader(w io.Writer, synopsis, about string) {
	fmt.Fprintf(w, "Usage: keepwatch %s\n", synopsis)
	if about != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(about, "\n"))
	}
}

// printFlags lists the flags of fs that keep accepts (all if nil) under a
// title, with their defaults, spelled --name as the documentation does.
func printFlags(w io.Writer, title string, fs *flag.FlagSet, keep func(name string) bool) {
	type row struct{ left, right string }
	var rows []row
	width := 0
	fs.VisitAll(func(f *flag.Flag) {
		if keep != nil && !keep(f.Name) {
			return
		}
		value, text := flag.UnquoteUsage(f)
		left := "--" + f.Name
		if value != "" {
			left += " " + value
		}
		if d := f.DefValue; d != "" && d != "0" && d != "false" && d != "0s" {
			if strings.ContainsAny(d, " \t") {
				d = fmt.Sprintf("%q", d)
			}
			text += " (default " + d + ")"
		}
		rows = append(rows, row{left, text})
		if len(left) <= 24 {
			width = max(width, len(left))
		}
	})
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s:\n", title)
	for _, r := range rows {
		indent := 2 + width + 2
		if len(r.left) > width {
			fmt.Fprintf(w, "  %s\n%s", r.left, strings.Repeat(" ", indent))
		} else {
			fmt.Fprintf(w, "  %-*s  ", width, r.left)
		}
		fmt.Fprintln(w, wrap(r.right, indent, 80))
	}
}

// wrap breaks text into lines of at most width columns, continuing lines
// indented by indent (the first line is already indented).
func wrap(text string, indent, width int) string {
	var b strings.Builder
	col := indent
	for i, word := range strings.Fields(text) {
		if i > 0 {
			if col+1+len(word) > width {
				b.WriteString("\n" + strings.Repeat(" ", indent))
				col = indent
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(word)
		col += len(word)
	}
	return b.String()
}

// parseLeading parses the flags before the first argument. --help prints
// the flag set's help and returns flag.ErrHelp; a mistake is a usage error.
func parseLeading(fs *flag.FlagSet, args []string) error {
	help := fs.Usage
	fs.Usage = func() {} // the flag package calls it on mistakes too
	defer func() { fs.Usage = help }()
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		help()
		return err
	}
	return usageError{cmd: fs.Name(), msg: flagMistake(err)}
}

// parse parses flags and positional arguments in any order and returns the
// positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseLeading(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// flagMistake rephrases the flag package's errors with flags spelled as
// the documentation spells them.
func flagMistake(err error) string {
	msg := err.Error()
	for _, r := range []struct{ from, to string }{
		{"flag provided but not defined: -", "unknown flag --"},
		{"flag needs an argument: -", "a value is needed after --"},
		{" for flag -", " for --"},
	} {
		if strings.Contains(msg, r.from) {
			return strings.Replace(msg, r.from, r.to, 1)
		}
	}
	return msg
}

func required(fs *flag.FlagSet, names ...string) error {
	var missing []string
	for _, n := range names {
		if fs.Lookup(n).Value.String() == "" {
			missing = append(missing, "--"+n)
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return usageError{cmd: fs.Name(), msg: missing[0] + " is required"}
	}
	return usageError{cmd: fs.Name(), msg: strings.Join(missing, ", ") + " are required"}
}

// flagsOnly parses a command that takes flags and no arguments, and
// checks that the required flags are set.
func flagsOnly(fs *flag.FlagSet, args []string, names ...string) error {
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	return required(fs, names...)
}

func noArgs(pos []string) error {
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	return nil
}
