package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
	"github.com/shardmatch/shardmatch/internal/fsutil"
	"github.com/shardmatch/shardmatch/internal/natsauth"
)

// newNatsAuthCmd is `coordinator nats-auth init|user|revoke`. Each exits 0 on success,
// 1 on failure, 2 on bad usage; nothing is written on error.
func newNatsAuthCmd() *cobra.Command {
	c := cli.Group(&cobra.Command{
		Use:   "nats-auth",
		Short: "Generate NATS JWT auth: per-role credentials with subject permissions",
		Long: `Generate NATS decentralized (JWT) auth for a deployment. 'init' makes an operator, a system
account and the deployment's account (JetStream on, with limits) in DIR: JWTs, seeds (0600,
secret), nats-server.conf (include it from a stock nats-server, or run 'coordinator nats
--auth-dir DIR') and coordinator.creds. 'user' signs credentials for one identity of a role:

  coordinator   every deployment subject, the JetStream API, replies to any inbox
  shard         its own vote, ack and register subjects, status, and only its own durable
                consumer shard-ID on its own command subject
  proposer      its own intake subject <p>.v1.req.propose.proposer-ID, status, lease
  observer      consumers on the events stream only

Users are signed by the account's signing key and are not in the server's configuration:
a new shard's credentials work at once, without restarting NATS. 'revoke' revokes a
user's credentials in the account JWT (and, with --nats-url, pushes it to the running
servers with the system user); restart servers started from the old nats-server.conf
with the new one.`,
		Example: "  coordinator nats-auth init --out auth\n" +
			"  coordinator nats-auth user --dir auth --role shard --id s1 --out s1.creds\n" +
			"  coordinator nats-auth revoke --dir auth --creds s1.creds --nats-url nats://127.0.0.1:4222",
	})
	c.AddCommand(
		goFlagsCmd(&cobra.Command{
			Use:     "init --out DIR",
			Short:   "Make a new deployment's NATS auth in DIR",
			Long:    "Make a new deployment's NATS auth in DIR (created 0700; refused if it already holds one).",
			Example: "  coordinator nats-auth init --out auth --prefix sm",
			Args:    cli.NoArgs,
		}, natsAuthInit, nil),
		goFlagsCmd(&cobra.Command{
			Use:     "user --dir DIR --role ROLE --id ID",
			Short:   "Sign credentials for one identity of a role",
			Long:    "Sign credentials for one identity: user <role>-<id>, with exactly its role's permissions.",
			Example: "  coordinator nats-auth user --dir auth --role coordinator --id sm --out coordinator.creds",
			Args:    cli.NoArgs,
		}, natsAuthUser, nil),
		goFlagsCmd(&cobra.Command{
			Use:   "revoke --dir DIR (--creds FILE | --user-key U...)",
			Short: "Revoke a user's credentials",
			Long: "Revoke a user's credentials (every JWT issued to its key until now) in the account JWT,\n" +
				"rewrite account.jwt and nats-server.conf, and with --nats-url push the account to the\n" +
				"running servers, which then close the user's connections and refuse it.",
			Example: "  coordinator nats-auth revoke --dir auth --creds old.creds --nats-url nats://127.0.0.1:4222",
			Args:    cli.NoArgs,
		}, natsAuthRevoke, nil),
	)
	return c
}

func natsAuthInit(fs *flag.FlagSet) legacyRun {
	out := fs.String("out", "", "`directory` to write the deployment to (required)")
	prefix := fs.String("prefix", "sm", "subject `prefix` of the deployment (as serve's --prefix)")
	coordID := fs.String("coordinator-id", natsauth.DefaultCoordID, "identity of the coordinator credentials written as coordinator.creds (user coordinator-`ID`; nodes may share it)")
	var lim natsauth.Limits
	fs.Int64Var(&lim.MaxConnections, "max-connections", natsauth.DefaultMaxConnections, "client connections the account may hold at once (-1: unlimited)")
	fs.Int64Var(&lim.MaxStreams, "max-streams", natsauth.DefaultMaxStreams, "JetStream streams of the account (-1: unlimited)")
	fs.Int64Var(&lim.MaxConsumers, "max-consumers", natsauth.DefaultMaxConsumers, "JetStream consumers of the account (one per shard, one per observer...; -1: unlimited)")
	fs.Int64Var(&lim.DiskStorage, "max-disk-bytes", natsauth.DefaultDiskStorage, "file-stored stream bytes of the account, a reservation every server must have room for (-1: the server's limit)")
	fs.Int64Var(&lim.MemoryStorage, "max-memory-bytes", natsauth.DefaultMemoryStorage, "memory-stored stream bytes of the account (-1: the server's limit)")
	return func(ctx context.Context, _ []string, stdout, stderr io.Writer) int {
		fail := func(code int, err error) int {
			fmt.Fprintf(stderr, "coordinator nats-auth init: %v\n", err)
			return code
		}
		if *out == "" {
			return fail(2, errors.New("--out is required"))
		}
		if _, err := natsauth.UserName(natsauth.RoleCoordinator, *coordID); err != nil {
			return fail(2, fmt.Errorf("--coordinator-id: %w", err))
		}
		for name, v := range map[string]int64{"--max-connections": lim.MaxConnections, "--max-streams": lim.MaxStreams,
			"--max-consumers": lim.MaxConsumers, "--max-disk-bytes": lim.DiskStorage, "--max-memory-bytes": lim.MemoryStorage} {
			if v == 0 || v < -1 {
				return fail(2, fmt.Errorf("%s %d: want > 0, or -1 for unlimited", name, v))
			}
		}
		if _, err := os.Stat(filepath.Join(*out, natsauth.FileMeta)); err == nil {
			return fail(2, fmt.Errorf("%w in %s (refusing to overwrite its keys)", natsauth.ErrExists, *out))
		}
		d, err := natsauth.Init(*prefix, lim)
		if err != nil {
			return fail(2, fmt.Errorf("--prefix: %w", err))
		}
		u, err := d.NewUser(natsauth.RoleCoordinator, *coordID, 0)
		if err != nil {
			return fail(1, err)
		}
		if err := d.Save(*out); err != nil {
			return fail(1, err)
		}
		credsPath := filepath.Join(*out, natsauth.FileCoordinator)
		if err := fsutil.WriteFileAtomic(credsPath, u.Creds, 0o600); err != nil {
			return fail(1, err)
		}
		fmt.Fprintf(stdout, "deployment %s (prefix %q, account %s)\n", *out, d.Prefix(), d.Account())
		fmt.Fprintf(stdout, "  server:      coordinator nats --auth-dir %s   (or include %s)\n", *out, filepath.Join(*out, natsauth.FileServerConf))
		fmt.Fprintf(stdout, "  coordinator: --nats-creds %s (%s)\n", credsPath, u.Name)
		fmt.Fprintf(stdout, "  more users:  coordinator nats-auth user --dir %s --role shard --id ID\n", *out)
		return 0
	}
}

func natsAuthUser(fs *flag.FlagSet) legacyRun {
	dir := fs.String("dir", "", "deployment `directory` made by 'nats-auth init' (required)")
	roleS := fs.String("role", "", "`role`: coordinator, shard, proposer or observer (required)")
	id := fs.String("id", "", "`identity`: the shard id for a shard, a name for the others (one subject token)")
	out := fs.String("out", "", "creds `file` to write (default DIR/<role>-<id>.creds); - writes to stdout")
	expires := fs.Duration("expires", 0, "validity of the credentials (0: no expiry)")
	return func(ctx context.Context, _ []string, stdout, stderr io.Writer) int {
		fail := func(code int, err error) int {
			fmt.Fprintf(stderr, "coordinator nats-auth user: %v\n", err)
			return code
		}
		if *dir == "" || *roleS == "" {
			return fail(2, errors.New("--dir and --role are required"))
		}
		role, err := natsauth.ParseRole(*roleS)
		if err != nil {
			return fail(2, fmt.Errorf("--role: %w", err))
		}
		if _, err := natsauth.UserName(role, *id); err != nil {
			return fail(2, fmt.Errorf("--id: %w", err))
		}
		if *expires < 0 {
			return fail(2, errors.New("--expires must be >= 0"))
		}
		d, err := natsauth.Load(*dir)
		if err != nil {
			return fail(1, err)
		}
		u, err := d.NewUser(role, *id, *expires)
		if err != nil {
			return fail(1, err)
		}
		path := *out
		if path == "-" {
			_, err := stdout.Write(u.Creds)
			return map[bool]int{true: 0, false: 1}[err == nil]
		}
		if path == "" {
			path = filepath.Join(*dir, u.Name+".creds")
		}
		if err := fsutil.WriteFileAtomic(path, u.Creds, 0o600); err != nil {
			return fail(1, err)
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\n", path, u.Name, u.PublicKey)
		return 0
	}
}

func natsAuthRevoke(fs *flag.FlagSet) legacyRun {
	dir := fs.String("dir", "", "deployment `directory` (required)")
	creds := fs.String("creds", "", "the user's creds `file`")
	key := fs.String("user-key", "", "the user's public `nkey` (U...), instead of --creds")
	url := fs.String("nats-url", "", "push the updated account to the NATS servers at these `URLs` (system user)")
	return func(ctx context.Context, _ []string, stdout, stderr io.Writer) int {
		fail := func(code int, err error) int {
			fmt.Fprintf(stderr, "coordinator nats-auth revoke: %v\n", err)
			return code
		}
		if *dir == "" || (*creds == "") == (*key == "") {
			return fail(2, errors.New("--dir and one of --creds or --user-key are required"))
		}
		if *creds != "" {
			b, err := os.ReadFile(*creds)
			if err != nil {
				return fail(2, fmt.Errorf("--creds: %w", err))
			}
			if *key, err = natsauth.CredsPublicKey(b); err != nil {
				return fail(2, fmt.Errorf("--creds: %w", err))
			}
		}
		d, err := natsauth.Load(*dir)
		if err != nil {
			return fail(1, err)
		}
		if err := d.Revoke(*key, time.Now()); err != nil {
			return fail(2, err)
		}
		if err := d.Update(*dir); err != nil {
			return fail(1, err)
		}
		fmt.Fprintf(stdout, "revoked %s in %s\n", *key, filepath.Join(*dir, natsauth.FileAccountJWT))
		if *url == "" {
			fmt.Fprintln(stdout, "servers learn it at their next start with the new nats-server.conf, or push it with --nats-url")
			return 0
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := natsauth.PushAccount(pctx, *url, d); err != nil {
			return fail(1, err)
		}
		fmt.Fprintf(stdout, "pushed to %s\n", strings.TrimSpace(*url))
		return 0
	}
}
