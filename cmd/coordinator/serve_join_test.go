package main

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/coordinator/admin"
	"github.com/shardmatch/shardmatch/internal/testutil"
)

// voters lists the voters in st's view of the Raft configuration, sorted.
func voters(st *admin.Status) []string {
	var out []string
	for _, p := range st.Peers {
		if p.Suffrage == "voter" {
			out = append(out, p.ID)
		}
	}
	sort.Strings(out)
	return out
}

// TestMultiProcessJoin grows a cluster through `serve --join`: one node bootstraps
// alone, two more join through its admin API with the admin token, and all three
// see three voters. Matches commit; the original node is killed with SIGKILL and the
// joined pair, still a quorum of the three, elects a leader and keeps committing. The
// original node restarts on its data (its --bootstrap is ignored: it has Raft state)
// and follows the new leader.
func TestMultiProcessJoin(t *testing.T) {
	d := newDeployment(t)
	d.startNATS()
	p1 := freePort(t)
	c1 := d.startNode("c1", p1, "--peers", fmt.Sprintf("c1=127.0.0.1:%d", p1), "--bootstrap")
	testutil.WaitFor(t, 30*time.Second, "c1 leading alone", func() error {
		st := statuses([]string{c1.adminURL})[0]
		if st.Err != nil {
			return st.Err
		}
		if !st.Leading {
			return fmt.Errorf("c1 is %s", st.Role)
		}
		return nil
	})
	for _, id := range []string{"c2", "c3"} {
		d.startNode(id, freePort(t), "--join", c1.adminURL)
	}
	want := []string{"c1", "c2", "c3"}
	testutil.WaitFor(t, 30*time.Second, "three voters at every node", func() error {
		for _, st := range statuses(d.adminURLs()) {
			if st.Err != nil {
				return st.Err
			}
			if got := voters(st); strings.Join(got, ",") != strings.Join(want, ",") {
				return fmt.Errorf("%s sees voters %v", st.NodeID, got)
			}
			if st.LeaderID != "c1" {
				return fmt.Errorf("%s sees leader %q", st.NodeID, st.LeaderID)
			}
		}
		return nil
	})

	s1 := d.startShard("s1", "--propose-rate", "20", "--peer-shards", "s2", "--inflight", "4")
	d.startShard("s2")
	committed := func(more uint64) uint64 {
		var c uint64
		testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("%d more commits", more), func() error {
			s, err := d.shardStatus(s1.id)
			if err != nil {
				return err
			}
			if s.Driver == nil {
				return fmt.Errorf("s1 runs no driver")
			}
			if c = s.Driver.Committed; c < more {
				return fmt.Errorf("%d commits", c)
			}
			return nil
		})
		return c
	}
	before := committed(5)

	c1.kill()
	li := d.waitLeader("c1")
	if id := d.nodes[li].id; id != "c2" && id != "c3" {
		t.Fatalf("leader after c1 died: %s", id)
	}
	committed(before + 5)
	st := statuses([]string{d.nodes[li].adminURL})[0]
	if got := voters(st); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("after c1 died, %s sees voters %v", st.NodeID, got)
	}

	// c1 comes back on its data and follows.
	c1.start(t)
	testutil.WaitFor(t, 30*time.Second, "c1 following the new leader", func() error {
		st := statuses([]string{c1.adminURL})[0]
		if st.Err != nil {
			return st.Err
		}
		if st.Role != "follower" || st.LeaderID != d.nodes[li].id {
			return fmt.Errorf("c1 is %s, leader %q", st.Role, st.LeaderID)
		}
		return nil
	})
}
