package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
)

// TestEveryCommandHelp walks the whole command tree: `--help`, `-h` and `help CMD` of
// every command print its help on stdout (one layout: Usage, and Examples for every
// command that runs something), exit 0, write nothing on stderr, and run nothing: every
// command body in the tree fails the test if called, and `chaos clean --help` must not
// sweep the network namespaces (it once ran the cleanup).
func TestEveryCommandHelp(t *testing.T) {
	defer func(old func(context.Context, string) ([]string, error)) { chaosSweep = old }(chaosSweep)
	chaosSweep = func(context.Context, string) ([]string, error) {
		t.Error("a --help ran chaos clean's sweep")
		return nil, nil
	}
	var paths [][]string
	tree := newRootCmd()
	tree.InitDefaultCompletionCmd() // cobra adds it when it executes
	cli.Walk(tree, func(c *cobra.Command) {
		if !c.Hidden {
			paths = append(paths, strings.Fields(c.CommandPath())[1:])
		}
	})
	if len(paths) < 30 {
		t.Fatalf("only %d commands in the tree: %v", len(paths), paths)
	}
	for _, p := range paths {
		forms := [][]string{append(append([]string{}, p...), "--help"), append(append([]string{}, p...), "-h")}
		if len(p) > 0 {
			forms = append(forms, append([]string{"help"}, p...))
		}
		for _, args := range forms {
			root := newRootCmd()
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
			if code != 0 || stderr.Len() != 0 || !strings.Contains(out, "Usage:\n  coordinator") {
				t.Errorf("%v: exit %d, stderr %q, stdout:\n%s", args, code, stderr.String(), out)
				continue
			}
			c, _, _ := newRootCmd().Find(p)
			if !c.HasSubCommands() && !strings.Contains(out, "Examples:\n  coordinator") {
				t.Errorf("%v: no examples:\n%s", args, out)
			}
		}
	}
}

// TestFlagsAfterArguments: flags may follow arguments (`chaos run X --seed 11` runs
// scenario X with seed 11, and does not look for a scenario named --seed).
func TestFlagsAfterArguments(t *testing.T) {
	code, stdout, stderr := runCmd(t, "chaos", "run", "no-such-scenario", "--seed", "11")
	if code != 2 || !strings.Contains(stderr, "no-such-scenario") || strings.Contains(stderr, `"--seed"`) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "snapshot", "inspect", "no-such.snap", "-o", "json")
	if code != 1 || !strings.Contains(stderr, "no-such.snap") {
		t.Errorf("snapshot inspect FILE -o json: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestBadValueIsOneLineWithAHint: a bad value says what is wanted, in one line, then
// the --help hint, exit 2.
func TestBadValueIsOneLineWithAHint(t *testing.T) {
	for _, args := range [][]string{{"dev", "--duration", "5"}, {"status", "--timeout", "soon"}, {"txn", "list", "--since", "5"}} {
		code, stdout, stderr := runCmd(t, args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		want := "Run 'coordinator " + strings.Join(args[:len(args)-2], " ") + " --help' for usage."
		if code != 2 || stdout != "" || len(lines) != 2 || lines[1] != want || !strings.Contains(lines[0], "want") {
			t.Errorf("%v: exit %d, stdout %q, stderr:\n%s", args, code, stdout, stderr)
		}
	}
}
