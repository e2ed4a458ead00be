package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/admin"
)

// newSnapshotCmd is `coordinator snapshot save|restore|inspect`: back up the whole
// replicated state through the leader's admin API, restore it, or verify a file. Each
// exits 0 on success, 1 on failure, 2 on bad usage.
func newSnapshotCmd() *cobra.Command {
	c := cli.Group(&cobra.Command{
		Use:   "snapshot",
		Short: "Save, restore or inspect a backup of the cluster's whole state",
		Long: "Back up the cluster's whole state (transactions, leases, shards) from the leader, restore a\n" +
			"backup onto a cluster, or verify a backup file. Restore is for disaster recovery into a\n" +
			"fresh cluster: see docs/operations.md, \"Backup and restore\". The admin token comes from\n" +
			"$" + envAdminToken + " or --admin-token.",
		Example: "  coordinator snapshot save --endpoints http://127.0.0.1:8080 -o sm-$(date +%Y%m%dT%H%M%S).snap\n" +
			"  coordinator snapshot inspect sm-....snap\n" +
			"  coordinator snapshot restore --endpoints http://127.0.0.1:8080 --min-index N sm-....snap",
	})
	save := goFlagsCmd(&cobra.Command{
		Use:     "save -o FILE",
		Short:   "Save a fresh snapshot of the cluster's whole state from the leader",
		Long:    "Save a fresh snapshot of the cluster's whole state from the leader, found among --endpoints.",
		Example: "  coordinator snapshot save --endpoints http://127.0.0.1:8080 -o sm.snap",
		Args:    cli.NoArgs,
	}, defineSnapshotSave, map[string]string{"o": "out"})
	restore := goFlagsCmd(&cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the cluster's whole state with a snapshot file",
		Long: "Verify FILE, then replace the cluster's whole state with it, through the leader. Meant\n" +
			"for a cluster whose every node lost its data, or a fresh one.",
		Example: "  coordinator snapshot restore --endpoints http://127.0.0.1:8080 --min-index 1234 sm.snap",
		Args:    cli.ExactArgs(1, "FILE"),
	}, defineSnapshotRestore, nil)
	inspect := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Verify a snapshot file and print what it holds",
		Long: "Verify a snapshot file (format, checksum, loadable state) and print what it holds.\n" +
			"Exits 1 if it does not verify.",
		Example: "  coordinator snapshot inspect sm.snap\n  coordinator snapshot inspect sm.snap -o json",
		Args:    cli.ExactArgs(1, "FILE"),
	}
	out := cli.AddOutputFlag(inspect)
	asJSON := inspect.Flags().Bool("json", false, "print the summary as JSON")
	cli.Deprecate(inspect.Flags(), "json", "-o json")
	inspect.RunE = func(c *cobra.Command, args []string) error {
		if *asJSON {
			out.Format = cli.JSON
		}
		return snapshotInspect(args[0], out, c.OutOrStdout())
	}
	cli.Deprecate(save.Flags(), "addr", "--endpoints")
	cli.Deprecate(restore.Flags(), "addr", "--endpoints")
	c.AddCommand(save, restore, inspect)
	return c
}

// clientFlags are the flags save and restore share.
type clientFlags struct {
	addrs, token, ca *string
	timeout          *time.Duration
}

func addClientFlags(fs *flag.FlagSet) clientFlags {
	f := clientFlags{
		addrs: fs.String("endpoints", "", "admin API `URLs` of the nodes, comma-separated; the leader is found among them "+
			"(default $"+envEndpoints+", else "+defaultEndpoint+"; --addr is the old name)"),
		token: fs.String("admin-token", "", "admin bearer `token` (default $"+envAdminToken+")"),
		ca: fs.String("admin-ca", "", "CA `file` to trust for https:// URLs (default $"+envAdminCA+
			"); with it a bare host:port means https"),
		timeout: fs.Duration("timeout", 10*time.Minute, "bound on the whole operation"),
	}
	fs.StringVar(f.addrs, "addr", "", "admin API `URLs` of the nodes (the old name of --endpoints)")
	return f
}

func (f clientFlags) resolve(name string) ([]string, *admin.SnapshotClient, error) {
	var urls []string
	addrs := *f.addrs
	if addrs == "" {
		addrs = os.Getenv(envEndpoints)
	}
	if addrs == "" {
		addrs = defaultEndpoint
	}
	if *f.ca == "" {
		*f.ca = os.Getenv(envAdminCA)
	}
	for _, u := range strings.Split(addrs, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 || *f.timeout <= 0 {
		return nil, nil, fmt.Errorf("%s: --endpoints needs at least one URL and --timeout must be > 0", name)
	}
	tok := *f.token
	if tok == "" {
		tok = os.Getenv(envAdminToken)
	}
	hc, err := admin.NewHTTPClient(*f.ca, 0) // ctx bounds each call: a snapshot may be large
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	for i := range urls {
		urls[i] = admin.BaseURL(urls[i], *f.ca != "")
	}
	return urls, &admin.SnapshotClient{Token: tok, HTTP: hc}, nil
}

func defineSnapshotSave(fs *flag.FlagSet) legacyRun {
	cf := addClientFlags(fs)
	out := fs.String("o", "", "write the snapshot to `FILE` (through FILE.part, renamed once verified)")
	return func(ctx context.Context, _ []string, stdout, stderr io.Writer) int {
		return snapshotSave(ctx, cf, *out, stdout, stderr)
	}
}

func snapshotSave(ctx context.Context, cf clientFlags, file string, stdout, stderr io.Writer) int {
	out := &file
	urls, cl, err := cf.resolve("coordinator snapshot save")
	if err == nil && *out == "" {
		err = errors.New("coordinator snapshot save: -o FILE is required")
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *cf.timeout)
	defer cancel()
	saved, err := saveSnapshotFile(ctx, cl, urls, *out)
	if err != nil {
		fmt.Fprintf(stderr, "coordinator snapshot save: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "saved %s: index %d, term %d, %d bytes, from %s (verified)\n",
		*out, saved.Index, saved.Term, saved.Bytes, saved.Endpoint)
	return 0
}

// saveSnapshotFile downloads into path.part, syncs and verifies it, then renames it
// to path: path never holds a partial or corrupt snapshot.
func saveSnapshotFile(ctx context.Context, cl *admin.SnapshotClient, urls []string, path string) (admin.SavedSnapshot, error) {
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return admin.SavedSnapshot{}, err
	}
	fail := func(err error) (admin.SavedSnapshot, error) {
		_ = f.Close()
		_ = os.Remove(part)
		return admin.SavedSnapshot{}, err
	}
	saved, err := cl.Save(ctx, urls, f)
	if err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	rf, err := os.Open(part)
	if err != nil {
		return fail(err)
	}
	_, err = coordinator.ReadSnapshot(bufio.NewReader(rf), io.Discard, 0)
	_ = rf.Close()
	if err != nil {
		return fail(fmt.Errorf("the downloaded file does not verify: %w", err))
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(part)
		return admin.SavedSnapshot{}, err
	}
	if err := os.Rename(part, path); err != nil {
		_ = os.Remove(part)
		return admin.SavedSnapshot{}, err
	}
	return saved, nil
}

func defineSnapshotRestore(fs *flag.FlagSet) legacyRun {
	cf := addClientFlags(fs)
	force := fs.Bool("force", false, "restore even a snapshot older than the cluster's state (rolls it back: disaster recovery only)")
	minIndex := fs.Uint64("min-index", 0, "place the restored state after Raft index `N`, so new fencing tokens exceed every token a lost cluster issued up to N (give its last applied index)")
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		return snapshotRestore(ctx, cf, args[0], *force, *minIndex, stdout, stderr)
	}
}

func snapshotRestore(ctx context.Context, cf clientFlags, file string, forceFlag bool, minIndexFlag uint64, stdout, stderr io.Writer) int {
	force, minIndex := &forceFlag, &minIndexFlag
	urls, cl, err := cf.resolve("coordinator snapshot restore")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	f, err := os.Open(file)
	if err != nil {
		fmt.Fprintf(stderr, "coordinator snapshot restore: %v\n", err)
		return 1
	}
	defer f.Close()
	// Refuse a bad file here, before the cluster is asked to do anything (the leader
	// verifies it again, and decodes the state).
	if _, err := coordinator.ReadSnapshot(bufio.NewReader(f), io.Discard, 0); err != nil {
		fmt.Fprintf(stderr, "coordinator snapshot restore: %s: %v\n", file, err)
		return 1
	}
	fi, err := f.Stat()
	if err != nil {
		fmt.Fprintf(stderr, "coordinator snapshot restore: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, *cf.timeout)
	defer cancel()
	res, err := cl.Restore(ctx, urls, f, fi.Size(), admin.RestoreParams{Force: *force, MinIndex: *minIndex})
	if err != nil {
		fmt.Fprintf(stderr, "coordinator snapshot restore: %v\n", err)
		return 1
	}
	forced := ""
	if res.Forced {
		forced = " (forced over newer state)"
	}
	fmt.Fprintf(stdout, "restored %s: snapshot index %d, term %d; the cluster now continues from index %d, was at %d%s\n",
		file, res.Snapshot.Index, res.Snapshot.Term, res.Index, res.PreviousIndex, forced)
	return 0
}

func snapshotInspect(file string, out *cli.OutputValue, stdout io.Writer) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sum, _, err := coordinator.InspectSnapshot(f, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	info := admin.NewSnapshotInfo(sum)
	return out.Print(stdout, info, func(stdout io.Writer) error {
		fmt.Fprintf(stdout, "file       %s (verified: format %d, SHA-256)\n", file, coordinator.SnapshotFormatVersion)
		fmt.Fprintf(stdout, "index      %d\nterm       %d\nsize       %d bytes of state\n", info.Index, info.Term, info.Size)
		fmt.Fprintf(stdout, "max token  %d\n", info.MaxToken)
		fmt.Fprintf(stdout, "txns       %d (%d preparing, %d decided but undelivered)\n", info.Txns, info.Preparing, info.Undelivered)
		_, err := fmt.Fprintf(stdout, "leases     %d\nshards     %d\n", info.Leases, info.Shards)
		return err
	})
}
