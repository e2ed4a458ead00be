package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLIBadInput runs the built coordinator and shardsvc binaries with bad flag
// values and arguments. Each exits non-zero at once with the problem on the first
// line of stderr, and changes nothing: its working directory, where every path it is
// given points, stays empty (no data directory, journal or file created).
func TestCLIBadInput(t *testing.T) {
	coord, shard := binaries(t)
	for _, c := range []struct {
		bin  string
		args []string // "$D" is replaced by a path under the working directory
		want string   // on stderr's first line
	}{
		{coord, nil, "coordinator: missing command: want one of"},
		{coord, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{coord, []string{"serve", "--id", "c0", "--data", "$D", "--max-proposal-bytes", "10"}, "--max-proposal-bytes (10)"},
		{coord, []string{"serve", "--id", "c0", "--data", "$D", "--max-proposal-bytes", "many"}, `invalid argument "many" for "--max-proposal-bytes" flag: want an integer`},
		{coord, []string{"serve", "--id", "c0", "--data", "$D", "--max-players", "1"}, "--max-players (1)"},
		{coord, []string{"serve", "--id", "c0", "--data", "$D", "--proposer-rate", "-1"}, "--proposer-rate (-1)"},
		{coord, []string{"serve", "--id", "c0", "--data", "$D", "--proposer-burst", "3"}, "--proposer-burst (3)"},
		{coord, []string{"serve", "--id", "c0"}, "--data is required"},
		{coord, []string{"serve", "--data", "$D"}, "--id is required"},
		{coord, []string{"serve", "--id", "c0", "--data", "$D", "--raft-addr", "nonsense"}, `--raft-addr "nonsense"`},
		{coord, []string{"serve", "--id", "c0", "--data", "$D", "--raft-addr", "0.0.0.0:7000"}, "not dialable"},
		{coord, []string{"serve", "--id", "c0", "--data", "$D", "--bootstrap"}, "--bootstrap needs --peers"},
		{coord, []string{"serve", "--id", "c0", "--data", "$D", "--bootstrap", "--peers", "c0"}, `"c0" is not id=host:port`},
		{coord, []string{"serve", "--id", "c0", "--data", "$D", "--prefix", "a..b"}, "--prefix"},
		{coord, []string{"serve", "--id", "c0", "--data", "$D", "--stream-replicas", "9"}, "--stream-replicas (9)"},
		{coord, []string{"serve", "--id", "c0", "--data", "$D", "--retention", "-1s"}, "--retention (-1s)"},
		{coord, []string{"serve", "--id", "c0", "--data", "$D", "--unsafe", "deliver-before-log"}, "refused without --enable-fault-injection"},
		{coord, []string{"serve", "--id", "c0", "--data", "$D", "--config", "$D/none.conf"}, "config file"},
		{coord, []string{"serve", "--id", "c0", "--data", "$D", "--bogus"}, "unknown flag: --bogus"},
		{coord, []string{"serve", "--id", "c0", "--data", "$D", "--nats-url", "nats://u:p@::bad"}, "--nats-url: URL 1 of 1 does not parse"},
		{coord, []string{"dev", "--transport", "bogus", "--data", "$D"}, `--transport "bogus"`},
		{coord, []string{"dev", "--duration", "-1s", "--data", "$D"}, "non-negative durations"},
		{coord, []string{"prestop", "--bogus"}, "unknown flag: --bogus"},
		{coord, []string{"snapshot", "bogus"}, `unknown command "bogus": want one of inspect, restore, save`},
		{coord, []string{"snapshot", "inspect", "$D/none.snap"}, "no such file"},
		{coord, []string{"snapshot", "save", "--bogus"}, "unknown flag: --bogus"},
		{coord, []string{"nats", "--bogus"}, "unknown flag: --bogus"},
		{coord, []string{"bench", "--bogus"}, "unknown flag: --bogus"},
		{coord, []string{"policy", "bogus"}, `unknown command "bogus"`},
		{coord, []string{"policy", "eval", "-i", "$D/none.json"}, "no such file"},
		{coord, []string{"chaos", "bogus"}, `unknown command "bogus"`},
		{coord, []string{"version", "extra"}, `coordinator version: unexpected argument "extra"`},
		{shard, nil, `--id ""`},
		{shard, []string{"--id", "a.b"}, `--id "a.b"`},
		{shard, []string{"--id", "s1", "--journal", "$D/j.db", "--players", "-1"}, "--players (-1)"},
		{shard, []string{"--id", "s1", "--journal", "$D/j.db", "--propose-rate", "-1"}, "--propose-rate (-1)"},
		{shard, []string{"--id", "s1", "--journal", "$D/j.db", "--hot", "2"}, "--hot and --violations"},
		{shard, []string{"--id", "s1", "--journal", "$D/j.db", "--match-ttl", "0"}, "--match-ttl (0s)"},
		{shard, []string{"--id", "s1", "--journal", "$D/j.db", "--inflight", "0"}, "--inflight (0)"},
		{shard, []string{"--id", "s1", "--journal", "$D/j.db", "--bogus"}, "unknown flag: --bogus"},
		// The journal in the working directory itself: a refused URL must not create it.
		{shard, []string{"--id", "s1", "--journal", "j.db", "--nats-url", "::bad"}, "--nats-url: URL 1 of 1 does not parse"},
	} {
		name := filepath.Base(c.bin) + " " + strings.Join(c.args, " ")
		t.Run(name, func(t *testing.T) {
			wd := t.TempDir()
			args := make([]string, len(c.args))
			for i, a := range c.args {
				args[i] = strings.ReplaceAll(a, "$D", filepath.Join(wd, "data"))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, c.bin, args...)
			cmd.Dir = wd
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + wd} // no SHARDMATCH_* from the test's environment
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
				t.Fatalf("exit: %v (want a non-zero exit)\nstderr: %s", err, stderr.String())
			}
			first, _, _ := strings.Cut(stderr.String(), "\n")
			if !strings.Contains(first, c.want) {
				t.Fatalf("first line of stderr %q does not say %q", first, c.want)
			}
			if entries, err := os.ReadDir(wd); err != nil || len(entries) != 0 {
				t.Fatalf("the working directory holds %v (%v) after a refused command", entries, err)
			}
		})
	}
}
