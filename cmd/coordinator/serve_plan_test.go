package main

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// TestServeStartPlan: what a node does about membership at start, for every
// combination of --bootstrap, --peers and --join, with and without Raft state.
func TestServeStartPlan(t *testing.T) {
	const p3 = "c0=c0.h.ns.svc:7000,c1=c1.h.ns.svc:7000,c2=c2.h.ns.svc:7000"
	const j = "http://c0.h.ns.svc:8080,http://c1.h.ns.svc:8080"
	ids := func(ps []raft.Server) string {
		var out []string
		for _, p := range ps {
			out = append(out, fmt.Sprintf("%s=%s", p.ID, p.Address))
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		name     string
		args     []string
		hasState bool
		mode     joinMode
		peers    string
	}{
		{"all three, in P, no state: bootstrap with exactly P", []string{"--id", "c1", "--bootstrap", "--peers", p3, "--join", j},
			false, bootstrapWith, p3},
		{"all three, not in P, no state: join", []string{"--id", "c3", "--bootstrap", "--peers", p3, "--join", j},
			false, joinVia, ""},
		{"all three, in P, state: start", []string{"--id", "c1", "--bootstrap", "--peers", p3, "--join", j}, true, startOnly, ""},
		{"all three, not in P, state: start", []string{"--id", "c4", "--bootstrap", "--peers", p3, "--join", j}, true, startOnly, ""},
		{"bootstrap alone, in P", []string{"--id", "c2", "--bootstrap", "--peers", p3}, false, bootstrapWith, p3},
		{"bootstrap alone, self appended", []string{"--id", "c9", "--bootstrap", "--peers", p3, "--raft-advertise", "c9.h.ns.svc:7000"},
			false, bootstrapWith, p3 + ",c9=c9.h.ns.svc:7000"},
		{"bootstrap alone with state (raft skips it)", []string{"--id", "c2", "--bootstrap", "--peers", p3}, true, bootstrapWith, p3},
		{"join alone", []string{"--id", "c5", "--join", j}, false, joinVia, ""},
		{"join alone with state (the loop ends once a voter)", []string{"--id", "c5", "--join", j}, true, joinVia, ""},
		{"join with peers but no bootstrap", []string{"--id", "c5", "--peers", p3, "--join", j}, false, joinVia, ""},
		{"nothing", []string{"--id", "c5"}, false, startOnly, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			args := append([]string{"--data", t.TempDir()}, c.args...)
			o, code, done := parseServeOptions(args, &stderr, env(map[string]string{"SHARDMATCH_ADMIN_TOKEN": "t"}))
			if done {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			pl := o.plan(c.hasState)
			if pl.mode != c.mode || ids(pl.peers) != c.peers {
				t.Fatalf("plan %d with peers %q, want %d with %q", pl.mode, ids(pl.peers), c.mode, c.peers)
			}
			if pl.mode == bootstrapWith && slices.ContainsFunc(pl.peers, func(p raft.Server) bool { return p.Suffrage != raft.Voter }) {
				t.Fatalf("non-voter in %v", pl.peers)
			}
		})
	}
}

// TestServeAdvertiseIsNotResolved: a DNS name that does not resolve (yet) is
// accepted and advertised exactly as given.
func TestServeAdvertiseIsNotResolved(t *testing.T) {
	var stderr bytes.Buffer
	adv := "c0.no-such-headless.no-such-ns.svc.cluster.local:7000"
	o, code, done := parseServeOptions([]string{"--id", "c0", "--data", t.TempDir(), "--raft-addr", "0.0.0.0:0",
		"--raft-advertise", adv}, &stderr, env(nil))
	if done {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if o.advertiseAddr != adv {
		t.Fatalf("advertise %q, want %q", o.advertiseAddr, adv)
	}
	tr, err := newRaftTransport("127.0.0.1:0", adv, raftTLSFiles{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if got := string(tr.LocalAddr()); got != adv {
		t.Fatalf("the transport advertises %q, want %q", got, adv)
	}
}
