package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/coordinator/admin"
	"github.com/shardmatch/shardmatch/internal/testutil"
)

// TestOperateCommandsAgainstDev drives the read and operate commands against a real
// cluster (`coordinator dev` in process, its admin APIs on free ports): reads on any
// node, SHARDMATCH_ENDPOINTS, -o json, a follower's NOT_LEADER followed to the leader,
// refusals as exit 1 with the server's code, usage errors as exit 2.
func TestOperateCommandsAgainstDev(t *testing.T) {
	urls := startDev(t)
	all := strings.Join(urls, ",")
	t.Setenv(envEndpoints, all)
	var leaderID string
	testutil.WaitFor(t, 30*time.Second, "a leader and committed matches", func() error {
		code, stdout, stderr := runCmd(t, "txn", "list", "--state", "committed", "--limit", "3", "-o", "json")
		var page admin.TxnPage
		if code != 0 || json.Unmarshal([]byte(stdout), &page) != nil || len(page.Txns) == 0 || page.Total < 10 {
			return fmt.Errorf("txn list: exit %d %s %s", code, stdout, stderr)
		}
		code, stdout, _ = runCmd(t, "cluster", "members", "-o", "json")
		var m struct {
			Leader  string `json:"leader_id"`
			Members []struct {
				ID     string `json:"id"`
				Leader bool   `json:"leader"`
			} `json:"members"`
		}
		if code != 0 || json.Unmarshal([]byte(stdout), &m) != nil || len(m.Members) != 3 {
			return fmt.Errorf("cluster members: exit %d %s", code, stdout)
		}
		for _, s := range m.Members {
			if s.Leader {
				leaderID = s.ID
			}
		}
		if leaderID == "" || leaderID != m.Leader {
			return fmt.Errorf("no leader in %s", stdout)
		}
		return nil
	})
	follower := urls[0]
	if leaderID == "c1" {
		follower = urls[1]
	}
	mustRun := func(want int, args ...string) string {
		t.Helper()
		code, stdout, stderr := runCmd(t, args...)
		if code != want {
			t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, want, stdout, stderr)
		}
		return stdout + stderr
	}
	if out := mustRun(0, "status"); !strings.Contains(out, "3/3 nodes reachable, 3 ready; leader "+leaderID) {
		t.Errorf("status:\n%s", out)
	}
	// A committed txn by txid and by proposal id, linearizable, asked of a follower.
	var page admin.TxnPage
	if err := json.Unmarshal([]byte(mustRun(0, "txn", "list", "--state", "committed", "--limit", "1", "-o", "json")), &page); err != nil {
		t.Fatal(err)
	}
	recs, err := page.Records()
	if err != nil || len(recs) != 1 {
		t.Fatalf("records %v %v", recs, err)
	}
	txid, pid := recs[0].GetTxid(), recs[0].GetProposal().GetProposalId()
	for _, id := range []string{txid, pid} {
		if out := mustRun(0, "txn", "get", id, "--endpoints", follower); !strings.Contains(out, "txid         "+txid) {
			t.Errorf("txn get %s on a follower:\n%s", id, out)
		}
	}
	// Paging: --all follows the cursors to every txn, each once.
	var full admin.TxnPage
	if err := json.Unmarshal([]byte(mustRun(0, "txn", "list", "--state", "all", "--limit", "7", "--all", "-o", "yaml", "-o", "json")), &full); err != nil {
		t.Fatal(err)
	}
	fr, _ := full.Records()
	seen := map[string]bool{}
	for _, r := range fr {
		if seen[r.GetTxid()] {
			t.Fatalf("txn list --all lists %s twice", r.GetTxid())
		}
		seen[r.GetTxid()] = true
	}
	if len(fr) < 8 || !seen[txid] {
		t.Errorf("txn list --all: %d txns (total %d), %s among them: %v", len(fr), full.Total, txid, seen[txid])
	}
	// Shard state through a follower: the CLI follows NOT_LEADER to the leader.
	mustRun(0, "shard", "set-state", "s3", "draining", "--endpoints", follower)
	testutil.WaitFor(t, 10*time.Second, "s3 draining on the follower", func() error {
		if out := mustRun(0, "shard", "list", "--endpoints", follower); !strings.Contains(out, "s3     us-east  draining") {
			return fmt.Errorf("shard list after draining s3:\n%s", out)
		}
		return nil
	})
	mustRun(0, "shard", "set-state", "s3", "active")
	mustRun(2, "shard", "set-state", "s3", "retired")
	mustRun(0, "deadletter", "list", "--older-than", "1h")
	// Refusals: the server's code, exit 1.
	if out := mustRun(1, "txn", "redrive", txid); !strings.Contains(out, "CONFLICT") {
		t.Errorf("redrive of a delivered txn: %s", out)
	}
	if out := mustRun(1, "txn", "abort", txid); !strings.Contains(out, "CONFLICT") {
		t.Errorf("abort of a decided txn: %s", out)
	}
	if out := mustRun(1, "lease", "get", "nobody"); !strings.Contains(out, "NOT_FOUND") {
		t.Errorf("lease of nobody: %s", out)
	}
	mustRun(2, "txn", "get")
	mustRun(2, "txn", "resolve", txid)
	// Leadership moves when asked of a follower, and status sees the new leader.
	mustRun(0, "leader", "transfer", "--endpoints", follower)
	testutil.WaitFor(t, 30*time.Second, "a new leader", func() error {
		if out := mustRun(0, "status"); strings.Contains(out, "leader "+leaderID+"\n") {
			return fmt.Errorf("still %s", leaderID)
		}
		return nil
	})
}
