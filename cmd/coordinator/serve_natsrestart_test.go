package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/shardsvc"
)

// proposeCall is one recorded Propose: what was asked and what came back.
type proposeCall struct {
	start time.Time
	p     *smv1.Proposal
	d     *smv1.Decision
	err   error
}

// recordingProposer is the load driver's coordinator: the client SDK, with every
// Propose recorded.
type recordingProposer struct {
	c     *client.Client
	mu    sync.Mutex
	calls []proposeCall
}

var _ shardsvc.Proposer = (*recordingProposer)(nil)

func (r *recordingProposer) Propose(ctx context.Context, p *smv1.Proposal) (*smv1.Decision, error) {
	start := time.Now()
	d, err := r.c.Propose(ctx, p)
	r.mu.Lock()
	r.calls = append(r.calls, proposeCall{start: start, p: proto.Clone(p).(*smv1.Proposal), d: d, err: err})
	r.mu.Unlock()
	return d, err
}

func (r *recordingProposer) Renew(ctx context.Context, txid string) error {
	return r.c.Renew(ctx, txid)
}

func (r *recordingProposer) Release(ctx context.Context, txid string) error {
	return r.c.Release(ctx, txid)
}

// decided counts the calls that returned a decision.
func (r *recordingProposer) decided() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if c.d != nil {
			n++
		}
	}
	return n
}

func (r *recordingProposer) snapshot() []proposeCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]proposeCall(nil), r.calls...)
}

// TestMultiProcessNATSRestart restarts the NATS server (JetStream file store on the
// same directory and port) twice under load, once after SIGKILL and once after
// SIGTERM, while three coordinators and two shards run as processes and the test
// proposes through the client SDK, recording every call. After the load stops:
// every proposal that got a decision keeps it (Status by proposal id answers the
// same txid and outcome), every call that ended without one resolves when retried
// with the same proposal id, every call started once the system had recovered got
// its decision, no proposal id has two transactions (in any node's FSM
// or in the events stream), nothing is left unfinished or in doubt, the shards'
// journals agree with every coordinator (shardsvc.Audit), and no process died.
func TestMultiProcessNATSRestart(t *testing.T) {
	d := newDeployment(t)
	d.startNATS()
	d.startCluster(3)
	for _, id := range []string{"s1", "s2"} {
		d.startShard(id, "--compact-every", "1h") // the audit reads whole journals
	}
	d.waitRegistered("s1", "s2")

	// The test's connection is the binaries' (config.NATS.Options) plus a count of
	// failed reconnect attempts, which measures how long NATS has been down.
	var failedReconnects atomic.Int64
	nc, err := nats.Connect(d.natsURL, append(d.natsConf.Options("test", slog.New(slog.DiscardHandler)),
		nats.ReconnectErrHandler(func(*nats.Conn, error) { failedReconnects.Add(1) }))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cl, err := client.New(client.Config{Conn: nc, AttemptTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	rec := &recordingProposer{c: cl}
	driver := newTestDriver(t, rec, nil)
	stopLoad := runDriver(t, driver)
	progress := func(what string, more int) { t.Helper(); waitDecided(t, rec, 25*time.Second, what, more) }
	// outage stops NATS with stop, keeps it down until the test's connection failed
	// to reconnect 6 times (about 1.5s: longer than a client attempt, so proposers
	// fall back to status queries and some calls time out), and starts it again on the
	// same port and store.
	outage := func(how string, stop func()) {
		t.Helper()
		stop()
		from := failedReconnects.Load()
		testutil.WaitFor(t, 10*time.Second, "NATS down for 6 reconnect attempts after "+how, func() error {
			if n := failedReconnects.Load() - from; n < 6 {
				return fmt.Errorf("%d failed reconnects", n)
			}
			return nil
		})
		d.nats.start(t)
	}

	progress("decisions before the first restart", 10)
	outage("SIGKILL", d.nats.kill)
	progress("decisions after NATS came back from SIGKILL", 10)
	outage("SIGTERM", func() {
		if code := d.nats.stop(t, 15*time.Second); code != 0 {
			t.Errorf("nats exit code %d after SIGTERM", code)
		}
	})
	progress("decisions after NATS came back from SIGTERM", 10)
	// Healed: from now on every call gets its decision within the driver's timeout.
	healed := time.Now()
	progress("decisions once healed", 15)
	if err := stopLoad(); err != nil {
		t.Errorf("driver: %v", err)
	}

	calls := rec.snapshot()
	for _, c := range calls {
		if c.start.After(healed) && c.d == nil {
			t.Errorf("proposal %s, started once NATS was back and serving, ended without a decision: %v", c.p.GetProposalId(), c.err)
		}
	}
	checkProposeCalls(t, cl, calls)
	d.waitSettled(30 * time.Second)
	for _, p := range d.procs {
		if !p.running() {
			t.Errorf("%s exited", p.name)
		}
	}
	nodes := d.auditClean()
	checkOneTxnPerProposal(t, nodes, eventsByProposal(t, nc))
}

// newTestDriver is a shardsvc load driver proposing through p, over stand-ins of the
// two shards' worlds (same seed and players as the shardsvc processes). By default
// its calls are shorter than an outage, so some end without a decision and are
// retried; tune, if not nil, changes the driver's settings before it is built.
func newTestDriver(t *testing.T, p shardsvc.Proposer, tune func(*shardsvc.LoadGenConfig)) *shardsvc.LoadGen {
	t.Helper()
	clk := clock.NewReal()
	var worlds []*shardsvc.World
	for _, id := range []string{"s1", "s2"} {
		wc := shardsvc.DefaultWorldConfig()
		wc.ShardID, wc.Region, wc.Players, wc.MatchTTL, wc.Clock, wc.Seed = id, "eu-west", 300, 2*time.Second, clk, 1
		w, err := shardsvc.NewWorld(wc)
		if err != nil {
			t.Fatal(err)
		}
		worlds = append(worlds, w)
	}
	dc := shardsvc.DefaultLoadGenConfig()
	dc.Proposer, dc.Worlds, dc.Clock, dc.Seed = p, worlds, clk, 7
	dc.Rate, dc.MaxInFlight, dc.MatchTTL, dc.MaxRenewals = 25, 8, 2*time.Second, 1
	dc.ProposeTimeout, dc.IDPrefix, dc.Logger = time.Second, t.Name()+"-", slog.New(slog.DiscardHandler)
	if tune != nil {
		tune(&dc)
	}
	drv, err := shardsvc.NewLoadGen(dc)
	if err != nil {
		t.Fatal(err)
	}
	return drv
}

// runDriver runs driver in the background until stop (or the test's end); stop
// returns Run's error and may be called more than once.
func runDriver(t *testing.T, driver *shardsvc.LoadGen) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- driver.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitDecided waits until rec holds more decided calls than it holds now, failing t
// with what after timeout.
func waitDecided(t *testing.T, rec *recordingProposer, timeout time.Duration, what string, more int) {
	t.Helper()
	target := rec.decided() + more
	testutil.WaitFor(t, timeout, what, func() error {
		if n := rec.decided(); n < target {
			return fmt.Errorf("%d decisions, want %d", n, target)
		}
		return nil
	})
}

// checkProposeCalls retries every call that ended without a decision with the same
// proposal (same proposal id), then checks that Status by proposal id answers, for
// every proposal, the decision its calls got.
func checkProposeCalls(t *testing.T, cl *client.Client, calls []proposeCall) {
	t.Helper()
	byPID := map[string]*smv1.Decision{}
	var unknown []*smv1.Proposal
	for _, c := range calls {
		pid := c.p.GetProposalId()
		switch {
		case c.d != nil:
			if prev := byPID[pid]; prev != nil && (prev.GetTxid() != c.d.GetTxid() || prev.GetOutcome() != c.d.GetOutcome()) {
				t.Errorf("proposal %s answered %s/%s and %s/%s", pid, prev.GetTxid(), prev.GetOutcome(), c.d.GetTxid(), c.d.GetOutcome())
			}
			byPID[pid] = c.d
		case errors.Is(c.err, client.ErrInvalid):
			t.Errorf("proposal %s refused as invalid: %v", pid, c.err)
		default:
			unknown = append(unknown, c.p)
		}
	}
	t.Logf("%d calls: %d proposals decided, %d ended without a decision", len(calls), len(byPID), len(unknown))
	for _, p := range unknown {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		d, err := cl.Propose(ctx, p)
		cancel()
		if err != nil {
			t.Errorf("proposal %s still unresolved after the system healed: %v", p.GetProposalId(), err)
			continue
		}
		if prev := byPID[p.GetProposalId()]; prev != nil && prev.GetTxid() != d.GetTxid() {
			t.Errorf("proposal %s: retry answered %s, an earlier call %s", p.GetProposalId(), d.GetTxid(), prev.GetTxid())
		}
		byPID[p.GetProposalId()] = d
	}
	for pid, want := range byPID {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rec, err := cl.Status(ctx, pid)
		cancel()
		if err != nil {
			t.Errorf("status of %s: %v", pid, err)
			continue
		}
		if rec.GetTxid() != want.GetTxid() || rec.GetDecision().GetOutcome() != want.GetOutcome() {
			t.Errorf("proposal %s: the proposer was told %s/%s, status says %s/%s", pid, want.GetTxid(), want.GetOutcome(),
				rec.GetTxid(), rec.GetDecision().GetOutcome())
		}
	}
}

// eventsByProposal reads the whole events stream: proposal id → txids published.
func eventsByProposal(t *testing.T, nc *nats.Conn) map[string]map[string]smv1.Outcome {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream := natsutil.MustSubjects(natsutil.DefaultPrefix).Streams().Events
	info, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	si, err := info.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]smv1.Outcome{}
	if si.State.Msgs == 0 {
		return out
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for n := uint64(0); n < si.State.Msgs; n++ {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("event %d of %d: %v", n+1, si.State.Msgs, err)
		}
		if !strings.HasPrefix(m.Subject(), "sm.v1.events.match.") {
			continue // operator audit records (JSON) share the stream
		}
		var dec smv1.Decision
		if err := proto.Unmarshal(m.Data(), &dec); err != nil {
			t.Fatalf("event %d: %v", n+1, err)
		}
		if out[dec.GetProposalId()] == nil {
			out[dec.GetProposalId()] = map[string]smv1.Outcome{}
		}
		out[dec.GetProposalId()][dec.GetTxid()] = dec.GetOutcome()
	}
	return out
}

// checkOneTxnPerProposal: no proposal id has two transactions in any node's FSM or in
// the events stream, and the events agree with the FSM.
func checkOneTxnPerProposal(t *testing.T, nodes map[string]*smv1.FSMState, events map[string]map[string]smv1.Outcome) {
	t.Helper()
	final := map[string]*smv1.TxnRecord{} // proposal id → txn, from the nodes
	for id, st := range nodes {
		seen := map[string]string{}
		for _, txn := range st.GetTxns() {
			pid := txn.GetProposal().GetProposalId()
			if other, dup := seen[pid]; dup {
				t.Errorf("%s: proposal %s has two transactions, %s and %s", id, pid, other, txn.GetTxid())
			}
			seen[pid] = txn.GetTxid()
			if prev := final[pid]; prev != nil && prev.GetTxid() != txn.GetTxid() {
				t.Errorf("proposal %s is %s at one node and %s at %s", pid, prev.GetTxid(), txn.GetTxid(), id)
			}
			final[pid] = txn
		}
	}
	for pid, txids := range events {
		if len(txids) > 1 {
			t.Errorf("events: proposal %s has %d transactions: %v", pid, len(txids), txids)
		}
		for txid, outcome := range txids {
			if f := final[pid]; f != nil && (f.GetTxid() != txid || f.GetDecision().GetOutcome() != outcome) {
				t.Errorf("events: proposal %s %s/%s, the nodes hold %s/%s", pid, txid, outcome, f.GetTxid(), f.GetDecision().GetOutcome())
			}
		}
	}
	t.Logf("%d proposals in the FSM, %d in the events stream", len(final), len(events))
}
