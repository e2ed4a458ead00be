package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/shardmatch/shardmatch/coordinator/natsapi"
)

// The intake limits parse from flags and SHARDMATCH_* variables, default to the
// documented values, and refuse what makes no sense with a message naming the flag.
func TestServeLimitFlags(t *testing.T) {
	base := func(t *testing.T) []string { return []string{"--id", "c0", "--data", t.TempDir()} }
	t.Run("defaults", func(t *testing.T) {
		var stderr bytes.Buffer
		o, code, done := parseServeOptions(base(t), &stderr, env(nil))
		if done {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		if natsapi.DefaultMaxProposalBytes != 65536 || o.maxProposalBytes != natsapi.DefaultMaxProposalBytes || o.maxPlayers != 200 || o.proposerRate != 0 || o.proposerBurst != 0 {
			t.Fatalf("defaults: %+v", o)
		}
	})
	t.Run("flags and environment", func(t *testing.T) {
		var stderr bytes.Buffer
		o, code, done := parseServeOptions(append(base(t), "--max-players", "10", "--proposer-rate", "2.5"), &stderr,
			env(map[string]string{"SHARDMATCH_MAX_PROPOSAL_BYTES": "4096", "SHARDMATCH_PROPOSER_BURST": "7"}))
		if done {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		if o.maxProposalBytes != 4096 || o.maxPlayers != 10 || o.proposerRate != 2.5 || o.proposerBurst != 7 {
			t.Fatalf("parsed: %+v", o)
		}
	})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-proposal-bytes", "10"}, "--max-proposal-bytes (10)"},
		{[]string{"--max-proposal-bytes", "2000000"}, "--max-proposal-bytes (2000000)"},
		{[]string{"--max-proposal-bytes", "lots"}, "max-proposal-bytes"},
		{[]string{"--max-players", "1"}, "--max-players (1)"},
		{[]string{"--max-players", "100000"}, "--max-players (100000)"},
		{[]string{"--proposer-rate", "-1"}, "--proposer-rate (-1)"},
		{[]string{"--proposer-rate", "NaN"}, "--proposer-rate (NaN)"},
		{[]string{"--proposer-burst", "5"}, "--proposer-burst (5) must be >= 0 and needs --proposer-rate"},
		{[]string{"--proposer-rate", "1", "--proposer-burst", "-2"}, "--proposer-burst (-2)"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			_, code, done := parseServeOptions(append(base(t), c.args...), &stderr, env(nil))
			if !done || code != 2 || !strings.Contains(stderr.String(), c.want) {
				t.Fatalf("done %v, exit %d, stderr %q; want exit 2 naming %q", done, code, stderr.String(), c.want)
			}
		})
	}
}
