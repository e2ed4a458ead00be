package policy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/policy"
	"github.com/shardmatch/shardmatch/policy/cases"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

func newEngine(t testing.TB, cfg policy.Config) *policy.Engine {
	t.Helper()
	e, err := policy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func codesOf(v *smv1.PolicyVerdict) []string {
	var out []string
	for _, d := range v.GetDenials() {
		if !slices.Contains(out, d.GetCode()) {
			out = append(out, d.GetCode())
		}
	}
	slices.Sort(out)
	return out
}

// TestCases runs the shared table (policy/cases) through the engine: the same
// table the coordinator's end-to-end tests propose through the whole system.
func TestCases(t *testing.T) {
	e := newEngine(t, policy.Config{})
	all := cases.All()
	if len(all) < 20 {
		t.Fatalf("only %d cases", len(all))
	}
	seen := map[string]bool{}
	for _, c := range all {
		t.Run(c.Name, func(t *testing.T) {
			v, err := e.Evaluate(context.Background(), c.Proposal, c.Shards)
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if v.GetAllow() != c.Allow || !slices.Equal(codesOf(v), c.Codes) {
				t.Fatalf("verdict allow=%v codes=%v, want allow=%v codes=%v\n%v", v.GetAllow(), codesOf(v), c.Allow, c.Codes, v)
			}
			if v.GetRevision() != e.Revision() {
				t.Errorf("revision %q, engine has %q", v.GetRevision(), e.Revision())
			}
			for _, code := range c.Codes {
				seen[code] = true
			}
			ids := map[string]bool{}
			for _, tm := range c.Proposal.GetTeams() {
				for _, p := range tm.GetPlayers() {
					ids[p.GetPlayerId()] = true
				}
			}
			for _, d := range v.GetDenials() {
				if d.GetMessage() == "" {
					t.Errorf("denial %s has no message", d.GetCode())
				}
				if !slices.IsSorted(d.GetPlayers()) {
					t.Errorf("denial %s players not sorted: %v", d.GetCode(), d.GetPlayers())
				}
				for _, id := range d.GetPlayers() {
					if !ids[id] {
						t.Errorf("denial %s names %q, who is not in the proposal", d.GetCode(), id)
					}
				}
			}
			// Deterministic: the same proposal gives the same verdict.
			again, _ := e.Evaluate(context.Background(), c.Proposal, c.Shards)
			if !proto.Equal(v, again) {
				t.Errorf("second evaluation differs:\n%v\n%v", v, again)
			}
		})
	}
	// The table covers every rule of the default bundle.
	for _, code := range []string{
		policy.CodeUnknownMode, policy.CodeModeClosed, policy.CodeTeamCount, policy.CodeTeamSize,
		policy.CodeMMRSpread, policy.CodeTeamMMRGap, policy.CodeRegion, policy.CodeLatency,
		policy.CodePartySplit, policy.CodeBlocklisted, policy.CodeShardShare,
	} {
		if !seen[code] {
			t.Errorf("no case denies with %s", code)
		}
	}
}

// TestCasesAreUsableEndToEnd checks what cases promises the coordinator's
// end-to-end test: unique proposal ids and players, known shards.
func TestCasesAreUsableEndToEnd(t *testing.T) {
	ids, players := map[string]bool{}, map[string]string{}
	for _, c := range cases.All() {
		id := c.Proposal.GetProposalId()
		if id == "" || ids[id] {
			t.Errorf("%s: proposal id %q empty or reused", c.Name, id)
		}
		ids[id] = true
		shards := map[string]bool{}
		for _, s := range c.Shards {
			shards[s.GetShardId()] = true
		}
		for _, tm := range c.Proposal.GetTeams() {
			for _, p := range tm.GetPlayers() {
				if other, ok := players[p.GetPlayerId()]; ok {
					t.Errorf("%s: player %s also in %s", c.Name, p.GetPlayerId(), other)
				}
				players[p.GetPlayerId()] = c.Name
				if !shards[p.GetShardId()] {
					t.Errorf("%s: player %s on unlisted shard %s", c.Name, p.GetPlayerId(), p.GetShardId())
				}
			}
		}
		if c.Allow != (len(c.Codes) == 0) {
			t.Errorf("%s: Allow=%v with codes %v", c.Name, c.Allow, c.Codes)
		}
		if !slices.IsSorted(c.Codes) {
			t.Errorf("%s: codes not sorted", c.Name)
		}
	}
	// All returns fresh values: changing one does not change the next.
	a := cases.All()
	a[0].Proposal.Mode = "changed"
	if cases.All()[0].Proposal.GetMode() == "changed" {
		t.Error("All shares its proposals between calls")
	}
}

func TestEvaluateMalformedInput(t *testing.T) {
	e := newEngine(t, policy.Config{})
	good := cases.All()[0]
	withTeams := func(ts ...*smv1.Team) *smv1.Proposal { return &smv1.Proposal{Mode: "5v5", Teams: ts} }
	for _, tc := range []struct {
		name   string
		p      *smv1.Proposal
		shards []*smv1.ShardInfo
	}{
		{"nil proposal", nil, nil},
		{"nil team", withTeams(good.Proposal.Teams[0], nil), nil},
		{"nil player", withTeams(&smv1.Team{Players: []*smv1.Player{nil}}), nil},
		{"empty player id", withTeams(&smv1.Team{Players: []*smv1.Player{{ShardId: "s1"}}}), nil},
		{"nil shard", good.Proposal, []*smv1.ShardInfo{nil}},
		{"shard without id", good.Proposal, []*smv1.ShardInfo{{Region: "eu-west"}}},
		{"shard twice", good.Proposal, []*smv1.ShardInfo{{ShardId: "s1"}, {ShardId: "s1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := e.Evaluate(context.Background(), tc.p, tc.shards)
			if !errors.Is(err, policy.ErrInvalidInput) {
				t.Fatalf("err = %v, want ErrInvalidInput", err)
			}
			if v == nil || v.GetAllow() || !slices.Equal(codesOf(v), []string{policy.CodeInvalidInput}) {
				t.Fatalf("verdict %v, want a deny with INVALID_INPUT", v)
			}
			if v.GetRevision() != e.Revision() || v.GetDenials()[0].GetMessage() == "" {
				t.Fatalf("verdict %v lacks revision or message", v)
			}
		})
	}
	if s := e.Stats(); s.InvalidInputs != 7 || s.Denied != 7 || s.Allowed != 0 {
		t.Errorf("stats %+v", s)
	}
}

// Proposals that are well-formed but odd are the policy's to judge, and it
// denies them.
func TestEvaluateOddButValidProposals(t *testing.T) {
	e := newEngine(t, policy.Config{})
	for _, tc := range []struct {
		name  string
		p     *smv1.Proposal
		codes []string
	}{
		{"empty proposal", &smv1.Proposal{}, []string{"UNKNOWN_MODE"}},
		{"no teams", &smv1.Proposal{Mode: "duel"}, []string{"REGION", "TEAM_COUNT"}},
		{"nil attributes", &smv1.Proposal{Mode: "duel", Teams: []*smv1.Team{
			{Players: []*smv1.Player{{PlayerId: "x", ShardId: "s1"}}},
			{Players: []*smv1.Player{{PlayerId: "y", ShardId: "s1"}}},
		}}, []string{"LATENCY"}}, // region from shard s1, but no latency measured
		{"duplicate player", &smv1.Proposal{Mode: "duel", Metadata: map[string]string{"region": "eu-west"}, Teams: []*smv1.Team{
			{Players: []*smv1.Player{{PlayerId: "x", ShardId: "s1", Attributes: &smv1.PlayerAttributes{LatencyMs: map[string]int32{"eu-west": 10}}}}},
			{Players: []*smv1.Player{{PlayerId: "x", ShardId: "s1", Attributes: &smv1.PlayerAttributes{LatencyMs: map[string]int32{"eu-west": 10}}}}},
		}}, []string{"DUPLICATE_PLAYER"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := e.Evaluate(context.Background(), tc.p, cases.Shards())
			if err != nil {
				t.Fatal(err)
			}
			if v.GetAllow() || !slices.Equal(codesOf(v), tc.codes) {
				t.Fatalf("verdict %v, want deny %v", v, tc.codes)
			}
		})
	}
}

func TestEvaluateTimeoutDenies(t *testing.T) {
	// Slow only for one proposal id, so that the load-time smoke test passes.
	dir := writePolicy(t, `package shardmatch

match := {"allow": true, "deny": []} if input.proposal.proposal_id != "slow"

match := {"allow": true, "deny": []} if {
	input.proposal.proposal_id == "slow"
	r := numbers.range(1, 5000)
	x := [1 | some i in r; some j in r; i == j + 100000]
	count(x) == 0
}
`, "")
	e := newEngine(t, policy.Config{BundleDir: dir, EvalTimeout: 20 * time.Millisecond})
	start := time.Now()
	v, err := e.Evaluate(context.Background(), &smv1.Proposal{ProposalId: "slow"}, nil)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("evaluation took %v with a 20ms timeout", took)
	}
	if !errors.Is(err, policy.ErrEvaluation) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrEvaluation and DeadlineExceeded", err)
	}
	if v.GetAllow() || !slices.Equal(codesOf(v), []string{policy.CodePolicyError}) || v.GetRevision() == "" {
		t.Fatalf("verdict %v, want POLICY_ERROR deny with revision", v)
	}
	if !strings.Contains(v.GetDenials()[0].GetMessage(), "timeout") {
		t.Errorf("message %q does not say timeout", v.GetDenials()[0].GetMessage())
	}
	if s := e.Stats(); s.EvalErrors != 1 || s.Timeouts != 1 || s.DenialsByCode[policy.CodePolicyError] != 1 {
		t.Errorf("stats %+v", s)
	}
	// The engine still answers fast proposals afterwards.
	if v, err := e.Evaluate(context.Background(), &smv1.Proposal{ProposalId: "fast"}, nil); err != nil || !v.GetAllow() {
		t.Fatalf("after a timeout: %v %v", v, err)
	}
}

func TestEvaluateCancelledContextDenies(t *testing.T) {
	e := newEngine(t, policy.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c := cases.All()[0]
	v, err := e.Evaluate(ctx, c.Proposal, c.Shards)
	if !errors.Is(err, policy.ErrEvaluation) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrEvaluation and Canceled", err)
	}
	if v.GetAllow() || codesOf(v)[0] != policy.CodePolicyError {
		t.Fatalf("verdict %v", v)
	}
}

// A policy that fails at run time, answers in the wrong shape or not at all,
// denies with POLICY_ERROR: it never admits.
func TestEvaluatePolicyErrorsDeny(t *testing.T) {
	dir := writePolicy(t, `package shardmatch

# A run-time error (division by zero) for proposals with no teams.
match := {"allow": 1 / count(input.proposal.teams) > 0, "deny": []} if input.proposal.mode == "div"

# The wrong shape.
match := {"allow": "yes"} if input.proposal.mode == "shape"

# A denial without a code.
match := {"allow": false, "deny": [{"message": "no code"}]} if input.proposal.mode == "nocode"

# Undefined for mode "none"; fine for the smoke test and everything else.
match := {"allow": true, "deny": []} if not input.proposal.mode in {"div", "shape", "nocode", "none"}
`, "")
	e := newEngine(t, policy.Config{BundleDir: dir})
	for _, mode := range []string{"div", "shape", "nocode", "none"} {
		t.Run(mode, func(t *testing.T) {
			v, err := e.Evaluate(context.Background(), &smv1.Proposal{Mode: mode}, nil)
			if !errors.Is(err, policy.ErrEvaluation) {
				t.Fatalf("err = %v, want ErrEvaluation", err)
			}
			if v.GetAllow() || !slices.Equal(codesOf(v), []string{policy.CodePolicyError}) {
				t.Fatalf("verdict %v, want POLICY_ERROR", v)
			}
		})
	}
	if v, err := e.Evaluate(context.Background(), &smv1.Proposal{Mode: "ok"}, nil); err != nil || !v.GetAllow() {
		t.Fatalf("mode ok: %v %v", v, err)
	}
}

func TestVerdictNormalisation(t *testing.T) {
	dir := writePolicy(t, `package shardmatch

match := {"allow": false, "deny": []} if input.proposal.mode == "silent"

match := {"allow": true, "deny": [
	{"code": "B", "message": "second", "players": ["z", "a"]},
	{"code": "A", "message": "first", "players": []},
]} if input.proposal.mode == "contradiction"

match := {"allow": true, "deny": set()} if not input.proposal.mode in {"silent", "contradiction"}
`, "")
	e := newEngine(t, policy.Config{BundleDir: dir})
	v, err := e.Evaluate(context.Background(), &smv1.Proposal{Mode: "silent"}, nil)
	if err != nil || v.GetAllow() || !slices.Equal(codesOf(v), []string{policy.CodeUnexplained}) {
		t.Fatalf("deny without reason: %v %v", v, err)
	}
	v, err = e.Evaluate(context.Background(), &smv1.Proposal{Mode: "contradiction"}, nil)
	if err != nil || v.GetAllow() {
		t.Fatalf("allow with denials must deny: %v %v", v, err)
	}
	if got := v.GetDenials(); got[0].GetCode() != "A" || !slices.Equal(got[1].GetPlayers(), []string{"a", "z"}) {
		t.Fatalf("denials not sorted: %v", got)
	}
}

func TestNewRefusesBadBundles(t *testing.T) {
	for _, tc := range []struct {
		name, rego, data string
	}{
		{"syntax error", "package shardmatch\nmatch := {", ""},
		{"no match rule", "package shardmatch\nallow := true\n", ""},
		{"wrong shape", `package shardmatch
match := {"allow": "yes", "deny": []}
`, ""},
		{"errors on every proposal", `package shardmatch
match := {"allow": 1 / 0 > 1, "deny": []}
`, ""},
		{"network built-in", `package shardmatch
match := {"allow": http.send({"method": "GET", "url": "http://localhost"}).status_code == 200, "deny": []}
`, ""},
		{"bad data", "package shardmatch\nmatch := {\"allow\": true, \"deny\": []}\n", "{not json"},
		{"modes not an object", "package shardmatch\nmatch := {\"allow\": true, \"deny\": []}\n", `{"shardmatch": {"modes": [1]}}`},
		{"queues reads input", `package shardmatch
match := {"allow": true, "deny": []}
queues[m] := {"teams": input.proposal.teams} if some m, _ in data.shardmatch.modes
`, `{"shardmatch": {"modes": {"duel": {"teams": 2}}}}`},
		{"queues not an object", `package shardmatch
match := {"allow": true, "deny": []}
queues := ["duel"]
`, ""},
		{"queues entry not an object", `package shardmatch
match := {"allow": true, "deny": []}
queues := {"duel": 2}
`, ""},
		{"queues errors", `package shardmatch
match := {"allow": true, "deny": []}
queues := {"duel": {"teams": 1 / 0}}
`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := policy.New(policy.Config{BundleDir: writePolicy(t, tc.rego, tc.data)})
			if !errors.Is(err, policy.ErrBundle) {
				t.Fatalf("err = %v, want ErrBundle", err)
			}
		})
	}
	t.Run("no rego files", func(t *testing.T) {
		if _, err := policy.New(policy.Config{BundleDir: t.TempDir()}); !errors.Is(err, policy.ErrBundle) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("missing dir", func(t *testing.T) {
		if _, err := policy.New(policy.Config{BundleDir: filepath.Join(t.TempDir(), "nope")}); !errors.Is(err, policy.ErrBundle) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("negative timeout", func(t *testing.T) {
		if _, err := policy.New(policy.Config{EvalTimeout: -time.Second}); !errors.Is(err, policy.ErrConfig) || !strings.Contains(err.Error(), "EvalTimeout") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestDerivedQueues: input.queue is the bundle's data.shardmatch.queues[mode],
// computed when the bundle loads; without that rule it is modes[mode] as it is.
func TestDerivedQueues(t *testing.T) {
	p := &smv1.Proposal{ProposalId: "q", Mode: "duel", Teams: []*smv1.Team{
		{Players: []*smv1.Player{{PlayerId: "a", ShardId: "s1"}}},
	}}
	const data = `{"shardmatch": {"modes": {"duel": {"team_size": 1}, "5v5": {"team_size": 5}}}}`
	// The derived config decides: duel's derived max_team_size is 0, so the
	// one-player team is too large.
	derived := writePolicy(t, `package shardmatch
import input.queue
queues[m] := object.union(cfg, {"max_team_size": cfg.team_size - 1}) if some m, cfg in data.shardmatch.modes
match := {"allow": count(violation) == 0, "deny": violation}
violation contains {"code": "TEAM_SIZE", "message": sprintf("max %d", [queue.max_team_size]), "players": []} if input.facts.team_players_max > queue.max_team_size
`, data)
	e := newEngine(t, policy.Config{BundleDir: derived})
	doc, err := e.InputDocument(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q := doc["queue"].(map[string]any); fmt.Sprint(q["max_team_size"]) != "0" || fmt.Sprint(q["team_size"]) != "1" {
		t.Fatalf("input.queue = %v, want the derived config", q)
	}
	v, err := e.Evaluate(context.Background(), p, nil)
	if err != nil || v.GetAllow() || len(v.GetDenials()) != 1 || v.GetDenials()[0].GetMessage() != "max 0" {
		t.Fatalf("verdict %v, %v: want TEAM_SIZE from the derived config", v, err)
	}
	// Without queues, the rule reads modes as they are: max_team_size is
	// absent, the rule is silent.
	plain := writePolicy(t, `package shardmatch
import input.queue
match := {"allow": count(violation) == 0, "deny": violation}
violation contains {"code": "TEAM_SIZE", "message": "m", "players": []} if input.facts.team_players_max > queue.max_team_size
`, data)
	e = newEngine(t, policy.Config{BundleDir: plain})
	if doc, _ := e.InputDocument(p, nil); fmt.Sprint(doc["queue"]) != "map[team_size:1]" {
		t.Fatalf("input.queue = %v, want modes.duel", doc["queue"])
	}
	if v, err := e.Evaluate(context.Background(), p, nil); err != nil || !v.GetAllow() {
		t.Fatalf("verdict %v, %v", v, err)
	}
}

func TestRevision(t *testing.T) {
	def := newEngine(t, policy.Config{})
	if !regexp.MustCompile(`^sha256:[0-9a-f]{16}$`).MatchString(def.Revision()) {
		t.Fatalf("revision %q", def.Revision())
	}
	// The same files elsewhere: the same revision.
	dir := copyDefaultBundle(t)
	if got := newEngine(t, policy.Config{BundleDir: dir}).Revision(); got != def.Revision() {
		t.Errorf("copy has revision %s, embedded %s", got, def.Revision())
	}
	// Files that are not part of a bundle do not count.
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".git", "x.rego"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := newEngine(t, policy.Config{BundleDir: dir}).Revision(); got != def.Revision() {
		t.Errorf("unrelated files changed the revision: %s", got)
	}
	// A change does.
	writeAtomic(t, dir, "data.json", dataWithSpread(t, 50))
	changed := newEngine(t, policy.Config{BundleDir: dir}).Revision()
	if changed == def.Revision() {
		t.Error("changed data.json, same revision")
	}
	// A manifest revision is prefixed.
	writeAtomic(t, dir, ".manifest", []byte(`{"revision": "v42"}`))
	if got := newEngine(t, policy.Config{BundleDir: dir}).Revision(); !regexp.MustCompile(`^v42@sha256:[0-9a-f]{16}$`).MatchString(got) {
		t.Errorf("with manifest: %q", got)
	}
}

func TestStats(t *testing.T) {
	e := newEngine(t, policy.Config{})
	for _, c := range cases.All() {
		_, _ = e.Evaluate(context.Background(), c.Proposal, c.Shards)
	}
	s := e.Stats()
	var allowed, denied uint64
	byCode := map[string]uint64{}
	for _, c := range cases.All() {
		if c.Allow {
			allowed++
		} else {
			denied++
		}
		for _, code := range c.Codes {
			byCode[code]++
		}
	}
	if s.Evaluations != allowed+denied || s.Allowed != allowed || s.Denied != denied || s.EvalErrors != 0 {
		t.Errorf("stats %+v", s)
	}
	for code, n := range byCode {
		if s.DenialsByCode[code] != n {
			t.Errorf("DenialsByCode[%s] = %d, want %d", code, s.DenialsByCode[code], n)
		}
	}
	if s.Revision != e.Revision() || s.LoadedAt.IsZero() {
		t.Errorf("stats revision/loaded: %+v", s)
	}
}

// TestStatsLatency: every evaluation, allowed, denied or malformed, lands in the
// latency histogram.
func TestStatsLatency(t *testing.T) {
	e := newEngine(t, policy.Config{})
	for _, c := range cases.All() {
		_, _ = e.Evaluate(context.Background(), c.Proposal, c.Shards)
	}
	_, _ = e.Evaluate(context.Background(), &smv1.Proposal{}, nil) // malformed
	st := e.Stats()
	if st.Latency.Count != st.Evaluations || st.Evaluations == 0 || st.Latency.Sum <= 0 {
		t.Fatalf("latency count %d sum %s for %d evaluations", st.Latency.Count, st.Latency.Sum, st.Evaluations)
	}
	if q := st.Latency.Quantile(0.5); q <= 0 {
		t.Fatalf("median %s", q)
	}
}
