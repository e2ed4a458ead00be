package main

import (
	"testing"

	"github.com/shardmatch/shardmatch/cmd/internal/cli/clitest"
)

// TestEveryCommandHelp: --help, -h and `help CMD` of every shardsvc command print help
// on stdout, exit 0 and run nothing.
func TestEveryCommandHelp(t *testing.T) {
	if n := clitest.CheckEveryHelp(t, "shardsvc", newRootCmd); n < 3 {
		t.Errorf("%d commands walked: want shardsvc, version and completion at least", n)
	}
}
