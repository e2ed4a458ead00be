package main

import (
	"context"
	"strings"
	"testing"

	"github.com/shardmatch/shardmatch/cmd/internal/cli/clitest"
)

// TestEveryCommandHelp walks the whole command tree (clitest.CheckEveryHelp): help on
// stdout in one layout with examples, exit 0, nothing run; and `chaos clean --help`
// must not sweep the network namespaces (it once ran the cleanup).
func TestEveryCommandHelp(t *testing.T) {
	defer func(old func(context.Context, string) ([]string, error)) { chaosSweep = old }(chaosSweep)
	chaosSweep = func(context.Context, string) ([]string, error) {
		t.Error("a --help ran chaos clean's sweep")
		return nil, nil
	}
	if n := clitest.CheckEveryHelp(t, "coordinator", newRootCmd); n < 30 {
		t.Errorf("only %d commands walked", n)
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
