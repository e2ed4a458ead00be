package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errw bytes.Buffer
	code = run(context.Background(), args, &out, &errw)
	return code, out.String(), errw.String()
}

// TestDevRunsAndAuditsClean runs `coordinator dev` in-process for 3 seconds, over
// embedded NATS JetStream (the default) and over the in-memory network: matches
// commit, the audit is clean, and the summary JSON has the documented fields.
func TestDevRunsAndAuditsClean(t *testing.T) {
	for _, tr := range []string{"nats", "inmem"} {
		t.Run(tr, func(t *testing.T) { testDev(t, tr) })
	}
}

func testDev(t *testing.T, transport string) {
	dir := t.TempDir()
	sum := filepath.Join(dir, "summary.json")
	code, stdout, stderr := runCmd(t, "dev", "--duration", "3s", "--summary-json", sum, "--data", filepath.Join(dir, "data"),
		"--players", "1000", "--log-level", "error", "--transport", transport)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	raw, err := os.ReadFile(sum)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"committed", "aborted", "p50_ms", "p99_ms", "atomicity_violations", "double_booked",
		"in_doubt", "duration_s", "rate", "leader", "transport", "policy_evaluations", "policy_p99_us"} {
		if _, ok := got[k]; !ok {
			t.Errorf("summary lacks %q: %s", k, raw)
		}
	}
	if _, ok := got["aborted"].(map[string]any); !ok {
		t.Errorf("aborted is not an object: %v", got["aborted"])
	}
	if got["committed"].(float64) <= 0 || got["clean"] != true || got["settled"] != true || got["leader"] == "" || got["transport"] != transport {
		t.Errorf("summary: %s", raw)
	}
	for _, k := range []string{"atomicity_violations", "double_booked", "in_doubt"} {
		if got[k].(float64) != 0 {
			t.Errorf("%s = %v", k, got[k])
		}
	}
	if !strings.Contains(stderr, "committed") || !strings.Contains(stdout, "CLEAN") {
		t.Error("no status line on stderr or no verdict on stdout")
	}
}

func TestPolicyTestDefaultBundle(t *testing.T) {
	if code, stdout, stderr := runCmd(t, "policy", "test"); code != 0 || !strings.Contains(stdout, "PASS") {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
}

func TestPolicyEval(t *testing.T) {
	for file, want := range map[string]int{"proposal-allow.json": 0, "proposal-deny.json": 1} {
		path := filepath.Join("..", "..", "policy", "testdata", file)
		if code, stdout, stderr := runCmd(t, "policy", "eval", "-i", path); code != want {
			t.Errorf("%s: exit %d, want %d\n%s%s", file, code, want, stdout, stderr)
		}
	}
	if code, stdout, _ := runCmd(t, "policy", "eval", "-o", "json", "-i", filepath.Join("..", "..", "policy", "testdata", "proposal-allow.json")); code != 0 || !strings.Contains(stdout, `"allow": true`) {
		t.Errorf("eval --json: exit %d\n%s", code, stdout)
	}
	if code, _, _ := runCmd(t, "policy", "eval"); code != 2 {
		t.Errorf("eval without input: exit %d, want 2", code)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		in   string // expected in stdout+stderr
	}{
		{nil, 2, "missing command: want one of"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"serve"}, 2, "--id is required"},
		{[]string{"status", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"chaos"}, 2, "missing command: want one of clean, list, run"},
		{[]string{"chaos", "run"}, 2, "missing SCENARIO"},
		{[]string{"chaos", "frob"}, 2, `unknown command "frob"`},
		{[]string{"bench", "--inflight", "0"}, 2, "--inflight >= 1"},
		{[]string{"help", "bench"}, 0, "--json file"},
		{[]string{"dev", "--transport", "tcp"}, 2, "want nats or inmem"},
		{[]string{"nats"}, 2, "--store"},
		{[]string{"help"}, 0, "chaos"},
		{[]string{"help", "dev"}, 0, "--rate float"},
		{[]string{"dev", "--no-such-flag"}, 2, "unknown flag: --no-such-flag"},
		{[]string{"dev", "extra"}, 2, "unexpected argument"},
		{[]string{"dev", "--shards", "1"}, 2, "--shards >= 2"},
		{[]string{"policy"}, 2, "missing command: want one of eval, test"},
		{[]string{"policy", "lint"}, 2, `unknown command "lint"`},
		{[]string{"version"}, 0, "coordinator "},
		{[]string{"version", "x"}, 2, `unexpected argument "x"`},
		{[]string{"help"}, 0, "prestop"},
		{[]string{"prestop", "--help"}, 0, "SHARDMATCH_ADMIN_TOKEN"},
		{[]string{"prestop", "--timeout", "0"}, 2, "--timeout must be > 0"},
		{[]string{"prestop", "extra"}, 2, "unexpected argument"},
	} {
		code, stdout, stderr := runCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(stdout+stderr, tc.in) {
			t.Errorf("%v: exit %d, want %d with %q in:\n%s%s", tc.args, code, tc.code, tc.in, stdout, stderr)
		}
	}
}
