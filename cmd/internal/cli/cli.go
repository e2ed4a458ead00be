// Package cli is what the shardmatch binaries (coordinator, shardsvc) share on top of
// github.com/spf13/cobra: one way to run a command tree and turn its outcome into an
// exit code, errors printed as one line plus a hint, -o table|json|yaml, and the bridge
// that puts flags defined on a standard library flag.FlagSet (the config.Loader
// settings of serve and shardsvc) on a cobra command.
//
// Exit codes: 0 success (and --help), 1 the command failed, 2 a usage error (an unknown
// command or flag, a bad flag value, a wrong number of arguments, a UsageError).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ExitError ends a command with Code, its message (if any) already printed by the
// command itself. Commands that still report through an exit code return Exit(code).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Exit is nil for code 0, else an *ExitError.
func Exit(code int) error {
	if code == 0 {
		return nil
	}
	return &ExitError{Code: code}
}

// UsageError is a bad invocation found by a command itself: exit 2, printed with the
// hint to run --help.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError.
func Usagef(format string, a ...any) error { return &UsageError{Err: fmt.Errorf(format, a...)} }

// Execute runs root on args, with stdout and stderr as the commands' writers, and
// returns the exit code. Help (-h, --help, `help CMD`) goes to stdout and runs nothing
// else; an error is one line on stderr, plus `Run '<command> --help' for usage.` for
// usage errors.
func Execute(ctx context.Context, root *cobra.Command, args []string, stdout, stderr io.Writer) int {
	ran := false
	Walk(root, func(c *cobra.Command) {
		c.SilenceErrors, c.SilenceUsage = true, true
		if c.RunE != nil {
			run := c.RunE
			c.RunE = func(c *cobra.Command, args []string) error {
				ran = true
				return run(c, args)
			}
		}
	})
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{Err: explainFlagError(err)} })
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(normaliseArgs(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		return exit.Code
	}
	if cmd == nil {
		cmd = root
	}
	var usage *UsageError
	if errors.As(err, &usage) || !ran {
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", cmd.CommandPath(), oneLine(err), cmd.CommandPath())
		return 2
	}
	fmt.Fprintf(stderr, "%s: %v\n", cmd.CommandPath(), oneLine(err))
	return 1
}

// Walk calls f on c and every command below it.
func Walk(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, sub := range c.Commands() {
		Walk(sub, f)
	}
}

// oneLine joins a multi-line error (errors.Join) into one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// explainFlagError adds what a duration flag wants to pflag's parse error.
func explainFlagError(err error) error {
	msg := err.Error()
	if strings.Contains(msg, "time: ") && !strings.Contains(msg, durationHint) {
		return fmt.Errorf("%w (%s)", err, durationHint)
	}
	return err
}

// durationHint is what every duration flag's error says it wants.
const durationHint = "want a Go duration like 5s or 2m"

var singleDashLong = regexp.MustCompile(`^-([a-zA-Z][a-zA-Z0-9-]+)(=.*)?$`)

// normaliseArgs rewrites a single-dash long flag (-id, -addr=x), as the standard
// library's flag package accepted, to its double-dash form when the command the args
// select has a long flag of that name; pflag would read -id as -i -d.
func normaliseArgs(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		cmd = root
	}
	has := func(name string) bool {
		return cmd.Flags().Lookup(name) != nil || cmd.InheritedFlags().Lookup(name) != nil ||
			(name == "help" || name == "version" && cmd == root)
	}
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if m := singleDashLong.FindStringSubmatch(a); m != nil && has(m[1]) {
			a = "-" + a
		}
		out = append(out, a)
	}
	return out
}

// NoArgs refuses positional arguments as a usage error.
func NoArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return Usagef("unexpected argument %q", args[0])
	}
	return nil
}

// ExactArgs wants exactly n positional arguments, named in the error.
func ExactArgs(n int, names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		if len(args) < n {
			missing := "argument"
			if len(names) > len(args) {
				missing = strings.Join(names[len(args):], " ")
			}
			return Usagef("missing %s", missing)
		}
		return Usagef("unexpected argument %q", args[n])
	}
}

// Group makes c a command that only holds subcommands: run without one, or with an
// unknown one, it is a usage error naming them.
func Group(c *cobra.Command) *cobra.Command {
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(c *cobra.Command, args []string) error {
		var names []string
		for _, s := range c.Commands() {
			if s.IsAvailableCommand() {
				names = append(names, s.Name())
			}
		}
		if len(args) == 0 {
			return Usagef("missing command: want one of %s", strings.Join(names, ", "))
		}
		return Usagef("unknown command %q: want one of %s", args[0], strings.Join(names, ", "))
	}
	return c
}

// Deprecate hides a flag kept for old invocations, pointing at its replacement.
func Deprecate(fs *pflag.FlagSet, name, use string) {
	f := fs.Lookup(name)
	if f == nil {
		return
	}
	f.Hidden = true
	f.Usage += " (deprecated: use " + use + ")"
}

// MinimumArgs wants at least n positional arguments, named in the error.
func MinimumArgs(n int, name string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < n {
			return Usagef("missing %s", name)
		}
		return nil
	}
}
