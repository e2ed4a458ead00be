package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/internal/config"
	"github.com/shardmatch/shardmatch/internal/natsauth"
	"github.com/shardmatch/shardmatch/internal/testutil"
	"github.com/shardmatch/shardmatch/shardsvc"
)

// runCmd runs the coordinator command in process.
func authCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// dirFiles lists the files under dir ("" if dir does not exist).
func dirFiles(t *testing.T, dir string) string {
	t.Helper()
	var names []string
	_ = filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			names = append(names, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	return strings.Join(names, ",")
}

// nats-auth init writes a loadable deployment with its secrets 0600; user writes
// creds; bad input is refused with exit 2, a clear message and nothing written.
func TestNatsAuthCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	if code, out, errs := authCmd("nats-auth", "init", "--out", dir, "--prefix", "acme.sm"); code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, out, errs)
	}
	d, err := natsauth.Load(dir)
	if err != nil || d.Prefix() != "acme.sm" {
		t.Fatalf("load: %v, prefix %q", err, d.Prefix())
	}
	for _, f := range []string{natsauth.FileOperatorSeed, natsauth.FileAccountSeed, natsauth.FileSigningSeed,
		natsauth.FileSystemSeed, natsauth.FileSystemCreds, natsauth.FileCoordinator} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v", f, err, st.Mode())
		}
	}
	conf, _ := os.ReadFile(filepath.Join(dir, natsauth.FileServerConf))
	for _, want := range []string{"operator:", "resolver: MEMORY", "resolver_preload", "system_account: " + d.SystemAccount(), d.Account()} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("nats-server.conf lacks %q:\n%s", want, conf)
		}
	}
	if name, err := config.CredsUserName(filepath.Join(dir, natsauth.FileCoordinator)); err != nil || name != "coordinator-main" {
		t.Errorf("coordinator.creds names %q (%v)", name, err)
	}
	out := filepath.Join(t.TempDir(), "s1.creds")
	if code, _, errs := authCmd("nats-auth", "user", "--dir", dir, "--role", "shard", "--id", "s1", "--out", out); code != 0 {
		t.Fatalf("user: exit %d: %s", code, errs)
	}
	if name, err := config.CredsUserName(out); err != nil || name != "shard-s1" {
		t.Errorf("user creds name %q (%v)", name, err)
	}
	if code, _, errs := authCmd("nats-auth", "revoke", "--dir", dir, "--creds", out); code != 0 {
		t.Fatalf("revoke: exit %d: %s", code, errs)
	}
	if d2, _ := natsauth.Load(dir); len(d2.Revocations()) != 1 {
		t.Errorf("revocations after revoke: %v", d2.Revocations())
	}
	for _, help := range [][]string{{"nats-auth", "--help"}, {"nats-auth", "init", "--help"}, {"nats-auth", "user", "-h"}, {"nats-auth", "revoke", "--help"}} {
		if code, out, _ := authCmd(help...); code != 0 || !strings.Contains(out, "Usage:\n  coordinator nats-auth") {
			t.Errorf("%v: exit %d, %q", help, code, out)
		}
	}

	empty := t.TempDir()
	target := filepath.Join(empty, "x.creds")
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"nats-auth"}, "missing command: want one of init, revoke, user"},
		{[]string{"nats-auth", "frob"}, `unknown command "frob"`},
		{[]string{"nats-auth", "init"}, "--out is required"},
		{[]string{"nats-auth", "init", "--out", dir}, "already exists"},
		{[]string{"nats-auth", "init", "--out", filepath.Join(empty, "n"), "--prefix", "a.*"}, "--prefix"},
		{[]string{"nats-auth", "init", "--out", filepath.Join(empty, "n"), "--max-streams", "0"}, "--max-streams"},
		{[]string{"nats-auth", "user", "--dir", dir, "--role", "admin", "--id", "x", "--out", target}, `unknown role "admin"`},
		{[]string{"nats-auth", "user", "--dir", dir, "--role", "shard", "--id", "s1.cmd", "--out", target}, "--id"},
		{[]string{"nats-auth", "user", "--dir", dir, "--role", "shard", "--id", "", "--out", target}, "--id"},
		{[]string{"nats-auth", "user", "--dir", dir, "--role", "shard", "--id", "a>", "--out", target}, "wildcard"},
		{[]string{"nats-auth", "user", "--dir", empty, "--role", "shard", "--id", "s1", "--out", target}, "no deployment"},
		{[]string{"nats-auth", "user", "--dir", filepath.Join(empty, "missing"), "--role", "shard", "--id", "s1", "--out", target}, "no deployment"},
		{[]string{"nats-auth", "user", "--role", "shard", "--id", "s1"}, "--dir and --role are required"},
		{[]string{"nats-auth", "revoke", "--dir", dir, "--user-key", "not-a-key"}, "not a user public key"},
		{[]string{"nats-auth", "revoke", "--dir", dir}, "one of --creds or --user-key"},
	}
	for _, tc := range bad {
		code, _, errs := authCmd(tc.args...)
		if code != 2 && !(code == 1 && strings.Contains(tc.want, "no deployment")) {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(errs, tc.want) {
			t.Errorf("%v: stderr %q, want %q", tc.args, errs, tc.want)
		}
		if f := dirFiles(t, empty); f != "" {
			t.Fatalf("%v wrote %s", tc.args, f)
		}
	}
	if code, _, errs := authCmd("nats", "--store", empty, "--auth-dir", filepath.Join(empty, "nope")); code != 2 || !strings.Contains(errs, "--auth-dir") {
		t.Errorf("nats with a missing --auth-dir: exit %d, %q", code, errs)
	}
}

// The binaries on generated credentials: `coordinator nats --auth-dir` in operator
// mode, `coordinator serve --nats-creds` and `shardsvc --nats-creds`, and a proposer
// of the test's own on proposer credentials, commit matches. A shard whose
// credentials are made after the server started joins and commits without NATS
// restarting; a shard started with another shard's credentials never registers.
func TestMultiProcessNATSOperatorAuth(t *testing.T) {
	testutil.Exclusive(t, testutil.HeavyProcesses)
	d := newDeployment(t)
	auth := filepath.Join(d.dir, "auth")
	if code, out, errs := authCmd("nats-auth", "init", "--out", auth); code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, out, errs)
	}
	creds := func(role, id string) string {
		t.Helper()
		path := filepath.Join(d.dir, role+"-"+id+".creds")
		if code, _, errs := authCmd("nats-auth", "user", "--dir", auth, "--role", role, "--id", id, "--out", path); code != 0 {
			t.Fatalf("user %s %s: %s", role, id, errs)
		}
		return path
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d.natsURL = "nats://" + addr
	d.nats = d.add(&proc{name: "nats", bin: d.coord, args: []string{"nats", "--addr", addr,
		"--store", filepath.Join(d.dir, "nats"), "--auth-dir", auth}})
	d.natsConf = config.NATS{URL: d.natsURL, Creds: creds("proposer", "load")}

	raft := freePort(t)
	d.startNode("c1", raft, "--nats-creds", filepath.Join(auth, natsauth.FileCoordinator),
		"--peers", fmt.Sprintf("c1=127.0.0.1:%d", raft), "--bootstrap")
	d.waitLeader("")
	d.startShard("s1", "--nats-creds", creds("shard", "s1"), "--always-available")
	d.startShard("s2", "--nats-creds", creds("shard", "s2"), "--always-available")
	d.waitRegistered("s1", "s2")

	cli := d.client(client.Config{})
	if cli.Identity() != "proposer-load" {
		t.Fatalf("the proposer's identity is %q", cli.Identity())
	}
	drive := func(shards ...string) {
		t.Helper()
		var worlds []*shardsvc.World
		for _, id := range shards {
			wc := shardsvc.DefaultWorldConfig()
			wc.ShardID, wc.Region, wc.Players, wc.MatchTTL, wc.Clock, wc.Seed = id, "eu-west", 300, 2*time.Second, clock.NewReal(), 1
			wc.AlwaysAvailable = true
			w, err := shardsvc.NewWorld(wc)
			if err != nil {
				t.Fatal(err)
			}
			worlds = append(worlds, w)
		}
		dc := shardsvc.DefaultLoadGenConfig()
		dc.Proposer, dc.Clock, dc.Seed, dc.Worlds = cli, clock.NewReal(), 7, worlds
		dc.Rate, dc.MaxInFlight, dc.MatchTTL, dc.ReuseAfter = 20, 4, 2*time.Second, 2*time.Second
		drv, err := shardsvc.NewLoadGen(dc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = drv.Run(ctx) }()
		defer func() { cancel(); <-done }()
		testutil.WaitFor(t, 60*time.Second, fmt.Sprintf("matches committed across %v", shards), func() error {
			if st := drv.Stats(); st.Committed < 5 {
				return fmt.Errorf("driver %+v", st)
			}
			return nil
		})
	}
	drive("s1", "s2")

	// A shard added at runtime: credentials made now, NATS untouched.
	pid := d.nats.cmd.Process.Pid
	d.startShard("s3", "--nats-creds", creds("shard", "s3"), "--always-available")
	d.waitRegistered("s1", "s2", "s3")
	drive("s1", "s3")
	if !d.nats.running() || d.nats.cmd.Process.Pid != pid {
		t.Fatal("NATS restarted")
	}

	// s5's credentials cannot register shard s4 (nor read its commands): it gives up.
	imp := &proc{name: "s4-as-s5", bin: d.shard, args: d.shardArgs("s4", "", "--nats-creds", creds("shard", "s5"), "--register-timeout", "3s")}
	d.add(imp)
	if code := imp.wait(t, 20*time.Second); code != 1 {
		t.Errorf("shardsvc s4 on s5's credentials: exit %d, want 1", code)
	}
	if out := imp.out.String(); !strings.Contains(out, "register shard s4") {
		t.Errorf("shardsvc s4 on s5's credentials says:\n%s", out)
	}
	d.waitSettled(30 * time.Second)
}
