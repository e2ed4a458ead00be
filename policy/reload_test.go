package policy_test

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/internal/testutil"
	"github.com/shardmatch/shardmatch/policy"
	"github.com/shardmatch/shardmatch/policy/cases"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// balanced5v5 is the allowed 5v5 of the shared table: MMR 1470..1550, so a
// max_mmr_spread of 50 denies it with MMR_SPREAD.
func balanced5v5(t testing.TB) cases.Case {
	t.Helper()
	for _, c := range cases.All() {
		if c.Name == "5v5-balanced" {
			return c
		}
	}
	t.Fatal("no 5v5-balanced case")
	return cases.Case{}
}

// revisionOf loads dir in a throwaway engine.
func revisionOf(t testing.TB, dir string) string {
	t.Helper()
	return newEngine(t, policy.Config{BundleDir: dir}).Revision()
}

func TestReloadKeepsTheGoodPolicy(t *testing.T) {
	ctx := context.Background()
	c := balanced5v5(t)
	dir := copyDefaultBundle(t)
	e := newEngine(t, policy.Config{BundleDir: dir})
	revA := e.Revision()

	// Broken data: the reload fails, version A stays and still answers.
	writeAtomic(t, dir, "data.json", []byte("{broken"))
	if err := e.Reload(ctx); !errors.Is(err, policy.ErrBundle) {
		t.Fatalf("Reload of broken data: %v", err)
	}
	if e.Revision() != revA {
		t.Fatal("a broken bundle replaced the good one")
	}
	if v, err := e.Evaluate(ctx, c.Proposal, c.Shards); err != nil || !v.GetAllow() || v.GetRevision() != revA {
		t.Fatalf("after failed reload: %v %v", v, err)
	}
	if s := e.Stats(); s.ReloadFailures != 1 || s.LastReloadError == "" {
		t.Fatalf("stats after failure: %+v", s)
	}

	// Good data but a Rego syntax error in another file: still refused.
	writeAtomic(t, dir, "data.json", dataWithSpread(t, 50))
	writeAtomic(t, dir, "zz.rego", []byte("package shardmatch\nmatch := {"))
	if err := e.Reload(ctx); !errors.Is(err, policy.ErrBundle) || e.Revision() != revA {
		t.Fatalf("Reload with a syntax error: %v, revision %s", err, e.Revision())
	}

	// Fixed: version B goes in, and it denies what A allowed.
	if err := os.Remove(filepath.Join(dir, "zz.rego")); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	revB := e.Revision()
	if revB == revA {
		t.Fatal("revision unchanged after a real change")
	}
	v, err := e.Evaluate(ctx, c.Proposal, c.Shards)
	if err != nil || v.GetAllow() || !slices.Equal(codesOf(v), []string{policy.CodeMMRSpread}) || v.GetRevision() != revB {
		t.Fatalf("under B: %v %v", v, err)
	}
	s := e.Stats()
	if s.Reloads != 1 || s.ReloadFailures != 2 || s.LastReloadError != "" || s.Revision != revB {
		t.Fatalf("stats: %+v", s)
	}

	// Reloading unchanged files changes nothing.
	if err := e.Reload(ctx); err != nil || e.Revision() != revB {
		t.Fatalf("unchanged reload: %v %s", err, e.Revision())
	}
}

// TestReloadDuringEvaluations swaps between bundle A (allows the balanced 5v5),
// a broken bundle and bundle B (denies it) while goroutines evaluate. Every
// verdict must come from A or B and be the one that version gives: no
// evaluation sees a half-loaded policy and a broken bundle is never installed.
// Run it with -race.
func TestReloadDuringEvaluations(t *testing.T) {
	ctx := context.Background()
	c := balanced5v5(t)
	dataA, dataB, broken := dataWithSpread(t, 800), dataWithSpread(t, 50), []byte(`{"shardmatch": `)

	dir := copyDefaultBundle(t)
	writeAtomic(t, dir, "data.json", dataA)
	// A generous timeout: this test is about versions, and four evaluators, a
	// compiler and the race detector share two cores.
	e := newEngine(t, policy.Config{BundleDir: dir, EvalTimeout: time.Minute})
	revA := e.Revision()
	dirB := copyDefaultBundle(t)
	writeAtomic(t, dirB, "data.json", dataB)
	revB := revisionOf(t, dirB)

	var (
		stop       atomic.Bool
		wg         sync.WaitGroup
		underA     atomic.Int64
		underB     atomic.Int64
		badVerdict atomic.Value
	)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				v, err := e.Evaluate(ctx, c.Proposal, c.Shards)
				switch {
				case err != nil:
					badVerdict.Store("error: " + err.Error())
				case v.GetRevision() == revA && v.GetAllow():
					underA.Add(1)
				case v.GetRevision() == revB && !v.GetAllow() && slices.Equal(codesOf(v), []string{policy.CodeMMRSpread}):
					underB.Add(1)
				default:
					badVerdict.Store(v.String())
				}
			}
		})
	}
	// waitEvaluations waits until the workers have judged n more proposals
	// under the version whose counter is given.
	waitEvaluations := func(counter *atomic.Int64, what string) {
		n := counter.Load() + 3
		testutil.WaitUntil(t, 10*time.Second, what, func() bool { return counter.Load() >= n })
	}

	const rounds = 4
	for range rounds {
		waitEvaluations(&underA, "evaluations under A")
		writeAtomic(t, dir, "data.json", broken)
		if err := e.Reload(ctx); err == nil {
			t.Fatal("broken bundle loaded")
		}
		writeAtomic(t, dir, "data.json", dataB)
		if err := e.Reload(ctx); err != nil || e.Revision() != revB {
			t.Fatalf("reload to B: %v %s", err, e.Revision())
		}
		waitEvaluations(&underB, "evaluations under B")
		writeAtomic(t, dir, "data.json", broken)
		if err := e.Reload(ctx); err == nil {
			t.Fatal("broken bundle loaded")
		}
		writeAtomic(t, dir, "data.json", dataA)
		if err := e.Reload(ctx); err != nil || e.Revision() != revA {
			t.Fatalf("reload to A: %v %s", err, e.Revision())
		}
	}
	stop.Store(true)
	wg.Wait()
	if bad := badVerdict.Load(); bad != nil {
		t.Fatalf("a verdict matched neither A nor B: %v", bad)
	}
	s := e.Stats()
	if s.ReloadFailures != 2*rounds || s.Reloads != 2*rounds || s.EvalErrors != 0 {
		t.Fatalf("stats: %+v", s)
	}
	t.Logf("%d verdicts under A, %d under B, %d reloads, %d refused", underA.Load(), underB.Load(), s.Reloads, s.ReloadFailures)
}

// An evaluation that started on version A finishes on A, even if B is
// installed meanwhile. The slow proposal runs into the timeout, so it is
// certainly still running when the reload returns.
func TestInFlightEvaluationKeepsItsVersion(t *testing.T) {
	ctx := context.Background()
	const pol = `package shardmatch

match := {"allow": true, "deny": []} if input.proposal.proposal_id != "slow"

match := {"allow": true, "deny": []} if {
	input.proposal.proposal_id == "slow"
	r := numbers.range(1, 100000)
	x := [1 | some i in r; some j in r; i == j + 1000000]
	count(x) == 0
}
`
	dir := writePolicy(t, pol, `{"version": "A"}`)
	e := newEngine(t, policy.Config{BundleDir: dir, EvalTimeout: 3 * time.Second})
	revA := e.Revision()

	started := make(chan string, 1)
	defer policy.SetTestHooks(func(rev string) {
		select {
		case started <- rev:
		default:
		}
	}, nil)()
	type result struct {
		v   *smv1.PolicyVerdict
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := e.Evaluate(ctx, &smv1.Proposal{ProposalId: "slow"}, nil)
		done <- result{v, err}
	}()
	if rev := <-started; rev != revA {
		t.Fatalf("slow evaluation started on %s", rev)
	}
	policy.SetTestHooks(nil, nil)

	writeAtomic(t, dir, "data.json", []byte(`{"version": "B"}`))
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	revB := e.Revision()
	if revB == revA {
		t.Fatal("no new revision")
	}
	if v, err := e.Evaluate(ctx, &smv1.Proposal{ProposalId: "fast"}, nil); err != nil || v.GetRevision() != revB {
		t.Fatalf("new evaluation: %v %v", v, err)
	}
	select {
	case <-done:
		t.Fatal("the slow evaluation ended before the reload; the test proves nothing")
	default:
	}
	r := <-done
	if r.v.GetRevision() != revA {
		t.Fatalf("in-flight evaluation reports %s, want the version it started on (%s)", r.v.GetRevision(), revA)
	}
	if r.v.GetAllow() || !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("slow evaluation: %v %v", r.v, r.err)
	}
}

// watch starts e.Watch and returns a function that stops it and checks that it
// returned ctx's error.
func watch(t *testing.T, e *policy.Engine) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Watch(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Watch returned %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Watch did not return after cancel")
		}
	}
}

func TestWatchReloadsChangedFiles(t *testing.T) {
	polled := make(chan struct{})
	defer policy.SetTestHooks(nil, func() { polled <- struct{}{} })()
	fake := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	dir := copyDefaultBundle(t)
	e := newEngine(t, policy.Config{BundleDir: dir, Clock: fake, PollInterval: time.Second, Signals: make(chan os.Signal)})
	revA := e.Revision()
	defer watch(t, e)()
	fake.WaitForTimers(1)
	tick := func() {
		fake.Advance(time.Second)
		<-polled
	}

	tick() // nothing changed
	writeAtomic(t, dir, "data.json", dataWithSpread(t, 50))
	tick() // change seen: wait for it to settle
	if e.Revision() != revA {
		t.Fatal("reloaded a change seen only once")
	}
	tick() // stable for an interval: reload
	revB := e.Revision()
	if revB == revA || e.Stats().Reloads != 1 {
		t.Fatalf("after a stable change: revision %s, stats %+v", revB, e.Stats())
	}

	// A broken bundle is tried once, refused, and not retried until it changes.
	writeAtomic(t, dir, "data.json", []byte("{broken"))
	tick()
	tick()
	for range 3 {
		tick()
	}
	if s := e.Stats(); s.ReloadFailures != 1 || e.Revision() != revB {
		t.Fatalf("broken bundle: revision %s, stats %+v", e.Revision(), s)
	}
	writeAtomic(t, dir, "data.json", defaultDataBytes(t))
	tick()
	tick()
	if e.Revision() != revA {
		t.Fatalf("after the fix: revision %s, want %s", e.Revision(), revA)
	}
	if s := e.Stats(); s.Reloads != 2 || s.ReloadFailures != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestWatchReloadsOnSignal(t *testing.T) {
	sig := make(chan os.Signal)
	fake := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	dir := copyDefaultBundle(t)
	e := newEngine(t, policy.Config{BundleDir: dir, Clock: fake, Signals: sig})
	revA := e.Revision()
	defer watch(t, e)()

	writeAtomic(t, dir, "data.json", dataWithSpread(t, 50))
	sig <- syscall.SIGHUP // unbuffered: received by Watch
	testutil.WaitUntil(t, 10*time.Second, "reload on signal", func() bool { return e.Revision() != revA })

	writeAtomic(t, dir, "data.json", []byte("{broken"))
	sig <- syscall.SIGHUP
	testutil.WaitUntil(t, 10*time.Second, "failed reload on signal", func() bool { return e.Stats().ReloadFailures == 1 })
	if e.Revision() == revA {
		t.Fatal("revision went back")
	}
}

// TestWatchReloadsOnRealSIGHUP sends SIGHUP to this process. The test keeps a
// SIGHUP handler of its own for its whole run, so the signal can never kill
// the test binary, whether or not Watch has registered yet.
func TestWatchReloadsOnRealSIGHUP(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGHUP on windows")
	}
	guard := make(chan os.Signal, 16)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)

	dir := copyDefaultBundle(t)
	e := newEngine(t, policy.Config{BundleDir: dir, PollInterval: -1})
	revA := e.Revision()
	defer watch(t, e)()
	writeAtomic(t, dir, "data.json", dataWithSpread(t, 50))
	deadline := time.Now().Add(10 * time.Second)
	for e.Revision() == revA {
		if time.Now().After(deadline) {
			t.Fatal("no reload after SIGHUP")
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
