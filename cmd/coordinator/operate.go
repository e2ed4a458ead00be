package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
	"github.com/shardmatch/shardmatch/coordinator/admin"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// The read and operate commands other than txn: deadletter, lease, shard, cluster,
// leader. Each talks to the cluster through clusterFlags and prints with -o.

func newDeadletterCmd() *cobra.Command {
	c := cli.Group(&cobra.Command{
		Use:   "deadletter",
		Short: "List decisions a shard has not acked in time",
		Long: "Dead letters are decisions a shard has not acked for longer than a threshold, or that\n" +
			"belong to a shard an operator retired (disabled). Clear them with 'coordinator txn redrive'\n" +
			"or, for a disabled shard, 'coordinator txn resolve ID --shard S'.",
		Example: "  coordinator deadletter list --older-than 5m",
	})
	l := &cobra.Command{
		Use:     "list",
		Short:   "List the dead letters with their age and delivery attempts",
		Long:    "List the dead letters: decisions unacked for longer than --older-than, or of a disabled shard.",
		Example: "  coordinator deadletter list\n  coordinator deadletter list --older-than 5m -o json",
		Args:    cli.NoArgs,
	}
	cf := addClusterFlags(l, false)
	out := cli.AddOutputFlag(l)
	var olderThan time.Duration
	l.Flags().Var(cli.DurationValue{D: &olderThan}, "older-than", "unacked for longer than this (default: the server's, 1m)")
	l.RunE = cf.runE(out, func(ctx context.Context, cl *admin.APIClient, _ []string) (answer, error) {
		arg := ""
		if olderThan > 0 {
			arg = olderThan.String()
		}
		d, err := cl.DeadLetters(ctx, arg)
		if err != nil {
			return answer{}, err
		}
		return answer{d, func(w io.Writer) error {
			tw := cli.NewTable(w)
			fmt.Fprintln(tw, "TXID\tSHARD\tOUTCOME\tAGE\tATTEMPTS\tSHARD STATE")
			for _, e := range d.DeadLetters {
				attempts := fmt.Sprint(e.Attempts)
				if e.Attempts < 0 {
					attempts = "?"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.TxID, e.Shard, strings.ToLower(e.Outcome),
					(time.Duration(e.AgeSeconds * float64(time.Second))).Round(time.Second), attempts, strings.ToLower(e.ShardState))
			}
			return tw.Flush()
		}}, nil
	})
	c.AddCommand(l)
	return c
}

func newLeaseCmd() *cobra.Command {
	c := cli.Group(&cobra.Command{
		Use:     "lease",
		Short:   "Look up a player's lease",
		Example: "  coordinator lease get s1-p00042",
	})
	g := &cobra.Command{
		Use:     "get PLAYER",
		Short:   "Show the lease a player holds: its transaction, token and state",
		Long:    "Show the lease a player holds, from a node's replicated state: NOT_FOUND if it holds none.",
		Example: "  coordinator lease get s1-p00042\n  coordinator lease get s1-p00042 -o json",
		Args:    cli.ExactArgs(1, "PLAYER"),
	}
	cf := addClusterFlags(g, false)
	out := cli.AddOutputFlag(g)
	g.RunE = cf.runE(out, func(ctx context.Context, cl *admin.APIClient, args []string) (answer, error) {
		l, raw, err := cl.Lease(ctx, args[0])
		if err != nil {
			return answer{}, err
		}
		return answer{raw, func(w io.Writer) error {
			tw := cli.NewTable(w)
			fmt.Fprintln(tw, "PLAYER\tTXID\tSTATE\tTOKEN\tTTL\tRENEWALS")
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\n", l.GetPlayerId(), l.GetTxid(), shortEnum(l.GetState().String(), "LEASE_STATE_"),
				l.GetToken(), time.Duration(l.GetTtlMs())*time.Millisecond, l.GetRenewSeq())
			return tw.Flush()
		}}, nil
	})
	c.AddCommand(g)
	return c
}

// shardStates are the values of `shard set-state`.
var shardStates = []string{"active", "draining", "disabled"}

func newShardCmd() *cobra.Command {
	c := cli.Group(&cobra.Command{
		Use:     "shard",
		Short:   "List shards, drain or retire one",
		Example: "  coordinator shard list\n  coordinator shard set-state s3 draining",
	})
	l := &cobra.Command{
		Use:     "list",
		Short:   "List the registered shards and their state",
		Example: "  coordinator shard list\n  coordinator shard list -o yaml",
		Args:    cli.NoArgs,
	}
	cf := addClusterFlags(l, false)
	out := cli.AddOutputFlag(l)
	l.RunE = cf.runE(out, func(ctx context.Context, cl *admin.APIClient, _ []string) (answer, error) {
		shards, raw, err := cl.Shards(ctx)
		if err != nil {
			return answer{}, err
		}
		return answer{map[string]any{"shards": raw}, func(w io.Writer) error {
			tw := cli.NewTable(w)
			fmt.Fprintln(tw, "SHARD\tREGION\tSTATE\tCAPACITY\tPROTOCOL")
			for _, s := range shards {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", s.GetShardId(), s.GetRegion(), shardState(s), s.GetCapacity(), s.GetProtocolVersion())
			}
			return tw.Flush()
		}}, nil
	})
	set := &cobra.Command{
		Use:   "set-state ID active|draining|disabled",
		Short: "Set a shard's state: active, draining (no new matches) or disabled (retired) (operate)",
		Long: "Set a shard's state through Raft: active takes new matches, draining takes none but finishes\n" +
			"its transactions, disabled retires it (its dead letters can then be resolved). Needs the\n" +
			"operate token (--token or $" + envAdminToken + ").",
		Example:   "  coordinator shard set-state s3 draining\n  coordinator shard set-state s3 disabled",
		Args:      cli.ExactArgs(2, "ID", "STATE"),
		ValidArgs: shardStates,
	}
	scf := addClusterFlags(set, true)
	sout := cli.AddOutputFlag(set)
	set.RunE = scf.runE(sout, func(ctx context.Context, cl *admin.APIClient, args []string) (answer, error) {
		if !contains(shardStates, args[1]) {
			return answer{}, cli.Usagef("state %q: want active, draining or disabled", args[1])
		}
		r, err := cl.SetShardState(ctx, args[0], args[1])
		if err != nil {
			return answer{}, err
		}
		return answer{r, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "shard %s is %s\n", args[0], args[1])
			return err
		}}, nil
	})
	c.AddCommand(l, set)
	return c
}

func shardState(s *smv1.ShardInfo) string {
	st := shortEnum(s.GetState().String(), "SHARD_STATE_")
	if st == "unspecified" {
		return "active"
	}
	return st
}

func newClusterCmd() *cobra.Command {
	c := cli.Group(&cobra.Command{
		Use:     "cluster",
		Short:   "Show the cluster's Raft members",
		Example: "  coordinator cluster members",
	})
	m := &cobra.Command{
		Use:     "members",
		Short:   "List the Raft configuration: every server, its suffrage and the leader",
		Long:    "List the Raft configuration as the first node that answers sees it: id, Raft address, suffrage, leader.",
		Example: "  coordinator cluster members\n  coordinator cluster members -o json",
		Args:    cli.NoArgs,
	}
	cf := addClusterFlags(m, false)
	out := cli.AddOutputFlag(m)
	m.RunE = cf.runE(out, func(ctx context.Context, cl *admin.APIClient, _ []string) (answer, error) {
		st, err := cl.Status(ctx)
		if err != nil {
			return answer{}, err
		}
		type members struct {
			Term    uint64       `json:"term"`
			Leader  string       `json:"leader_id"`
			Members []admin.Peer `json:"members"`
		}
		return answer{members{Term: st.Term, Leader: st.LeaderID, Members: st.Peers}, func(w io.Writer) error {
			tw := cli.NewTable(w)
			fmt.Fprintln(tw, "ID\tRAFT ADDRESS\tSUFFRAGE\tLEADER")
			for _, p := range st.Peers {
				leader := ""
				if p.Leader {
					leader = "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.ID, p.Addr, p.Suffrage, leader)
			}
			return tw.Flush()
		}}, nil
	})
	c.AddCommand(m)
	return c
}

func newLeaderCmd() *cobra.Command {
	c := cli.Group(&cobra.Command{
		Use:     "leader",
		Short:   "Hand leadership over to another node",
		Example: "  coordinator leader transfer\n  coordinator leader transfer --to c2",
	})
	t := &cobra.Command{
		Use:   "transfer",
		Short: "Transfer leadership, to --to or to the server Raft picks (operate)",
		Long: "Ask the leader (found from any node) to hand leadership over, to the voter --to or to the one\n" +
			"Raft picks, and wait until it has. Needs the operate token (--token or $" + envAdminToken + ").",
		Example: "  coordinator leader transfer\n  coordinator leader transfer --to c2 --endpoints http://127.0.0.1:8081",
		Args:    cli.NoArgs,
	}
	cf := addClusterFlags(t, true)
	out := cli.AddOutputFlag(t)
	var to string
	t.Flags().StringVar(&to, "to", "", "the voter `id` to hand leadership to (default: Raft's choice)")
	t.RunE = cf.runE(out, func(ctx context.Context, cl *admin.APIClient, _ []string) (answer, error) {
		addr := ""
		if to != "" {
			st, err := cl.Status(ctx)
			if err != nil {
				return answer{}, err
			}
			for _, p := range st.Peers {
				if p.ID == to {
					addr = p.Addr
				}
			}
			if addr == "" {
				return answer{}, cli.Usagef("--to %q is not a member of the cluster (see 'coordinator cluster members')", to)
			}
		}
		r, err := cl.TransferLeader(ctx, to, addr)
		if err != nil {
			return answer{}, err
		}
		return answer{r, func(w io.Writer) error {
			msg := fmt.Sprintf("leadership transferred from %s", r.From)
			if r.To != "" {
				msg += " to " + r.To
			}
			_, err := fmt.Fprintln(w, msg)
			return err
		}}, nil
	})
	c.AddCommand(t)
	return c
}
