package client_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/natsapi/natsapitest"
	"github.com/shardmatch/shardmatch/internal/telemetry/spans"
	"github.com/shardmatch/shardmatch/internal/telemetry/telemetrytest"
	"github.com/shardmatch/shardmatch/internal/testutil"
	"github.com/shardmatch/shardmatch/policy"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

// tracedDeployment is natsapitest's cluster with the production paths that tracing
// crosses: the coordinators evaluate the default policy bundle and reach the shards
// over the NATS transport (SM_CMD, votes and acks), and the shards serve their
// durable consumers with real Participants.
type tracedDeployment struct {
	*natsapitest.Cluster
	policy *policy.Engine

	mu     sync.Mutex
	shards map[string]*natstransport.ShardServer
}

func startTraced(t *testing.T) *tracedDeployment {
	t.Helper()
	eng, err := policy.New(policy.Config{EvalTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	d := &tracedDeployment{policy: eng, shards: map[string]*natstransport.ShardServer{}}
	d.Cluster = natsapitest.Start(t, natsapitest.Options{ShardsOverNATS: true,
		Coordinator: func(_ string, c *coordinator.Config) { c.Policy = eng }})
	t.Cleanup(d.close) // before the cluster's own shutdown, which closes the connections
	return d
}

// serveShard starts shard id's server on its durable consumer, with a Participant
// that accepts every player.
func (d *tracedDeployment) serveShard(t *testing.T, id string) {
	t.Helper()
	p, err := twophase.NewParticipant(twophase.ParticipantConfig{ShardID: id, Handler: acceptAll{},
		Journal: twophase.NewMemJournal(), Clock: clock.NewReal()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv, err := natstransport.Serve(ctx, natstransport.ParticipantConfig{Conn: d.Connect(), ShardID: id, Handler: p})
	if err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.shards[id] = srv
	d.mu.Unlock()
}

func (d *tracedDeployment) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.shards {
		_ = s.Close()
	}
}

// acceptAll is a shard whose players are always free.
type acceptAll struct{}

func (acceptAll) Prepare(context.Context, string, []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error) {
	return nil, nil
}
func (acceptAll) Commit(context.Context, string, []*smv1.ShardPlayer) error { return nil }
func (acceptAll) Abort(context.Context, string, []*smv1.ShardPlayer) error  { return nil }

// duel is a 1v1 on s1 and s2 that the default bundle allows, or denies for the MMR
// gap when gap is large.
func duel(id string, gap int32) *smv1.Proposal {
	n := playerSeq.Add(1)
	pl := func(side, shard string, mmr int32) *smv1.Player {
		return &smv1.Player{PlayerId: fmt.Sprintf("tp%d-%s", n, side), ShardId: shard, Attributes: &smv1.PlayerAttributes{
			Mmr: mmr, Region: "eu-west", LatencyMs: map[string]int32{"eu-west": 30}}}
	}
	return &smv1.Proposal{ProposalId: id, Mode: "duel", MatchTtlMs: 60_000, Teams: []*smv1.Team{
		{Players: []*smv1.Player{pl("a", "s1", 2000)}}, {Players: []*smv1.Player{pl("b", "s2", 2000+gap)}}}}
}

// spanSet indexes the spans of one trace.
type spanSet []sdktrace.ReadOnlySpan

// named returns the spans called name with the given shardmatch.shard attribute (""
// for any).
func (s spanSet) named(name, shard string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, sp := range s {
		if sp.Name() == name && (shard == "" || telemetrytest.Attr(sp, string(spans.Shard)) == shard) {
			out = append(out, sp)
		}
	}
	return out
}

// first returns the first span called name (and shard), or an error.
func (s spanSet) first(name, shard string) (sdktrace.ReadOnlySpan, error) {
	if f := s.named(name, shard); len(f) > 0 {
		return f[0], nil
	}
	return nil, fmt.Errorf("no span %q (shard %q)", name, shard)
}

// edge is an expected parent → child relation between named spans.
type edge struct{ parent, parentShard, child, childShard string }

// checkTree checks each edge: there is a child span, and every child span's parent
// is one of the parent spans. A command resent before its answer came back is a
// legitimate second producer span (and, in a later resend epoch, a second delivery
// to the shard), so spans are matched as sets, not one to one.
func (s spanSet) checkTree(edges []edge) error {
	for _, e := range edges {
		parents, children := s.named(e.parent, e.parentShard), s.named(e.child, e.childShard)
		if len(parents) == 0 || len(children) == 0 {
			return fmt.Errorf("%d %q spans, %d %q spans (shards %q, %q)", len(parents), e.parent,
				len(children), e.child, e.parentShard, e.childShard)
		}
		for _, c := range children {
			var errs []error
			for _, p := range parents {
				err := telemetrytest.ChildOf(c, p)
				if err == nil {
					errs = nil
					break
				}
				errs = append(errs, err)
			}
			if errs != nil {
				return fmt.Errorf("%s is not a child of any %s: %v", e.child, e.parent, errs)
			}
		}
	}
	return nil
}

// One committed match is one trace: the caller's span → client propose → intake on
// the leader → policy evaluation and the Raft Begin, the Prepare sent to each shard
// → each shard's handling of it, the Raft Decide, and the Commit sent to each shard
// → each shard's handling of that. A denied proposal's trace stops at policy and
// Begin, with the verdict on the policy span.
func TestOneTraceFromProposalToEveryShard(t *testing.T) {
	rec := telemetrytest.Record(t)
	d := startTraced(t)
	d.serveShard(t, "s1")
	d.serveShard(t, "s2")
	cl := newClient(t, d.Connect(), client.Config{})
	ctx := ctxFor(t, 60*time.Second)

	edges := []edge{
		{"test.matchmaker", "", spans.Propose, ""},
		{spans.Propose, "", spans.Intake, ""},
		{spans.Intake, "", spans.PolicyEval, ""},
		{spans.Intake, "", spans.RaftBegin, ""},
		{spans.Intake, "", spans.RaftDecide, ""},
	}
	for _, s := range []string{"s1", "s2"} {
		edges = append(edges,
			edge{spans.Intake, "", spans.Prepare + " " + s, s},
			edge{spans.Prepare + " " + s, s, spans.ShardPrepare, s},
			edge{spans.Intake, "", spans.Commit + " " + s, s},
			edge{spans.Commit + " " + s, s, spans.ShardCommit, s},
		)
	}
	// The harness's short election timeouts on a loaded machine can change the leader
	// under a proposal (an abort for COORDINATOR_FAILOVER, or a commit delivered by a
	// recovering leader under its own root): the structure is checked on a match that
	// one leader saw through, trying again otherwise.
	var (
		set     spanSet
		dec     *smv1.Decision
		lastErr error
		pid     string
	)
	for attempt := 1; set == nil; attempt++ {
		if attempt > 5 {
			t.Fatalf("no match ran on one leader in 5 attempts; last: %v\n%s", lastErr, telemetrytest.Dump(rec.Ended()))
		}
		pid = fmt.Sprintf("traced-%d", attempt)
		pctx, root := telemetrytest.StartRoot(ctx, "test.matchmaker")
		var err error
		dec, err = cl.Propose(pctx, duel(pid, 100))
		root.End()
		if err != nil {
			t.Fatal(err)
		}
		if dec.GetReason() == smv1.Reason_REASON_COORDINATOR_FAILOVER {
			lastErr = fmt.Errorf("attempt %d: %v", attempt, dec)
			continue
		}
		if dec.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
			t.Fatalf("decision %v", dec)
		}
		var got spanSet
		lastErr = rec.Await(20*time.Second, func([]sdktrace.ReadOnlySpan) error {
			got = spanSet(rec.InTrace(root.SpanContext().TraceID()))
			return got.checkTree(edges)
		})
		if lastErr == nil {
			set = got
		} else if len(spanSet(rec.Ended()).named(spans.Recover, "")) == 0 {
			t.Fatalf("%v\n%s", lastErr, telemetrytest.Dump(rec.Ended()))
		}
	}
	// Kinds and attributes: what an operator filters on.
	for _, c := range []struct {
		name, shard string
		kind        trace.SpanKind
		attrs       map[string]string
	}{
		{spans.Propose, "", trace.SpanKindClient, map[string]string{
			string(spans.ProposalID): pid, string(spans.Mode): "duel", string(spans.TxID): dec.GetTxid(),
			string(spans.Outcome): "OUTCOME_COMMITTED"}},
		{spans.Intake, "", trace.SpanKindConsumer, map[string]string{
			string(spans.ProposalID): pid, string(spans.TxID): dec.GetTxid(), string(spans.Outcome): "OUTCOME_COMMITTED"}},
		{spans.PolicyEval, "", trace.SpanKindInternal, map[string]string{
			string(spans.PolicyAllow): "true", string(spans.PolicyRevision): d.policy.Revision()}},
		{spans.RaftBegin, "", trace.SpanKindInternal, map[string]string{
			string(spans.TxID): dec.GetTxid(), string(spans.Created): "true", string(spans.State): "TXN_STATE_PREPARING"}},
		{spans.RaftDecide, "", trace.SpanKindInternal, map[string]string{
			string(spans.TxID): dec.GetTxid(), string(spans.Outcome): "OUTCOME_COMMITTED"}},
		{spans.Prepare + " s1", "s1", trace.SpanKindProducer, map[string]string{string(spans.TxID): dec.GetTxid()}},
		{spans.ShardPrepare, "s2", trace.SpanKindConsumer, map[string]string{
			string(spans.TxID): dec.GetTxid(), string(spans.Vote): "VOTE_YES"}},
		{spans.ShardCommit, "s1", trace.SpanKindConsumer, map[string]string{
			string(spans.TxID): dec.GetTxid(), string(spans.Outcome): "OUTCOME_COMMITTED"}},
	} {
		sp, err := set.first(c.name, c.shard)
		if err != nil {
			t.Fatal(err)
		}
		if sp.SpanKind() != c.kind {
			t.Errorf("%s: kind %s, want %s", c.name, sp.SpanKind(), c.kind)
		}
		for k, want := range c.attrs {
			if got := telemetrytest.Attr(sp, k); got != want {
				t.Errorf("%s: %s = %q, want %q", c.name, k, got, want)
			}
		}
	}

	// Denied by policy: the verdict is on the policy span, and nothing is prepared.
	ctx2, root2 := telemetrytest.StartRoot(ctxFor(t, 30*time.Second), "test.denied")
	dec2, err := cl.Propose(ctx2, duel("traced-denied", 2000))
	root2.End()
	if err != nil || dec2.GetReason() != smv1.Reason_REASON_POLICY_DENIED {
		t.Fatalf("denied proposal: %v, %v", dec2, err)
	}
	var denied spanSet
	rec.WaitFor(t, 10*time.Second, func([]sdktrace.ReadOnlySpan) error {
		denied = spanSet(rec.InTrace(root2.SpanContext().TraceID()))
		return denied.checkTree([]edge{{spans.Propose, "", spans.Intake, ""}, {spans.Intake, "", spans.PolicyEval, ""},
			{spans.Intake, "", spans.RaftBegin, ""}})
	})
	pol, _ := denied.first(spans.PolicyEval, "")
	if telemetrytest.Attr(pol, string(spans.PolicyAllow)) != "false" || telemetrytest.Attr(pol, string(spans.PolicyDenials)) == "[]" {
		t.Errorf("denied verdict on the policy span: %v", pol.Attributes())
	}
	for _, sp := range denied {
		if sp.SpanKind() == trace.SpanKindProducer {
			t.Errorf("a denied proposal sent %s", sp.Name())
		}
	}
}

// A leader that takes over a transaction another leader began does not continue that
// leader's trace: it starts a new root span, shardmatch.recover, linked to the
// proposal's intake span (whose traceparent the log kept), and the presumed abort
// (the Raft Decide, the Abort to each shard and the shard's handling of it) hangs
// under that root.
func TestTakeoverStartsLinkedRootSpan(t *testing.T) {
	rec := telemetrytest.Record(t)
	d := startTraced(t)
	d.serveShard(t, "s1") // s2 stays silent: the txn waits for its vote
	cl := newClient(t, d.Connect(), client.Config{AttemptTimeout: 500 * time.Millisecond})
	ctx := ctxFor(t, 60*time.Second)

	p := duel("traced-takeover", 100)
	p.PrepareTimeoutMs = 30_000
	type result struct {
		d   *smv1.Decision
		err error
	}
	done := make(chan result, 1)
	go func() {
		dec, err := cl.Propose(ctx, p)
		done <- result{dec, err}
	}()
	testutil.WaitFor(t, 10*time.Second, "the proposal's txid", func() error {
		if ids := d.Txids(p.GetProposalId()); len(ids) != 1 {
			return fmt.Errorf("txids %v", ids)
		}
		return nil
	})
	leader := d.WaitServing(ctx)
	d.Kill(leader)
	res := <-done
	if res.err != nil || res.d.GetReason() != smv1.Reason_REASON_COORDINATOR_FAILOVER {
		t.Fatalf("after takeover: %v, %v", res.d, res.err)
	}
	d.serveShard(t, "s2") // now the Abort can be acked and the recovery finish

	txid := res.d.GetTxid()
	var intake, recovered sdktrace.ReadOnlySpan
	var set spanSet
	rec.WaitFor(t, 20*time.Second, func(all []sdktrace.ReadOnlySpan) error {
		intake, recovered = nil, nil
		for _, sp := range all {
			if sp.Name() == spans.Recover && telemetrytest.Attr(sp, string(spans.TxID)) == txid {
				recovered = sp
			}
			// The first leader's intake is the one that began the txn; the later
			// ones are redeliveries that found it.
			if sp.Name() == spans.RaftBegin && telemetrytest.Attr(sp, string(spans.TxID)) == txid &&
				telemetrytest.Attr(sp, string(spans.Created)) == "true" {
				for _, in := range all {
					if in.Name() == spans.Intake && telemetrytest.ChildOf(sp, in) == nil {
						intake = in
					}
				}
			}
		}
		if intake == nil || recovered == nil {
			return fmt.Errorf("intake found %v, recover found %v", intake != nil, recovered != nil)
		}
		set = spanSet(rec.InTrace(recovered.SpanContext().TraceID()))
		return set.checkTree([]edge{
			{spans.Recover, "", spans.RaftDecide, ""},
			{spans.Recover, "", spans.Abort + " s1", "s1"},
			{spans.Abort + " s1", "s1", spans.ShardAbort, "s1"},
			{spans.Recover, "", spans.Abort + " s2", "s2"},
			{spans.Abort + " s2", "s2", spans.ShardAbort, "s2"},
		})
	})
	if recovered.Parent().IsValid() {
		t.Errorf("recover span has a parent: %s", recovered.Parent().SpanID())
	}
	if recovered.SpanContext().TraceID() == intake.SpanContext().TraceID() {
		t.Error("the new leader continued the old leader's trace")
	}
	links := recovered.Links()
	if len(links) != 1 || links[0].SpanContext.TraceID() != intake.SpanContext().TraceID() ||
		links[0].SpanContext.SpanID() != intake.SpanContext().SpanID() {
		t.Fatalf("recover links %+v, want the intake span %s/%s", links, intake.SpanContext().TraceID(), intake.SpanContext().SpanID())
	}
	dec, _ := set.first(spans.RaftDecide, "")
	if telemetrytest.Attr(dec, string(spans.Reason)) != "REASON_COORDINATOR_FAILOVER" {
		t.Errorf("decide span: %v", dec.Attributes())
	}
}
