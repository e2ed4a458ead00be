// Command coordinator is the shardmatch binary: one subcommand per file, each wiring
// packages together (coordinator, shardsvc, policy) and doing nothing else.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
)

// command is one subcommand.
type command struct {
	name, args, summary string
	run                 func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands lists the subcommands, in the order help shows them.
var commands = []command{
	{"dev", "[flags]", "run a whole deployment in this process with live status, then audit it", runDev},
	{"serve", "[flags]", "run a production coordinator node (Raft over TCP, NATS, admin HTTP)", withoutCtx(runServe)},
	{"prestop", "[flags]", "hand leadership over before this node stops (a pod's preStop hook)", withoutCtx(runPrestop)},
	{"status", "--addr URL[,URL...]", "show a cluster at a glance from the nodes' admin APIs", withoutCtx(runStatus)},
	{"snapshot", "<verb> [flags]", "save, restore or inspect a backup of the cluster's whole state", runSnapshot},
	{"nats", "[flags]", "run the embedded NATS server with JetStream alone, for multi-process use", withoutCtx(runNats)},
	{"signing-key", "--out FILE", "generate a command signing key; prints the public key shards trust", runSigningKey},
	{"nats-auth", "init|user|revoke", "generate NATS JWT auth: per-role credentials with subject permissions", runNatsAuth},
	{"tls-certs", "--out DIR --hosts H,...", "generate a CA and node certificates for Raft mutual TLS (--raft-tls-*)", runTLSCerts},
	{"bench", "[flags]", "measure matches/s and latency over NATS against the NATS and Raft floors", runBench},
	{"policy", "test|eval [flags]", "run the policy bundle's tests, or explain its verdict on a proposal", runPolicy},
	{"chaos", "list|run|clean", "run chaos scenarios against real processes and report", runChaos},
	{"version", "", "print the version", runVersion},
}

// withoutCtx adapts the subcommands that handle their own signals.
func withoutCtx(f func(args []string, stdout, stderr io.Writer) int) func(context.Context, []string, io.Writer, io.Writer) int {
	return func(_ context.Context, args []string, stdout, stderr io.Writer) int { return f(args, stdout, stderr) }
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the exit code: 2 for usage errors.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && name == "help" {
			return run(ctx, []string{args[1], "-h"}, stdout, stderr)
		}
		usage(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "coordinator: unknown command %q\n\n", name)
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: coordinator <command> [arguments]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %-18s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'coordinator help <command>' for a command's flags.")
}
