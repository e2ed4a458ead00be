package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/chaos/collect"
	"github.com/shardmatch/shardmatch/chaos/history"
	"github.com/shardmatch/shardmatch/chaos/inject"
	"github.com/shardmatch/shardmatch/clock"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/shardsvc"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

// testShard is a shard with its World, Participant and journal but no NATS, wired
// as start does.
func testShard(t *testing.T, faults bool) *server {
	t.Helper()
	skew := clock.NewSkewed(clock.NewReal())
	s := &server{o: options{id: "s1", region: "eu-west", faultInjection: faults}, log: slog.New(slog.DiscardHandler), clk: skew, skew: skew}
	if faults {
		s.faults = natstransport.NewFaults(1)
	}
	var err error
	if s.journal, err = twophase.OpenBoltJournal(filepath.Join(t.TempDir(), "s1.journal")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.journal.Close() })
	wc := shardsvc.DefaultWorldConfig()
	wc.ShardID, wc.Region, wc.Players, wc.Clock, wc.AlwaysAvailable = "s1", "eu-west", 10, s.clk, true
	if s.world, err = shardsvc.NewWorld(wc); err != nil {
		t.Fatal(err)
	}
	if s.part, err = twophase.NewParticipant(twophase.ParticipantConfig{ShardID: "s1", Handler: s.world, Journal: s.journal, Clock: s.clk}); err != nil {
		t.Fatal(err)
	}
	return s
}

func serveAdmin(t *testing.T, s *server) *httptest.Server {
	t.Helper()
	h, err := s.adminHandler()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestFaultEndpointOnlyWhenEnabled(t *testing.T) {
	srv := serveAdmin(t, testShard(t, false))
	if _, err := (&inject.Client{BaseURL: srv.URL}).Get(context.Background()); !errors.Is(err, inject.ErrNotEnabled) {
		t.Fatalf("GET /v1/fault on a shard without fault injection: %v", err)
	}
	resp, err := http.Post(srv.URL+"/v1/fault/clock", "application/json", bytes.NewReader([]byte(`{"offset":"1h"}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("POST /v1/fault/clock: %s", resp.Status)
	}
}

// With fault injection the endpoint moves the clock the participant stamps its
// journal with, a bad body changes nothing, and the transport hook takes its shares.
func TestFaultEndpointDrivesTheProcessClock(t *testing.T) {
	s := testShard(t, true)
	srv := serveAdmin(t, s)
	ctx := context.Background()
	c := &inject.Client{BaseURL: srv.URL}
	resp, err := http.Post(srv.URL+"/v1/fault/clock", "application/json", bytes.NewReader([]byte(`{"offset":"tomorrow"}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad offset: %s", resp.Status)
	}
	off := 2 * time.Hour
	if err := c.SetClock(ctx, &off, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.SetTransport(ctx, 5, 7); err != nil {
		t.Fatal(err)
	}
	if d, r := s.faults.Percent(); d != 5 || r != 7 {
		t.Fatalf("transport hook at %v/%v", d, r)
	}
	cmd := &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Prepare{Prepare: &smv1.Prepare{Txid: "tx1", ShardId: "s1", Term: 1,
		Players: []*smv1.ShardPlayer{{PlayerId: "s1-p00007", FencingToken: 9}}}}}
	if _, err := s.part.HandleCommand(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	e, ok, err := s.journal.Get("tx1")
	if err != nil || !ok {
		t.Fatalf("journal: %v %v", ok, err)
	}
	if ahead := time.Until(e.RecordedAt); ahead < off-time.Minute || ahead > off+time.Minute {
		t.Fatalf("the participant stamped its record %s ahead of the real clock, want about %s", ahead, off)
	}

	// GET /v1/journal: the record, in the shape collect reads.
	var j collect.Journal
	r, err := http.Get(srv.URL + collect.JournalPath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if err := json.NewDecoder(r.Body).Decode(&j); err != nil {
		t.Fatal(err)
	}
	if j.Shard != "s1" || len(j.Entries) != 1 || j.Entries[0].State != "PREPARED" ||
		j.Entries[0].Players[0] != (history.PlayerToken{Player: "s1-p00007", Token: 9}) {
		t.Fatalf("journal %+v", j)
	}
	sf, err := collect.FetchShardFinal(ctx, srv.URL)
	if err != nil || len(sf.Prepared) != 1 || sf.Prepared[0] != "tx1" {
		t.Fatalf("FetchShardFinal = %+v, %v", sf, err)
	}
}
