package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"

	"github.com/shardmatch/shardmatch/twophase/cmdsig"
)

// newSigningKeyCmd is `coordinator signing-key --out FILE`: a new command signing key
// (a server nkey seed) written 0600, never over an existing file; the public key, which
// shards trust with --command-verify-keys, is the only line on stdout.
func newSigningKeyCmd() *cobra.Command {
	return goFlagsCmd(&cobra.Command{
		Use:   "signing-key --out FILE",
		Short: "Generate a command signing key; prints the public key shards trust",
		Long: "Generate a command signing key: an nkey seed (\"SN...\") written to FILE with mode 0600. Its public\n" +
			"key (\"N...\") is printed on stdout. Give the file to every coordinator (serve\n" +
			"--command-signing-key FILE) and the public key to every shard (shardsvc --command-verify-keys KEY).\n" +
			"To rotate: add the new public key to the shards' list, then switch the coordinators to the new\n" +
			"file, then drop the old key from the shards.",
		Example: "  coordinator signing-key --out cmd.nk",
		Args:    cli.NoArgs,
	}, defineSigningKey, nil)
}

func defineSigningKey(fs *flag.FlagSet) legacyRun {
	out := fs.String("out", "", "`file` to write the new seed to (created 0600; an existing file is refused)")
	return func(_ context.Context, _ []string, stdout, stderr io.Writer) int {
		if *out == "" {
			fmt.Fprintln(stderr, "coordinator signing-key: --out FILE is required")
			return 2
		}
		pub, err := cmdsig.WriteSeedFile(*out)
		if err != nil {
			fmt.Fprintf(stderr, "coordinator signing-key: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "coordinator signing-key: wrote the seed to %s (mode 0600); public key on stdout\n", *out)
		fmt.Fprintln(stdout, pub)
		return 0
	}
}

// loadCommandSigner reads --command-signing-key; "" means commands go unsigned.
func loadCommandSigner(path string, log *slog.Logger) (*cmdsig.Signer, error) {
	if path == "" {
		return nil, nil
	}
	s, err := cmdsig.LoadSigner(path)
	if err != nil {
		return nil, fmt.Errorf("--command-signing-key: %w", err)
	}
	log.Info("signing shard commands", "public_key", s.PublicKey())
	return s, nil
}
