package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/policy/cases"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// TestLazyJSONMatchesReference: teamsJSON and shardsJSON encode the documents
// that encoding/json makes of the plain Go values (teamsNative, shardsNative),
// strings with quotes, control characters, non-ASCII and invalid UTF-8
// included.
func TestLazyJSONMatchesReference(t *testing.T) {
	odd := []string{"", "plain", `q"uote`, `back\slash`, "tab\tnew\nline\r", "\x00\x01\x1f", "ünïcødé ✓", "\xff\xfe bad", "<&>", "\u2028"}
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 200 {
		p, shards := randomProposal(rng)
		for _, tm := range p.GetTeams() {
			for _, pl := range tm.GetPlayers() {
				pl.PlayerId += odd[rng.IntN(len(odd))]
				if a := pl.GetAttributes(); a != nil {
					a.Extra = map[string]string{odd[rng.IntN(len(odd))]: odd[rng.IntN(len(odd))], "k": "v"}
				}
			}
		}
		shards[0].Labels = map[string]string{odd[i%len(odd)]: odd[(i+3)%len(odd)]}
		shards[1].State = smv1.ShardState_SHARD_STATE_DRAINING
		same(t, fmt.Sprintf("teams %d", i), teamsJSON{p}, teamsNative(p))
		same(t, fmt.Sprintf("shards %d", i), shardsJSON{&shards}, shardsNative(shards))
	}
	p := &smv1.Proposal{MatchTtlMs: 60_000, PrepareTimeoutMs: -5}
	same(t, "match_ttl_ms", proposalField[fieldMatchTTL]{p}, int64(60_000))
	same(t, "prepare_timeout_ms", proposalField[fieldPrepareTimeout]{p}, int64(-5))
}

func same(t *testing.T, name string, lazy json.Marshaler, native any) {
	t.Helper()
	got, err := json.Marshal(lazy) // as OPA calls it: encoding/json checks the bytes too
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	want, err := json.Marshal(native)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v in %s", name, err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n  lazy:   %s\n  native: %s", name, got, want)
	}
}

// TestConcurrentEvaluations: evaluations running at once, which share the
// prepared query, its read transaction and the pools of evaluation state,
// give the verdicts they give one at a time.
func TestConcurrentEvaluations(t *testing.T) {
	e, err := New(Config{EvalTimeout: 10 * time.Second}) // bounds wall time, and 8 goroutines share 2 CPUs here
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	type job struct {
		p      *smv1.Proposal
		shards []*smv1.ShardInfo
		want   *smv1.PolicyVerdict
	}
	var jobs []job
	for _, c := range cases.All() {
		v, _ := e.Evaluate(ctx, c.Proposal, c.Shards)
		jobs = append(jobs, job{c.Proposal, c.Shards, v})
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 50 {
		p, shards := randomMatch(rng)
		v, _ := e.Evaluate(ctx, p, shards)
		jobs = append(jobs, job{p, shards, v})
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				j := jobs[(g*31+i)%len(jobs)]
				c, cancel := context.WithCancel(ctx) // a context with Done, half the time
				if i%2 == 0 {
					c = ctx
				}
				v, err := e.Evaluate(c, j.p, j.shards)
				cancel()
				if err != nil || !proto.Equal(v, j.want) {
					t.Errorf("concurrent verdict %v (%v), alone %v", v, err, j.want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestInputDocumentIsWhatThePolicySees: the document InputDocument shows
// (`coordinator policy eval --show-input`), given to OPA as plain JSON, gets
// the verdict Evaluate gives. (Except for the facts, whose sets JSON turns
// into arrays: those are the engine's, as AST.)
func TestInputDocumentIsWhatThePolicySees(t *testing.T) {
	ctx := context.Background()
	e, err := New(Config{EvalTimeout: 10 * time.Second}) // compares verdicts, not speed: the suite shares 2 CPUs
	if err != nil {
		t.Fatal(err)
	}
	plainOPA, err := plainQuery("") // OPA's own prepared query of the same bundle
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, p *smv1.Proposal, shards []*smv1.ShardInfo) {
		t.Helper()
		doc, err := e.InputDocument(p, shards)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		bs, err := json.Marshal(doc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		input, err := ast.ValueFromReader(bytes.NewReader(bs))
		if err != nil {
			t.Fatal(err)
		}
		input.(ast.Object).Insert(ast.StringTerm("facts"), ast.NewTerm(facts(p, shards)))
		rs, err := plainOPA.Eval(ctx, rego.EvalParsedInput(input), rego.EvalGenerateJSON(passTerm))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		allow, denials, err := parseMatch(rs[0].Expressions[0].Value.(*ast.Term))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, _ := e.Evaluate(ctx, p, shards)
		if got := verdictOf(allow, denials, want.GetRevision()); !proto.Equal(got, want) {
			t.Errorf("%s: from the document %v, from Evaluate %v", name, got, want)
		}
	}
	for _, c := range cases.All() {
		check(c.Name, c.Proposal, c.Shards)
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for i := range 300 {
		p, shards := randomMatch(rng)
		check(fmt.Sprintf("random-%d", i), p, shards)
	}
}
