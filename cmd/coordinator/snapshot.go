package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/admin"
)

// envAdminToken is where the admin clients (snapshot, prestop, status) find the
// operate token by default; envAdminReadToken is the read token status falls back on.
const (
	envAdminToken     = "SHARDMATCH_ADMIN_TOKEN"
	envAdminReadToken = "SHARDMATCH_ADMIN_READ_TOKEN"
)

// runSnapshot is `coordinator snapshot save|restore|inspect`: back up the whole
// replicated state through the leader's admin API, restore it, or verify a file. It
// exits 0 on success, 1 on failure, 2 on bad usage.
func runSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func(w io.Writer) {
		fmt.Fprintln(w, "usage: coordinator snapshot save    --addr URL[,URL...] -o FILE\n"+
			"       coordinator snapshot restore --addr URL[,URL...] [--force] [--min-index N] FILE\n"+
			"       coordinator snapshot inspect [--json] FILE\n\n"+
			"Back up the cluster's whole state (transactions, leases, shards) from the leader, restore a\n"+
			"backup onto a cluster, or verify a backup file. Restore is for disaster recovery into a\n"+
			"fresh cluster: see docs/operations.md, \"Backup and restore\". The admin token comes from\n"+
			"$"+envAdminToken+" or --admin-token. Run 'coordinator snapshot <verb> --help' for flags.")
	}
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "save":
		return snapshotSave(ctx, args[1:], stdout, stderr)
	case "restore":
		return snapshotRestore(ctx, args[1:], stdout, stderr)
	case "inspect":
		return snapshotInspect(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "coordinator snapshot: unknown verb %q\n", args[0])
	usage(stderr)
	return 2
}

// clientFlags are the flags save and restore share.
type clientFlags struct {
	addrs, token, ca *string
	timeout          *time.Duration
}

func addClientFlags(fs *flag.FlagSet) clientFlags {
	return clientFlags{
		addrs: fs.String("addr", "http://127.0.0.1:8080", "admin API `URLs` of the nodes, comma-separated; the leader is found among them"),
		token: fs.String("admin-token", "", "admin bearer `token` (default $"+envAdminToken+")"),
		ca: fs.String("admin-ca", os.Getenv(envAdminCA), "CA `file` to trust for https:// URLs (default $"+envAdminCA+
			"); with it a bare host:port means https"),
		timeout: fs.Duration("timeout", 10*time.Minute, "bound on the whole operation"),
	}
}

func (f clientFlags) resolve(fs *flag.FlagSet) ([]string, *admin.SnapshotClient, error) {
	var urls []string
	for _, u := range strings.Split(*f.addrs, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 || *f.timeout <= 0 {
		return nil, nil, fmt.Errorf("%s: --addr needs at least one URL and --timeout must be > 0", fs.Name())
	}
	tok := *f.token
	if tok == "" {
		tok = os.Getenv(envAdminToken)
	}
	hc, err := admin.NewHTTPClient(*f.ca, 0) // ctx bounds each call: a snapshot may be large
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", fs.Name(), err)
	}
	for i := range urls {
		urls[i] = admin.BaseURL(urls[i], *f.ca != "")
	}
	return urls, &admin.SnapshotClient{Token: tok, HTTP: hc}, nil
}

// parseWithFile parses flags given before or after one positional FILE.
func parseWithFile(fs *flag.FlagSet, args []string) (file string, code int, done bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return "", 0, true
			}
			return "", 2, true
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		fmt.Fprintf(fs.Output(), "%s: want exactly one FILE, got %d arguments\n", fs.Name(), len(pos))
		fs.Usage()
		return "", 2, true
	}
	return pos[0], 0, false
}

func snapshotSave(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("coordinator snapshot save", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addClientFlags(fs)
	out := fs.String("o", "", "write the snapshot to `FILE` (through FILE.part, renamed once verified)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: coordinator snapshot save --addr URL[,URL...] -o FILE\n\n"+
			"Save a fresh snapshot of the cluster's whole state from the leader.\n\nflags:")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	urls, cl, err := cf.resolve(fs)
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

func snapshotRestore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("coordinator snapshot restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addClientFlags(fs)
	force := fs.Bool("force", false, "restore even a snapshot older than the cluster's state (rolls it back: disaster recovery only)")
	minIndex := fs.Uint64("min-index", 0, "place the restored state after Raft index `N`, so new fencing tokens exceed every token a lost cluster issued up to N (give its last applied index)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: coordinator snapshot restore --addr URL[,URL...] [--force] [--min-index N] FILE\n\n"+
			"Verify FILE, then replace the cluster's whole state with it, through the leader. Meant\n"+
			"for a cluster whose every node lost its data, or a fresh one.\n\nflags:")
		fs.PrintDefaults()
	}
	file, code, done := parseWithFile(fs, args)
	if done {
		return code
	}
	urls, cl, err := cf.resolve(fs)
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

func snapshotInspect(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("coordinator snapshot inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: coordinator snapshot inspect [--json] FILE\n\n"+
			"Verify a snapshot file (format, checksum, loadable state) and print what it holds.\n"+
			"Exits 1 if it does not verify.\n\nflags:")
		fs.PrintDefaults()
	}
	file, code, done := parseWithFile(fs, args)
	if done {
		return code
	}
	f, err := os.Open(file)
	if err != nil {
		fmt.Fprintf(stderr, "coordinator snapshot inspect: %v\n", err)
		return 1
	}
	defer f.Close()
	sum, _, err := coordinator.InspectSnapshot(f, 0)
	if err != nil {
		fmt.Fprintf(stderr, "coordinator snapshot inspect: %s: %v\n", file, err)
		return 1
	}
	info := admin.NewSnapshotInfo(sum)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(info); err != nil {
			fmt.Fprintf(stderr, "coordinator snapshot inspect: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stdout, "file       %s (verified: format %d, SHA-256)\n", file, coordinator.SnapshotFormatVersion)
	fmt.Fprintf(stdout, "index      %d\nterm       %d\nsize       %d bytes of state\n", info.Index, info.Term, info.Size)
	fmt.Fprintf(stdout, "max token  %d\n", info.MaxToken)
	fmt.Fprintf(stdout, "txns       %d (%d preparing, %d decided but undelivered)\n", info.Txns, info.Preparing, info.Undelivered)
	fmt.Fprintf(stdout, "leases     %d\nshards     %d\n", info.Leases, info.Shards)
	return 0
}
