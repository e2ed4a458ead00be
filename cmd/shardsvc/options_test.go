package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/internal/natsutil/natstest"
	"github.com/shardmatch/shardmatch/shardsvc"
)

func TestOptionsPrecedenceAndPeers(t *testing.T) {
	var stderr bytes.Buffer
	o, code, done := parseOptions([]string{"--id", "s1", "--propose-rate", "5", "--peer-shards", "s2, s3:us-east,s1"}, &stderr,
		func(k string) (string, bool) {
			v, ok := map[string]string{"SHARDSVC_PLAYERS": "50", "SHARDSVC_ID": "ignored"}[k]
			return v, ok
		})
	if done {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if o.id != "s1" || o.players != 50 || o.journal != "s1.journal" {
		t.Errorf("id %q players %d journal %q", o.id, o.players, o.journal)
	}
	if len(o.peers) != 2 || o.peers[0] != (peer{"s2", "eu-west"}) || o.peers[1] != (peer{"s3", "us-east"}) {
		t.Errorf("peers %+v", o.peers)
	}
}

func TestBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "--id"},
		{[]string{"--id", "a.b"}, "--id"},
		{[]string{"--id", "s1", "--players", "0"}, "--players"},
		{[]string{"--id", "s1", "--propose-rate", "5"}, "--peer-shards"},
		{[]string{"--id", "s1", "--hot", "2"}, "--hot"},
		{[]string{"--id", "s1", "--match-ttl", "bad"}, "match-ttl"},
		{[]string{"--id", "s1", "--bogus"}, "bogus"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(c.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q (want 2, mentioning %q)", c.args, code, stderr.String(), c.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "(env SHARDSVC_PEER_SHARDS)") ||
		stderr.Len() != 0 {
		t.Errorf("--help: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}

// TestVersion: --version and version print the build on stdout; -o json is the build
// info as JSON.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "shardsvc ") || stderr.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout.String(), stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	var b struct {
		Binary    string `json:"binary"`
		Version   string `json:"version"`
		GoVersion string `json:"go_version"`
	}
	if code := run([]string{"version", "-o", "json"}, &stdout, &stderr); code != 0 || json.Unmarshal(stdout.Bytes(), &b) != nil ||
		b.Binary != "shardsvc" || b.Version == "" || b.GoVersion == "" {
		t.Errorf("version -o json: exit %d, %q %q", code, stdout.String(), stderr.String())
	}
}

// The load driver names a peer's players through a stand-in World: it must make the
// same players, with the same attributes, as the peer's real World.
func TestStandInWorldsMatchPeers(t *testing.T) {
	o := options{id: "s1", region: "eu-west", players: 100, seed: 7, matchTTL: time.Second,
		peers: []peer{{"s2", "us-east"}}}
	clk := clock.NewReal()
	wc := shardsvc.DefaultWorldConfig()
	wc.ShardID, wc.Region, wc.Players, wc.MatchTTL, wc.Clock, wc.Seed = "s1", "eu-west", 100, time.Second, clk, 7
	own, err := shardsvc.NewWorld(wc)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{o: o, clk: clk, world: own}
	ws, err := s.driverWorlds()
	if err != nil {
		t.Fatal(err)
	}
	wc.ShardID, wc.Region = "s2", "us-east"
	real, err := shardsvc.NewWorld(wc)
	if err != nil {
		t.Fatal(err)
	}
	a, b := ws[1].Regulars(), real.Regulars()
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("regulars %d vs %d", len(a), len(b))
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].MMR != b[i].MMR || a[i].LatencyMs["eu-west"] != b[i].LatencyMs["eu-west"] {
			t.Errorf("stand-in %+v != real %+v", a[i], b[i])
		}
	}
}

func TestChaosFlags(t *testing.T) {
	var stderr bytes.Buffer
	o, code, done := parseOptions([]string{"--id", "s1", "--enable-fault-injection", "--always-available", "--compact-every", "0",
		"--history-dir", "/tmp/h", "--history-epoch", "1700000000000000000"}, &stderr, nil)
	if done {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !o.faultInjection || !o.alwaysAvailable || o.compactEvery != 0 || o.historyDir != "/tmp/h" || o.historyEpoch != 1700000000000000000 {
		t.Errorf("options %+v", o)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--id", "s1", "--history-dir", "/tmp/h"}, "--history-epoch"},
		{[]string{"--id", "s1", "--history-epoch", "5"}, "--history-dir"},
		{[]string{"--id", "s1", "--compact-every", "-1s"}, "--compact-every"},
	} {
		stderr.Reset()
		if _, code, done := parseOptions(c.args, &stderr, nil); !done || code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q (want 2, mentioning %q)", c.args, code, stderr.String(), c.want)
		}
	}
}

// TestJournalDirectoryCreated: a journal path under directories that do not exist yet
// (./data/s1.journal before anything made ./data) works: shardsvc creates them. NATS
// is up but no coordinator answers, so start fails after opening the journal.
func TestJournalDirectoryCreated(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "data", "sub", "s1.journal")
	o, code, done := parseOptions([]string{"--id", "s1", "--journal", journal, "--admin-addr", "",
		"--nats-url", natstest.Start(t).ClientURL(), "--register-timeout", "1s"}, io.Discard, func(string) (string, bool) { return "", false })
	if done {
		t.Fatalf("parse: exit %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := start(ctx, o, slog.New(slog.DiscardHandler))
	if err == nil {
		s.shutdown()
	}
	if st, serr := os.Stat(journal); serr != nil || st.Size() == 0 {
		t.Fatalf("journal %s after start (err %v): %v", journal, err, serr)
	}
}
