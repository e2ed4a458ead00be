package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
)

// TestEveryCommandHelp: --help, -h and `help CMD` of every shardsvc command print help
// on stdout, exit 0 and run nothing (every command body fails the test if called).
func TestEveryCommandHelp(t *testing.T) {
	var paths [][]string
	tree := newRootCmd()
	tree.InitDefaultCompletionCmd() // cobra adds it when it executes
	cli.Walk(tree, func(c *cobra.Command) {
		if !c.Hidden {
			paths = append(paths, strings.Fields(c.CommandPath())[1:])
		}
	})
	if len(paths) < 3 {
		t.Fatalf("commands %v: want shardsvc, version and completion at least", paths)
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
			if code := cli.Execute(context.Background(), root, args, &stdout, &stderr); code != 0 || stderr.Len() != 0 ||
				!strings.Contains(stdout.String(), "Usage:\n  shardsvc") {
				t.Errorf("%v: exit %d, stderr %q, stdout:\n%s", args, code, stderr.String(), stdout.String())
			}
		}
	}
}
