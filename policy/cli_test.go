package policy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shardmatch/shardmatch/policy"
)

func runTest(t *testing.T, o policy.TestOptions) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := policy.RunTestWith(context.Background(), o, &out, &errOut)
	return code, out.String(), errOut.String()
}

func runEval(t *testing.T, o policy.EvalOptions) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := policy.RunEvalWith(context.Background(), o, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRunTestDefaultBundle(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := policy.RunTest(context.Background(), "", &out, &errOut); code != policy.ExitOK {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.HasPrefix(out.String(), "PASS: ") || strings.Contains(out.String(), "FAIL") {
		t.Fatalf("output:\n%s", out.String())
	}
	code, verbose, _ := runTest(t, policy.TestOptions{Verbose: true})
	if code != policy.ExitOK || !strings.Contains(verbose, "PASS  data.shardmatch_test.test_good_5v5_is_allowed") {
		t.Fatalf("verbose output:\n%s", verbose)
	}
}

func TestRunTestReportsFailures(t *testing.T) {
	dir := copyDefaultBundle(t)
	if err := os.WriteFile(filepath.Join(dir, "wrong_test.rego"), []byte(`package shardmatch_test

import data.shardmatch

test_expects_the_wrong_thing if {
	print("about to fail")
	shardmatch.match.allow with input as {}
}

test_errors if {
	1 / 0 == 1
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runTest(t, policy.TestOptions{BundleDir: dir})
	if code != policy.ExitFail {
		t.Fatalf("exit %d, want %d\n%s", code, policy.ExitFail, out)
	}
	for _, want := range []string{
		"FAIL  data.shardmatch_test.test_expects_the_wrong_thing (",
		"wrong_test.rego:5)",
		"print: about to fail",
		"FAIL  data.shardmatch_test.test_errors",
		"error: ",
		"FAIL: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestRunTestBundleErrors(t *testing.T) {
	for name, dir := range map[string]string{
		"missing dir":  filepath.Join(t.TempDir(), "nope"),
		"syntax error": writePolicy(t, "package shardmatch\nmatch := {", ""),
		// Its tests pass, but an Engine would refuse it: no match rule.
		"not loadable": writePolicy(t, "package shardmatch\nx := 1\ntest_x if x == 1\n", ""),
	} {
		t.Run(name, func(t *testing.T) {
			code, _, errOut := runTest(t, policy.TestOptions{BundleDir: dir})
			if code != policy.ExitError || !strings.Contains(errOut, "policy test: ") {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
		})
	}
}

func TestRunEvalExamples(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := policy.RunEval(context.Background(), "", "testdata/proposal-allow.json", &out, &errOut); code != policy.ExitOK {
		t.Fatalf("allow example: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if !regexp.MustCompile(`verdict:\s+ALLOW`).MatchString(out.String()) || !strings.Contains(out.String(), "no rule objected") {
		t.Fatalf("allow output:\n%s", out.String())
	}

	code, deny, _ := runEval(t, policy.EvalOptions{InputPath: "testdata/proposal-deny.json"})
	if code != policy.ExitFail {
		t.Fatalf("deny example: exit %d\n%s", code, deny)
	}
	if !regexp.MustCompile(`verdict:\s+DENY`).MatchString(deny) {
		t.Errorf("deny output:\n%s", deny)
	}
	for _, want := range []string{
		"5 denial(s):",
		"BLOCKLISTED", "players griefer-7 and streamer-1 are blocklisted",
		"LATENCY", "player ivan has 95ms to eu-west",
		"MMR_SPREAD", "PARTY_SPLIT", "TEAM_MMR_GAP",
		"players: alice, bob",
	} {
		if !strings.Contains(deny, want) {
			t.Errorf("deny output lacks %q:\n%s", want, deny)
		}
	}

	// The same through a bundle directory, and as JSON.
	code, js, _ := runEval(t, policy.EvalOptions{BundleDir: "bundles/default", InputPath: "testdata/proposal-deny.json", JSON: true})
	if code != policy.ExitFail {
		t.Fatalf("json: exit %d", code)
	}
	var v struct {
		Allow    bool
		Revision string
		Denials  []struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(js), &v); err != nil {
		t.Fatalf("json output: %v\n%s", err, js)
	}
	if v.Allow || len(v.Denials) != 5 || v.Revision == "" {
		t.Fatalf("json verdict: %+v", v)
	}
}

func TestRunEvalShowInput(t *testing.T) {
	code, _, errOut := runEval(t, policy.EvalOptions{InputPath: "testdata/proposal-deny.json", ShowInput: true})
	if code != policy.ExitFail {
		t.Fatalf("exit %d", code)
	}
	doc, ok := strings.CutPrefix(errOut, "input document:\n")
	if !ok {
		t.Fatalf("stderr:\n%s", errOut)
	}
	var in struct {
		Proposal struct {
			Teams []struct {
				Players []struct {
					PlayerID string `json:"player_id"`
				}
			}
		}
		Queue  map[string]any
		Shards map[string]map[string]any
		Facts  struct {
			Players   int
			PlayerIDs []string `json:"player_ids"`
			MMRMax    int      `json:"mmr_max"`
		}
	}
	if err := json.Unmarshal([]byte(doc), &in); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	if len(in.Proposal.Teams) != 2 || in.Proposal.Teams[1].Players[1].PlayerID != "streamer-1" ||
		in.Queue["max_mmr_spread"] != float64(800) || in.Shards["s3"]["region"] != "us-east" ||
		in.Facts.Players != 10 || len(in.Facts.PlayerIDs) != 10 || in.Facts.MMRMax != 2400 {
		t.Fatalf("input document: %+v", in)
	}
}

func TestRunEvalStdin(t *testing.T) {
	in, err := os.ReadFile("testdata/proposal-allow.json")
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ := runEval(t, policy.EvalOptions{InputPath: "-", Stdin: bytes.NewReader(in)})
	if code != policy.ExitOK {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

func TestRunEvalErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name   string
		opts   policy.EvalOptions
		stderr string
	}{
		{"no input", policy.EvalOptions{}, "no input"},
		{"missing file", policy.EvalOptions{InputPath: filepath.Join(dir, "nope.json")}, "no such file"},
		{"not json", policy.EvalOptions{InputPath: write("bad.json", "{")}, "not a JSON object"},
		{"unknown field", policy.EvalOptions{InputPath: write("typo.json", `{"mode": "5v5", "team": []}`)}, "proposal:"},
		{"bad envelope", policy.EvalOptions{InputPath: write("env.json", `{"proposal": {}, "extra": 1}`)}, `unknown field "extra"`},
		{"bad shards", policy.EvalOptions{InputPath: write("shards.json", `{"proposal": {}, "shards": {"s1": {}}}`)}, "shards: want an array"},
		{"invalid proposal", policy.EvalOptions{InputPath: write("empty-id.json", `{"mode": "5v5", "teams": [{"players": [{"shard_id": "s1"}]}]}`)}, "invalid input"},
		{"bad bundle", policy.EvalOptions{BundleDir: filepath.Join(dir, "nobundle"), InputPath: "testdata/proposal-allow.json"}, "bad bundle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runEval(t, tc.opts)
			if code != policy.ExitError || !strings.Contains(errOut, tc.stderr) {
				t.Fatalf("exit %d, stderr %q, want %d and %q", code, errOut, policy.ExitError, tc.stderr)
			}
		})
	}
}

func TestReadEvalInput(t *testing.T) {
	p, shards, err := policy.ReadEvalInput([]byte(`{"proposalId": "x", "mode": "duel", "teams": [{"players": [{"playerId": "a", "attributes": {"latencyMs": {"eu-west": 3}}}]}]}`))
	if err != nil || p.GetProposalId() != "x" || shards != nil || p.GetTeams()[0].GetPlayers()[0].GetAttributes().GetLatencyMs()["eu-west"] != 3 {
		t.Fatalf("camelCase proposal: %v %v %v", p, shards, err)
	}
	p, shards, err = policy.ReadEvalInput([]byte(`{"proposal": {"mode": "duel"}, "shards": [{"shard_id": "s1", "state": "SHARD_STATE_DRAINING"}]}`))
	if err != nil || p.GetMode() != "duel" || len(shards) != 1 || shards[0].GetState().String() != "SHARD_STATE_DRAINING" {
		t.Fatalf("envelope: %v %v %v", p, shards, err)
	}
}
