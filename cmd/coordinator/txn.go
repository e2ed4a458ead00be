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

// txnStates are the values of `txn list --state`.
var txnStates = []string{"preparing", "committed", "aborted", "undelivered", "stuck", "all"}

// newTxnCmd is `coordinator txn`: find, read and operate on transactions.
func newTxnCmd() *cobra.Command {
	c := cli.Group(&cobra.Command{
		Use:   "txn",
		Short: "Find, read, abort and redrive transactions",
		Long: "Find transactions (list), read one (get), and operate on one with the operate token: force-abort\n" +
			"an undecided one (abort), re-send a decision to the shards that have not acked it (redrive),\n" +
			"or record the ack of a retired (disabled) shard (resolve).",
		Example: "  coordinator txn list --state stuck\n  coordinator txn get p-42 -o yaml\n  coordinator txn abort 0190c3e2-...",
	})
	c.AddCommand(newTxnGetCmd(), newTxnListCmd(), newTxnAbortCmd(), newTxnRedriveCmd(), newTxnResolveCmd())
	return c
}

func newTxnGetCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "get ID",
		Short:   "Show one transaction, by txid or proposal id",
		Long:    "Show one transaction, by txid or proposal id, as the leader knows it (linearizable; any node's URL will do).",
		Example: "  coordinator txn get p-42\n  coordinator txn get 0190c3e2-... -o json",
		Args:    cli.ExactArgs(1, "ID"),
	}
	cf := addClusterFlags(c, false)
	out := cli.AddOutputFlag(c)
	c.RunE = cf.runE(out, func(ctx context.Context, cl *admin.APIClient, args []string) (answer, error) {
		rec, raw, err := cl.Txn(ctx, args[0])
		if err != nil {
			return answer{}, err
		}
		return answer{raw, func(w io.Writer) error { return printTxn(w, rec) }}, nil
	})
	return c
}

func newTxnListCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "list",
		Short: "List transactions: in flight, stuck, or by state, age and shard",
		Long: "List transactions from a node's replicated state. Without --state, every unfinished one;\n" +
			"stuck: PREPARING past its deadline, or decided but unacked by a shard for longer than\n" +
			"--older-than. --since takes an RFC 3339 time or a duration before now. The list is one page\n" +
			"of at most --limit; --all follows the cursors to the end.",
		Example: "  coordinator txn list\n  coordinator txn list --state stuck --older-than 1m\n" +
			"  coordinator txn list --state all --since 10m --shard s1 --all -o json",
		Args: cli.NoArgs,
	}
	cf := addClusterFlags(c, false)
	out := cli.AddOutputFlag(c)
	var q admin.TxnQuery
	var olderThan time.Duration
	var all bool
	fs := c.Flags()
	fs.StringVar(&q.State, "state", "", "`state`: "+strings.Join(txnStates, ", ")+" (default: every unfinished one)")
	fs.StringVar(&q.Since, "since", "", "only txns begun at or after this `time` (RFC 3339, or a duration before now like 10m)")
	fs.StringVar(&q.Shard, "shard", "", "only txns touching this shard `id`")
	fs.IntVar(&q.Limit, "limit", 0, "most txns per page (default: the server's)")
	fs.Var(cli.DurationValue{D: &olderThan}, "older-than", "with --state stuck: decided but unacked for longer than this (default: the server's, 30s)")
	fs.BoolVar(&all, "all", false, "follow the cursors: every matching txn, not one page")
	_ = c.RegisterFlagCompletionFunc("state", cobra.FixedCompletions(txnStates, cobra.ShellCompDirectiveNoFileComp))
	c.RunE = func(c *cobra.Command, _ []string) error {
		if q.State != "" && !contains(txnStates, q.State) {
			return cli.Usagef("--state %q: want one of %s", q.State, strings.Join(txnStates, ", "))
		}
		if q.Since != "" {
			if _, err := time.ParseDuration(q.Since); err != nil {
				if _, err := time.Parse(time.RFC3339, q.Since); err != nil {
					return cli.Usagef("--since %q: want an RFC 3339 time (2026-12-05T08:00:00Z) or a Go duration like 5s or 2m", q.Since)
				}
			}
		}
		if q.Limit < 0 {
			return cli.Usagef("--limit must be >= 0")
		}
		if olderThan > 0 {
			q.OlderThan = olderThan.String()
		}
		cl, ctx, done, err := cf.client(c.Context())
		if err != nil {
			return err
		}
		defer done()
		var page *admin.TxnPage
		if all {
			page, err = cl.ListAllTxns(ctx, q, 0)
		} else {
			page, err = cl.ListTxns(ctx, q)
		}
		if err != nil {
			return err
		}
		recs, err := page.Records()
		if err != nil {
			return err
		}
		return out.Print(c.OutOrStdout(), page, func(w io.Writer) error {
			if err := printTxnTable(w, recs); err != nil {
				return err
			}
			if page.NextCursor != "" || page.Truncated {
				_, err = fmt.Fprintf(c.ErrOrStderr(), "%d of %d shown; --all lists every one\n", len(recs), page.Total)
			}
			return err
		})
	}
	return c
}

func newTxnAbortCmd() *cobra.Command {
	return txnActionCmd("abort", "Force-abort an undecided transaction (operate)",
		"Force-abort an undecided (PREPARING) transaction: the leader decides ABORTED and tells every\n"+
			"shard. A decided transaction is refused (CONFLICT).",
		func(c *cobra.Command, cl *admin.APIClient, id string, out *cli.OutputValue) error {
			r, err := cl.AbortTxn(c.Context(), id)
			if err != nil {
				return err
			}
			return out.Print(c.OutOrStdout(), r, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "aborted %s\n", r.TxID)
				return err
			})
		})
}

func newTxnRedriveCmd() *cobra.Command {
	return txnActionCmd("redrive", "Re-send a decision to the shards that have not acked it (operate)",
		"Re-send the transaction's decision, now, to every shard that has not acked it (its backoff\n"+
			"reset). An undecided or fully acked transaction is refused (CONFLICT).",
		func(c *cobra.Command, cl *admin.APIClient, id string, out *cli.OutputValue) error {
			r, err := cl.RedriveTxn(c.Context(), id)
			if err != nil {
				return err
			}
			return out.Print(c.OutOrStdout(), r, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "redrove %s to %s\n", r.TxID, strings.Join(r.Shards, ", "))
				return err
			})
		})
}

func newTxnResolveCmd() *cobra.Command {
	var shard string
	c := txnActionCmd("resolve", "Record a retired shard's ack of a decision (operate)",
		"Record the ack of a decision on behalf of a shard that is DISABLED (retired), clearing its\n"+
			"dead letter. Refused (CONFLICT) if the shard is not disabled, or the transaction is undecided\n"+
			"or already acked by it.",
		func(c *cobra.Command, cl *admin.APIClient, id string, out *cli.OutputValue) error {
			if shard == "" {
				return cli.Usagef("--shard is required")
			}
			r, err := cl.ResolveTxn(c.Context(), id, shard)
			if err != nil {
				return err
			}
			return out.Print(c.OutOrStdout(), r, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "resolved %s for shard %s\n", id, shard)
				return err
			})
		})
	c.Use = "resolve ID --shard S"
	c.Flags().StringVar(&shard, "shard", "", "the disabled shard's `id` (required)")
	return c
}

// txnActionCmd is an operate command on one transaction ID.
func txnActionCmd(name, short, long string, act func(*cobra.Command, *admin.APIClient, string, *cli.OutputValue) error) *cobra.Command {
	c := &cobra.Command{
		Use:     name + " ID",
		Short:   short,
		Long:    long + "\nNeeds the operate token (--token or $" + envAdminToken + ").",
		Example: "  coordinator txn " + name + " p-42",
		Args:    cli.ExactArgs(1, "ID"),
	}
	if name == "resolve" {
		c.Example = "  coordinator txn resolve p-42 --shard s3"
	}
	cf := addClusterFlags(c, true)
	out := cli.AddOutputFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		cl, ctx, done, err := cf.client(c.Context())
		if err != nil {
			return err
		}
		defer done()
		c.SetContext(ctx)
		return act(c, cl, args[0], out)
	}
	return c
}

// printTxn is `txn get`'s table form: one field a line.
func printTxn(w io.Writer, t *smv1.TxnRecord) error {
	tw := cli.NewTable(w)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	row("txid", t.GetTxid())
	row("proposal", t.GetProposal().GetProposalId())
	row("state", shortEnum(t.GetState().String(), "TXN_STATE_"))
	if d := t.GetDecision(); d != nil {
		row("outcome", shortEnum(d.GetOutcome().String(), "OUTCOME_"))
		if r := d.GetReason(); r != smv1.Reason_REASON_UNSPECIFIED {
			row("reason", shortEnum(r.String(), "REASON_"))
		}
		if m := d.GetMessage(); m != "" {
			row("message", m)
		}
	}
	row("shards", strings.Join(t.GetShards(), ","))
	row("acked", strings.Join(t.GetAcked(), ","))
	players := 0
	for _, team := range t.GetProposal().GetTeams() {
		players += len(team.GetPlayers())
	}
	row("players", players)
	row("token", t.GetToken())
	if t.GetLeaseEnd() != "" {
		row("lease end", t.GetLeaseEnd())
	}
	row("begin index", t.GetBeginIndex())
	return tw.Flush()
}

// printTxnTable is `txn list`'s table form.
func printTxnTable(w io.Writer, recs []*smv1.TxnRecord) error {
	tw := cli.NewTable(w)
	fmt.Fprintln(tw, "TXID\tPROPOSAL\tSTATE\tOUTCOME\tSHARDS\tUNACKED\tBEGIN INDEX")
	for _, t := range recs {
		outcome := "-"
		if d := t.GetDecision(); d != nil {
			outcome = shortEnum(d.GetOutcome().String(), "OUTCOME_")
			if r := d.GetReason(); r != smv1.Reason_REASON_UNSPECIFIED {
				outcome += " (" + shortEnum(r.String(), "REASON_") + ")"
			}
		}
		var unacked []string
		for _, s := range t.GetShards() {
			if !contains(t.GetAcked(), s) {
				unacked = append(unacked, s)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", t.GetTxid(), t.GetProposal().GetProposalId(),
			shortEnum(t.GetState().String(), "TXN_STATE_"), outcome, strings.Join(t.GetShards(), ","),
			dash(strings.Join(unacked, ",")), t.GetBeginIndex())
	}
	return tw.Flush()
}

// shortEnum is a proto enum name without its prefix, lower case: TXN_STATE_DONE → done.
func shortEnum(name, prefix string) string { return strings.ToLower(strings.TrimPrefix(name, prefix)) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
