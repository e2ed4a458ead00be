package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/internal/testutil"
)

// TestMultiProcessStatefulSetStyle runs real `serve` processes as the chart's
// StatefulSet does: every node with the same --bootstrap --peers P --join J, peers
// and --raft-advertise named by a DNS name (localhost here), never an IP.
//   - The three ids of P bootstrap one cluster; every node sees the named addresses.
//   - A 4th node started with the same P and J joins as a voter.
//   - /metrics: txns in doubt for a shard rise while it is down and fall once it is
//     back; the NATS gauges follow a NATS restart.
//   - `coordinator prestop` hands leadership over on the leader, does nothing on a
//     follower, and fails with one line without a token or a node.
func TestMultiProcessStatefulSetStyle(t *testing.T) {
	d := newDeployment(t)
	d.startNATS()
	const n = 3
	raftPorts, adminPorts := make([]int, n+1), make([]int, n+1)
	var peers, joins []string
	for i := range n + 1 {
		raftPorts[i], adminPorts[i] = freePort(t), freePort(t)
		if i < n {
			peers = append(peers, fmt.Sprintf("c%d=localhost:%d", i+1, raftPorts[i]))
			joins = append(joins, fmt.Sprintf("http://localhost:%d", adminPorts[i]))
		}
	}
	common := []string{"--bootstrap", "--peers", strings.Join(peers, ","), "--join", strings.Join(joins, ",")}
	start := func(i int) *coordNode {
		return d.startNodeAt(fmt.Sprintf("c%d", i+1), raftPorts[i], adminPorts[i],
			append(common, "--raft-advertise", fmt.Sprintf("localhost:%d", raftPorts[i]))...)
	}
	for i := range n {
		start(i)
	}
	d.waitLeader("")
	formed := func(want []string) {
		t.Helper()
		testutil.WaitFor(t, 40*time.Second, fmt.Sprintf("voters %v, named, at every node, all ready", want), func() error {
			for _, st := range statuses(d.adminURLs()) {
				if st.Err != nil {
					return st.Err
				}
				if got := voters(st); strings.Join(got, ",") != strings.Join(want, ",") {
					return fmt.Errorf("%s sees voters %v", st.NodeID, got)
				}
				for _, p := range st.Peers {
					if !strings.HasPrefix(p.Addr, "localhost:") {
						return fmt.Errorf("%s sees %s at %q, not by name", st.NodeID, p.ID, p.Addr)
					}
				}
				if !st.Ready || st.LeaderCommitIndex == 0 || st.LeaderCommitIndex < st.CommitIndex {
					return fmt.Errorf("%s: ready %v (%s), leader commit %d, own commit %d", st.NodeID, st.Ready, st.NotReady,
						st.LeaderCommitIndex, st.CommitIndex)
				}
			}
			return nil
		})
	}
	formed([]string{"c1", "c2", "c3"})
	// Had c4 bootstrapped instead, it would lead a cluster of its own that the
	// others never list.
	start(n)
	formed([]string{"c1", "c2", "c3", "c4"})

	// /readyz and /v1/status agree on every node.
	hc := &http.Client{Timeout: 3 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	for _, nd := range d.nodes {
		resp, err := hc.Get(nd.adminURL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s /readyz %d while /v1/status says ready", nd.id, resp.StatusCode)
		}
	}

	// Txns in doubt for a shard that is down.
	d.startShard("s1", "--propose-rate", "20", "--peer-shards", "s2", "--inflight", "4")
	s2 := d.startShard("s2")
	d.waitRegistered("s1", "s2")
	metric := func(name string, labels ...string) func() (float64, error) {
		return func() (float64, error) {
			li, err := d.leader("")
			if err != nil {
				return 0, err
			}
			text, err := getText(d.nodes[li].adminURL + "/metrics")
			if err != nil {
				return 0, err
			}
			v, ok := metricSum(text, name, labels...)
			if !ok {
				return 0, fmt.Errorf("no %s%v on %s", name, labels, d.nodes[li].id)
			}
			return v, nil
		}
	}
	waitMetric := func(what string, read func() (float64, error), ok func(float64) bool) {
		t.Helper()
		testutil.WaitFor(t, 40*time.Second, what, func() error {
			v, err := read()
			if err != nil {
				return err
			}
			if !ok(v) {
				return fmt.Errorf("value %v", v)
			}
			return nil
		})
	}
	inDoubt := metric("shardmatch_txns_in_doubt", "shard", "s2")
	waitMetric("s2's in-doubt series", inDoubt, func(float64) bool { return true })
	s2.kill()
	waitMetric("txns in doubt at s2 while it is down", inDoubt, func(v float64) bool { return v >= 1 })
	s2.start(t)
	waitMetric("nothing in doubt at s2 once it is back", inDoubt, func(v float64) bool { return v == 0 })
	waitMetric("a raft_lag series", metric("shardmatch_raft_lag"), func(float64) bool { return true })

	// NATS connection gauges, read from one node across a NATS restart.
	c1 := d.nodes[0]
	natsMetric := func(name string) func() (float64, error) {
		return func() (float64, error) {
			text, err := getText(c1.adminURL + "/metrics")
			if err != nil {
				return 0, err
			}
			v, ok := metricSum(text, name)
			if !ok {
				return 0, fmt.Errorf("no %s", name)
			}
			return v, nil
		}
	}
	waitMetric("connected to NATS", natsMetric("shardmatch_nats_connected"), func(v float64) bool { return v == 1 })
	waitMetric("no reconnects yet", natsMetric("shardmatch_nats_reconnects_total"), func(v float64) bool { return v == 0 })
	d.nats.kill()
	waitMetric("disconnected from NATS", natsMetric("shardmatch_nats_connected"), func(v float64) bool { return v == 0 })
	d.nats.start(t)
	waitMetric("connected again", natsMetric("shardmatch_nats_connected"), func(v float64) bool { return v == 1 })
	waitMetric("one reconnect", natsMetric("shardmatch_nats_reconnects_total"), func(v float64) bool { return v >= 1 })

	// prestop.
	prestop := func(url string, withToken bool) (int, string, string) {
		t.Helper()
		cmd := exec.Command(d.coord, "prestop", "--admin-addr", url, "--timeout", "20s")
		cmd.Env = os.Environ()
		for i, kv := range cmd.Env {
			if strings.HasPrefix(kv, "SHARDMATCH_ADMIN_TOKEN=") {
				cmd.Env[i] = "SHARDMATCH_UNRELATED=1"
			}
		}
		if withToken {
			cmd.Env = append(cmd.Env, "SHARDMATCH_ADMIN_TOKEN="+adminToken)
		}
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		_ = cmd.Run()
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}
	li := d.waitLeader("")
	old := d.nodes[li]
	follower := d.nodes[(li+1)%len(d.nodes)]
	if code, out, errOut := prestop(follower.adminURL, true); code != 0 || !strings.Contains(out, "not the leader") {
		t.Errorf("prestop on follower %s: exit %d, %q %q", follower.id, code, out, errOut)
	}
	if code, out, errOut := prestop(old.adminURL, false); code != 1 || !strings.Contains(errOut, "SHARDMATCH_ADMIN_TOKEN") ||
		strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("prestop on leader %s without a token: exit %d, %q %q", old.id, code, out, errOut)
	}
	code, out, errOut := prestop(old.adminURL, true)
	if code != 0 || !strings.Contains(out, "handed leadership to") {
		t.Fatalf("prestop on leader %s: exit %d, %q %q", old.id, code, out, errOut)
	}
	st := statuses([]string{old.adminURL})[0]
	if st.Err != nil || st.Role == "leader" || st.LeaderID == "" || st.LeaderID == old.id {
		t.Errorf("after prestop, %s: role %s, leader %q, err %v", old.id, st.Role, st.LeaderID, st.Err)
	}
	dead := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	if code, out, errOut := prestop(dead, true); code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 ||
		!strings.Contains(errOut, "cannot read the local node's status") {
		t.Errorf("prestop with no node: exit %d, %q %q", code, out, errOut)
	}
}
