// Package clitest checks a cobra command tree the way an operator meets it: every
// command's help, by every spelling, prints help on stdout, exits 0 and runs nothing.
package clitest

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
)

// CheckEveryHelp walks the tree newRoot builds (cobra's completion command included):
// `--help`, `-h` and `help CMD` of every visible command print help on stdout with
// "Usage:\n  <binary>", exit 0, write nothing on stderr and run no command body (each
// is replaced by one that fails the test). Leaf commands must show examples. It
// returns how many commands it walked.
func CheckEveryHelp(t *testing.T, binary string, newRoot func() *cobra.Command) int {
	t.Helper()
	var paths [][]string
	tree := newRoot()
	tree.InitDefaultCompletionCmd() // cobra adds it when it executes
	cli.Walk(tree, func(c *cobra.Command) {
		if !c.Hidden {
			paths = append(paths, strings.Fields(c.CommandPath())[1:])
		}
	})
	for _, p := range paths {
		forms := [][]string{append(append([]string{}, p...), "--help"), append(append([]string{}, p...), "-h")}
		if len(p) > 0 {
			forms = append(forms, append([]string{"help"}, p...))
		}
		for _, args := range forms {
			root := newRoot()
			cli.Walk(root, func(c *cobra.Command) {
				if c.RunE != nil {
					c.RunE = func(c *cobra.Command, _ []string) error {
						t.Errorf("%v ran %s", args, c.CommandPath())
						return nil
					}
				}
			})
			var stdout, stderr bytes.Buffer
			code := cli.Execute(context.Background(), root, args, &stdout, &stderr)
			out := stdout.String()
			if code != 0 || stderr.Len() != 0 || !strings.Contains(out, "Usage:\n  "+binary) {
				t.Errorf("%v: exit %d, stderr %q, stdout:\n%s", args, code, stderr.String(), out)
				continue
			}
			if c, _, err := newRoot().Find(p); err == nil && c.CommandPath() == strings.Join(append([]string{binary}, p...), " ") &&
				!c.HasSubCommands() && !strings.Contains(out, "Examples:\n  "+binary) {
				t.Errorf("%v: no examples:\n%s", args, out)
			}
		}
	}
	return len(paths)
}
