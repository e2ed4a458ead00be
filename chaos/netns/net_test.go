package netns

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/internal/testutil"
)

const echoPort = 7070

// TestPartitionCutsOnlyTheNamedPairs: hosts reach each other through the bridge; a
// partition between a and b stops TCP between them both ways while a↔c and the root
// namespace↔a still work; Heal restores a↔b.
func TestPartitionCutsOnlyTheNamedPairs(t *testing.T) {
	needRoot(t)
	n := newNet(t, "a", "b", "c")
	a, b, c := n.Host("a"), n.Host("b"), n.Host("c")
	if !n.Subnet().Contains(a.IP) || a.IP == b.IP || !n.Subnet().Contains(n.BridgeIP()) {
		t.Fatalf("addresses: bridge %s a %s b %s in %s", n.BridgeIP(), a.IP, b.IP, n.Subnet())
	}
	for _, h := range []*Host{a, b, c} {
		startHelper(t, h, "", nil, "echo", hostAddr(h, echoPort))
	}
	for _, h := range []*Host{a, b, c} {
		testutil.WaitUntil(t, 5*time.Second, "echo on "+h.Name, func() bool { return rootDial(hostAddr(h, echoPort)) })
	}
	if !canDial(t, a, hostAddr(b, echoPort)) || !canDial(t, b, hostAddr(a, echoPort)) {
		t.Fatal("a and b cannot talk before any fault")
	}

	if err := n.Partition("p1", []string{"a"}, []string{"b"}); err != nil {
		t.Fatal(err)
	}
	if canDial(t, a, hostAddr(b, echoPort)) {
		t.Error("a reaches b through the partition")
	}
	if canDial(t, b, hostAddr(a, echoPort)) {
		t.Error("b reaches a through the partition")
	}
	if !canDial(t, a, hostAddr(c, echoPort)) {
		t.Error("a cannot reach c, which is in neither side")
	}
	if !rootDial(hostAddr(a, echoPort)) {
		t.Error("the root namespace cannot reach a")
	}
	if err := n.Partition("p1", []string{"a"}, []string{"c"}); !errors.Is(err, ErrFaultExists) {
		t.Errorf("second Partition p1: %v, want ErrFaultExists", err)
	}

	if err := n.Heal("p1"); err != nil {
		t.Fatal(err)
	}
	if !canDial(t, a, hostAddr(b, echoPort)) {
		t.Error("a cannot reach b after Heal")
	}
	if err := n.Heal("p1"); !errors.Is(err, ErrUnknownFault) {
		t.Errorf("Heal of a healed id: %v, want ErrUnknownFault", err)
	}

	// Two faults are removable independently; HealAll removes the rest.
	if err := n.Partition("p2", []string{"a"}, []string{"b"}); err != nil {
		t.Fatal(err)
	}
	if err := n.Partition("p3", []string{"a"}, []string{"c"}); err != nil {
		t.Fatal(err)
	}
	if err := n.Heal("p3"); err != nil {
		t.Fatal(err)
	}
	if !canDial(t, a, hostAddr(c, echoPort)) {
		t.Error("a cannot reach c after p3 was healed")
	}
	if canDial(t, a, hostAddr(b, echoPort)) {
		t.Error("healing p3 also healed p2")
	}
	if err := n.HealAll(); err != nil {
		t.Fatal(err)
	}
	if got := n.Faults(); len(got) != 0 {
		t.Errorf("faults after HealAll: %v", got)
	}
	if !canDial(t, a, hostAddr(b, echoPort)) {
		t.Error("a cannot reach b after HealAll")
	}
}

// udpDelivered sends count datagrams from one host to the sink on another and returns
// how many arrived.
func udpDelivered(t *testing.T, from *Host, sink string, run string, count int) int {
	t.Helper()
	cmd := from.Command(t.Context(), os.Args[0], sink, run, strconv.Itoa(count))
	cmd.Env = append(os.Environ(), helperEnv+"=udpsend")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("udpsend: %v", err)
	}
	got, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("udpsend output %q: %v", out, err)
	}
	return got
}

// TestLossDropsAboutHalf: 50% loss on the receiving host drops roughly half of 200
// datagrams; after Heal none is lost. The runner's traffic (root namespace) is exempt.
func TestLossDropsAboutHalf(t *testing.T) {
	needRoot(t)
	n := newNet(t, "a", "b")
	a, b := n.Host("a"), n.Host("b")
	startHelper(t, b, "", nil, "udpsink", hostAddr(b, 9000))
	startHelper(t, b, "", nil, "echo", hostAddr(b, echoPort))
	testutil.WaitUntil(t, 5*time.Second, "echo on b", func() bool { return rootDial(hostAddr(b, echoPort)) })
	sink := hostAddr(b, 9000)
	const count = 200
	if got := udpDelivered(t, a, sink, "before", count); got != count {
		t.Fatalf("without loss %d of %d arrived", got, count)
	}

	if err := n.Loss("l1", []string{"b"}, 50); err != nil {
		t.Fatal(err)
	}
	got := udpDelivered(t, a, sink, "lossy", count)
	t.Logf("50%% loss: %d of %d arrived", got, count)
	if got < count*25/100 || got > count*75/100 {
		t.Errorf("50%% loss delivered %d of %d, want 25%%..75%%", got, count)
	}
	// Root↔host traffic is never dropped: 20 round trips in a row all succeed.
	for i := range 20 {
		if !rootDial(hostAddr(b, echoPort)) {
			t.Fatalf("root namespace round trip %d to a lossy host failed", i)
		}
	}

	if err := n.Heal("l1"); err != nil {
		t.Fatal(err)
	}
	if got := udpDelivered(t, a, sink, "healed", count); got != count {
		t.Errorf("after Heal %d of %d arrived", got, count)
	}
}

// TestCloseLeavesNothing: Close removes every object of the run (the cleanup of
// newNet checks the lists) and is idempotent; the Net refuses work afterwards.
func TestCloseLeavesNothing(t *testing.T) {
	needRoot(t)
	n := newNet(t, "x", "y")
	if err := n.Partition("p", []string{"x"}, []string{"y"}); err != nil {
		t.Fatal(err)
	}
	if err := n.Loss("l", []string{"x"}, 10); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, n.Prefix()); len(left) < 4 {
		t.Fatalf("expected the run's objects to be listed before Close, got %v", left)
	}
	startHelper(t, n.Host("x"), "", nil, "heartbeat", t.TempDir()+"/hb")
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, n.Prefix()); len(left) > 0 {
		t.Errorf("left after Close: %v", left)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := n.AddHost(t.Context(), "z"); !errors.Is(err, ErrClosed) {
		t.Errorf("AddHost after Close: %v, want ErrClosed", err)
	}
	if err := n.Partition("q", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Partition after Close: %v, want ErrClosed", err)
	}
}

// TestSweepRemovesInterruptedRun: a run abandoned without Close (with a process still
// in one of its namespaces) is removed by Sweep of its prefix, and only it: another
// run's objects stay.
func TestSweepRemovesInterruptedRun(t *testing.T) {
	needRoot(t)
	other := newNet(t, "keep")
	prefix := testPrefix(t)
	abandoned, err := New(t.Context(), Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = abandoned.Close() })
	for _, h := range []string{"a", "b"} {
		if _, err := abandoned.AddHost(t.Context(), h); err != nil {
			t.Fatal(err)
		}
	}
	if err := abandoned.Partition("p", []string{"a"}, []string{"b"}); err != nil {
		t.Fatal(err)
	}
	p := startHelper(t, abandoned.Host("a"), "", nil, "heartbeat", t.TempDir()+"/hb")

	if _, err := Sweep(t.Context(), "["); !errors.Is(err, ErrConfig) {
		t.Errorf("Sweep with a bad pattern: %v, want ErrConfig", err)
	}
	removed, err := Sweep(t.Context(), prefix)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	t.Logf("removed %v", removed)
	for _, want := range []string{"netns " + Tag + prefix + "-a", "netns " + Tag + prefix + "-b",
		"link " + Tag + prefix + "-br", "table bridge " + Tag + prefix} {
		if !slices.Contains(removed, want) {
			t.Errorf("Sweep did not report %q", want)
		}
	}
	if left := leftovers(t, prefix); len(left) > 0 {
		t.Errorf("left after Sweep: %v", left)
	}
	select {
	case <-p.Exited():
	case <-time.After(5 * time.Second):
		t.Error("the process in the swept namespace still runs")
	}
	if left := leftovers(t, other.Prefix()); len(left) < 3 {
		t.Errorf("Sweep of %s removed another run's objects; left of it: %v", prefix, left)
	}
	if err := exec.Command("ip", "netns", "pids", other.Host("keep").NS).Run(); err != nil {
		t.Errorf("the other run's namespace is gone: %v", err)
	}
	again, err := Sweep(t.Context(), prefix)
	if err != nil || len(again) != 0 {
		t.Errorf("second Sweep: %v %v, want nothing", again, err)
	}
}
