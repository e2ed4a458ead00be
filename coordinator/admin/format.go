package admin

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// FormatCluster prints the cluster at a glance: one row per node (as given; nil
// entries are skipped), then the leader and any disagreement worth an operator's eye.
// LAG is how far the node's applied index trails the highest commit index known: the
// leader's, as the node itself learned it for /readyz, or any node's reported.
func FormatCluster(w io.Writer, nodes []*Status) error {
	var maxCommit uint64
	for _, st := range nodes {
		if st != nil && st.Err == nil {
			maxCommit = max(maxCommit, st.CommitIndex)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tTERM\tCOMMIT\tAPPLIED\tLAG\tLEADER\tREADY\tTXNS\tPREPARING\tUNDELIVERED\tLEASES\tSHARDS\tUPTIME")
	var reachable, ready, total int
	leaders := map[string]bool{}
	claimants := []string{}
	terms := map[uint64]bool{}
	for _, st := range nodes {
		if st == nil {
			continue
		}
		total++
		if st.Err != nil {
			fmt.Fprintf(tw, "%s\tunreachable\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\n", nodeName(st))
			continue
		}
		reachable++
		if st.Ready {
			ready++
		}
		if st.LeaderID != "" {
			leaders[st.LeaderID] = true
		}
		if st.Role == "leader" {
			claimants = append(claimants, nodeName(st))
		}
		terms[st.Term] = true
		role := st.Role
		if st.Role == "leader" && !st.Leading {
			role += " (taking over)"
		}
		leader := st.LeaderID
		if leader == "" {
			leader = "-"
		}
		var lag uint64
		if target := max(maxCommit, st.LeaderCommitIndex); target > st.AppliedIndex {
			lag = target - st.AppliedIndex
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n",
			nodeName(st), role, st.Term, st.CommitIndex, st.AppliedIndex, lag, leader, yesNo(st.Ready),
			st.Counts.Txns, st.Counts.Preparing, st.Counts.Undelivered, st.Counts.Leases, st.Counts.Shards,
			time.Duration(st.UptimeSeconds*float64(time.Second)).Round(time.Second).String())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var sum strings.Builder
	fmt.Fprintf(&sum, "\n%d/%d nodes reachable, %d ready", reachable, total, ready)
	switch ids := sortedKeys(leaders); {
	case len(ids) == 1:
		fmt.Fprintf(&sum, "; leader %s", ids[0])
	case len(ids) == 0 && reachable > 0:
		sum.WriteString("\nWARNING: no node knows a leader")
	case len(ids) > 1:
		fmt.Fprintf(&sum, "\nWARNING: nodes disagree on the leader: %s", strings.Join(ids, ", "))
	}
	if len(claimants) > 1 {
		fmt.Fprintf(&sum, "\nWARNING: several nodes are in the leader state: %s (the stale ones will step down)",
			strings.Join(claimants, ", "))
	}
	if len(terms) > 1 {
		sum.WriteString("\nnote: nodes report different terms (an election is in progress or a node is partitioned)")
	}
	for _, st := range nodes {
		if st != nil && st.Err != nil {
			fmt.Fprintf(&sum, "\n%s: %v", nodeName(st), st.Err)
		} else if st != nil && st.NotReady != "" {
			fmt.Fprintf(&sum, "\n%s not ready: %s", nodeName(st), st.NotReady)
		}
	}
	sum.WriteString("\n")
	_, err := io.WriteString(w, sum.String())
	return err
}

func nodeName(st *Status) string {
	if st.NodeID != "" {
		return st.NodeID
	}
	if st.Endpoint != "" {
		return st.Endpoint
	}
	return "?"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
