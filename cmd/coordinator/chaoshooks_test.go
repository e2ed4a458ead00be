package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/chaos/collect"
	"github.com/shardmatch/shardmatch/chaos/history"
	"github.com/shardmatch/shardmatch/chaos/inject"
	"github.com/shardmatch/shardmatch/chaos/workload"
	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// TestChaosHooks runs the chaos runner's hooks in real processes: NATS, one
// single-node coordinator and one shard server, both with --enable-fault-injection
// and --history-dir. It proposes matches through the client SDK, steps the
// coordinator's clock two hours forward through /v1/fault (the decisions it then
// stamps move with it, the leases stay), turns the transport hooks on for a few more
// matches, reads both processes' history files and final states, and checks the
// whole history clean. Then `serve --unsafe` without --enable-fault-injection must be
// refused as a usage error.
func TestChaosHooks(t *testing.T) {
	d := newDeployment(t)
	histDir := filepath.Join(d.dir, "history")
	if err := os.MkdirAll(histDir, 0o755); err != nil {
		t.Fatal(err)
	}
	epoch := time.Now().Round(0)
	chaos := []string{"--enable-fault-injection", "--history-dir", histDir, "--history-epoch", strconv.FormatInt(epoch.UnixNano(), 10)}
	d.startNATS()
	raftPort := freePort(t)
	c1 := d.startNode("c1", raftPort, append([]string{"--peers", fmt.Sprintf("c1=127.0.0.1:%d", raftPort), "--bootstrap",
		"--no-policy"}, chaos...)...)
	d.waitLeader("")
	s1 := d.startShard("s1", append([]string{"--always-available", "--compact-every", "0"}, chaos...)...)
	d.waitRegistered("s1")
	cli := d.client(client.Config{})

	// The history's reference clock is the machine's, from the same epoch the
	// processes were given, as in the chaos runner.
	rec := history.NewRecorder(func() time.Duration { return time.Now().Round(0).Sub(epoch) }, 0.01)
	prop := &workload.Recording{Inner: cli, Rec: rec}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	next := 0
	propose := func() *smv1.Decision {
		t.Helper()
		i := next
		next++
		p := &smv1.Proposal{ProposalId: fmt.Sprintf("hooks-%d", i), Mode: "duel", MatchTtlMs: (time.Minute).Milliseconds(),
			Teams: []*smv1.Team{{Players: []*smv1.Player{{PlayerId: fmt.Sprintf("s1-p%05d", 2*i+10), ShardId: "s1"}}},
				{Players: []*smv1.Player{{PlayerId: fmt.Sprintf("s1-p%05d", 2*i+11), ShardId: "s1"}}}}}
		dec, err := prop.Propose(ctx, p)
		if err != nil {
			t.Fatalf("propose %s: %v", p.GetProposalId(), err)
		}
		if dec.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
			t.Fatalf("proposal %s: %v", p.GetProposalId(), dec)
		}
		return dec
	}
	for range 3 {
		propose()
	}

	// Step the coordinator's clock two hours forward. Its wall clock moves (the
	// decisions it stamps show it); lease time does not.
	coordFaults := &inject.Client{BaseURL: c1.adminURL, Token: adminToken}
	skew := 2 * time.Hour
	if err := coordFaults.SetClock(ctx, &skew, nil); err != nil {
		t.Fatal(err)
	}
	if st, err := coordFaults.Get(ctx); err != nil || st.Offset != skew || st.Rate != 1 {
		t.Fatalf("fault state %+v, %v", st, err)
	}
	dec := propose()
	if ahead := time.Until(time.UnixMilli(dec.GetDecidedUnixMs())); ahead < skew-time.Minute || ahead > skew+time.Minute {
		t.Fatalf("a decision after the skew is stamped %s ahead of the real clock, want about %s", ahead, skew)
	}

	// Both transport hooks on: duplicated and reordered commands and votes change
	// no outcome.
	shardFaults := &inject.Client{BaseURL: s1.url}
	for _, c := range []*inject.Client{coordFaults, shardFaults} {
		if err := c.SetTransport(ctx, 50, 30); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		propose()
	}
	for _, c := range []*inject.Client{coordFaults, shardFaults} {
		if err := c.SetTransport(ctx, 0, 0); err != nil {
			t.Fatal(err)
		}
	}

	// Settle: every txn DONE, nothing prepared at the shard; that is the final state.
	var final history.Final
	testutil.WaitFor(t, 30*time.Second, "the deployment to settle", func() error {
		nf, err := collect.FetchNodeFinal(ctx, c1.adminURL)
		if err != nil {
			return err
		}
		sf, err := collect.FetchShardFinal(ctx, s1.url)
		if err != nil {
			return err
		}
		for _, tx := range nf.Txns {
			if tx.State != history.StateDone {
				return fmt.Errorf("%s is %s", tx.TxID, tx.State)
			}
		}
		if len(sf.Prepared) > 0 {
			return fmt.Errorf("s1 holds %v prepared", sf.Prepared)
		}
		final = history.Final{Nodes: map[string]history.NodeFinal{"c1": nf}, Shards: map[string]history.ShardFinal{"s1": sf}}
		return nil
	})
	if n := len(final.Nodes["c1"].Txns); n != next {
		t.Fatalf("c1 holds %d txns, want %d", n, next)
	}
	if n := len(final.Shards["s1"].Committed); n != next {
		t.Fatalf("s1 committed %d txns, want %d", n, next)
	}
	shardEvs, leaseEvs, err := collect.ReadDir(histDir)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, ev := range shardEvs {
		kinds["shard "+string(ev.Kind)]++
	}
	for _, ev := range leaseEvs {
		kinds["lease "+string(ev.Kind)]++
	}
	if kinds["shard prepared"] != next || kinds["shard committed"] != next || kinds["lease granted"] != next || kinds["lease activated"] != next {
		t.Fatalf("history files hold %v for %d matches", kinds, next)
	}
	h := rec.History()
	h.ShardEvents, h.LeaseEvents, h.Final, h.Settled = shardEvs, leaseEvs, final, true
	if r := history.Check(h); !r.OK() {
		t.Fatalf("the history of a clean run fails its checks:\n%s", r.String())
	}
	for _, p := range []*proc{s1.proc, c1.proc} {
		if code := p.stop(t, 20*time.Second); code != 0 {
			t.Errorf("%s exit code %d after SIGTERM", p.name, code)
		}
	}

	// --unsafe is a usage error without --enable-fault-injection.
	var out testutil.Buffer
	cmd := exec.Command(d.coord, "serve", "--id", "c9", "--data", filepath.Join(d.dir, "c9"), "--unsafe", "deliver-before-log")
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(out.String(), "--enable-fault-injection") {
		t.Fatalf("serve --unsafe without fault injection: exit %d (%v), output %q", code, err, out.String())
	}
}

// TestServeChaosOptions: the chaos settings parse, go together as documented, and
// --unsafe maps to exactly one of coordinator.Config's unsafe switches.
func TestServeChaosOptions(t *testing.T) {
	base := []string{"--id", "c1", "--data", t.TempDir()}
	for _, c := range []struct {
		args []string
		want string
	}{
		{append(base, "--history-dir", "/h"), "--history-epoch"},
		{append(base, "--history-epoch", "5"), "--history-dir"},
		{append(base, "--unsafe", "wallclock-expiry"), "--enable-fault-injection"},
		{append(base, "--enable-fault-injection", "--unsafe", "yolo"), "unknown mode"},
	} {
		var stdout, stderr bytes.Buffer
		if code := runServe(c.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q (want 2, mentioning %q)", c.args, code, stderr.String(), c.want)
		}
	}
	for mode, want := range map[string][2]bool{"": {false, false}, "deliver-before-log": {true, false}, "wallclock-expiry": {false, true}} {
		var stderr bytes.Buffer
		args := append(base, "--enable-fault-injection", "--history-dir", "/h", "--history-epoch", "17")
		if mode != "" {
			args = append(args, "--unsafe", mode)
		}
		o, code, done := parseServeOptions(args, &stderr, env(nil))
		if done {
			t.Fatalf("%v: exit %d: %s", args, code, stderr.String())
		}
		s := sabotageOf(o.unsafe)
		if got := [2]bool{s.DeliverBeforeLog, s.WallClockExpiry}; got != want || !o.faultInjection || o.historyEpoch != 17 {
			t.Errorf("--unsafe %q: switches %v, want %v (options %+v)", mode, got, want, o)
		}
	}
}
