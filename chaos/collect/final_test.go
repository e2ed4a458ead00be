package collect

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/shardmatch/shardmatch/chaos/history"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

func fsmState() *smv1.FSMState {
	prop := func(id string) *smv1.Proposal {
		return &smv1.Proposal{ProposalId: id, Teams: []*smv1.Team{
			{Players: []*smv1.Player{{PlayerId: "a", ShardId: "s1"}}}, {Players: []*smv1.Player{{PlayerId: "b", ShardId: "s2"}}}}}
	}
	return &smv1.FSMState{AppliedIndex: 42, MaxToken: 9, Txns: []*smv1.TxnRecord{
		{Txid: "t1", Proposal: prop("p1"), State: smv1.TxnState_TXN_STATE_DONE, Shards: []string{"s1", "s2"},
			Acked: []string{"s1", "s2"}, Token: 7, Decision: &smv1.Decision{Outcome: smv1.Outcome_OUTCOME_COMMITTED}},
		{Txid: "t2", Proposal: prop("p2"), State: smv1.TxnState_TXN_STATE_ABORTED, Shards: []string{"s1", "s2"}, Token: 8,
			Decision: &smv1.Decision{Outcome: smv1.Outcome_OUTCOME_ABORTED, Reason: smv1.Reason_REASON_SHARD_REJECTED}},
		{Txid: "t3", Proposal: prop("p3"), State: smv1.TxnState_TXN_STATE_PREPARING, Token: 9},
	}, Leases: []*smv1.LeaseRecord{
		{PlayerId: "a", Txid: "t1", Token: 7, State: smv1.LeaseState_LEASE_STATE_ACTIVE},
		{PlayerId: "c", Txid: "t3", Token: 9, State: smv1.LeaseState_LEASE_STATE_RESERVED},
	}}
}

func wantNodeFinal() history.NodeFinal {
	players := []history.PlayerRef{{Player: "a", Shard: "s1"}, {Player: "b", Shard: "s2"}}
	return history.NodeFinal{AppliedIndex: 42, Txns: []history.TxnFinal{
		{TxID: "t1", ProposalID: "p1", State: history.StateDone, Outcome: history.OutcomeCommitted,
			Shards: []string{"s1", "s2"}, Acked: []string{"s1", "s2"}, Players: players, Token: 7},
		{TxID: "t2", ProposalID: "p2", State: history.StateAborted, Outcome: history.OutcomeAborted,
			Reason: "REASON_SHARD_REJECTED", Shards: []string{"s1", "s2"}, Players: players, Token: 8},
		{TxID: "t3", ProposalID: "p3", State: history.StatePreparing, Players: players, Token: 9},
	}, Leases: []history.LeaseFinal{
		{Player: "a", TxID: "t1", Token: 7, State: history.StateActive},
		{Player: "c", TxID: "t3", Token: 9, State: history.StateReserved},
	}}
}

func journal() []twophase.JournalEntry {
	return []twophase.JournalEntry{
		{TxID: "t1", State: twophase.JournalCommitted, Players: []*smv1.ShardPlayer{{PlayerId: "a", FencingToken: 7}}, Term: 2},
		{TxID: "t2", State: twophase.JournalAborted},
		{TxID: "t3", State: twophase.JournalPrepared, Players: []*smv1.ShardPlayer{{PlayerId: "c", FencingToken: 9}}},
		{TxID: "t4", State: twophase.JournalVotedNo},
	}
}

var wantShardFinal = history.ShardFinal{Prepared: []string{"t3"}, Committed: []string{"t1"}, Aborted: []string{"t2"}}

func TestNodeFinalAndShardFinal(t *testing.T) {
	if got := NodeFinal(fsmState()); !reflect.DeepEqual(got, wantNodeFinal()) {
		t.Errorf("NodeFinal =\n%+v\nwant\n%+v", got, wantNodeFinal())
	}
	if got := ShardFinal(journal()); !reflect.DeepEqual(got, wantShardFinal) {
		t.Errorf("ShardFinal = %+v, want %+v", got, wantShardFinal)
	}
	if got := StateName(smv1.TxnState(77)); got != "77" {
		t.Errorf("StateName of an unknown state = %q", got)
	}
	recs := JournalRecords(journal())
	if recs[0].State != "COMMITTED" || recs[0].Term != 2 || recs[0].Players[0] != (history.PlayerToken{Player: "a", Token: 7}) {
		t.Errorf("JournalRecords[0] = %+v", recs[0])
	}
}

// TestFetchFinals reads the finals over HTTP in the shapes the binaries serve.
func TestFetchFinals(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+NodeStatePath, func(w http.ResponseWriter, _ *http.Request) {
		b, _ := protojson.MarshalOptions{UseProtoNames: true}.Marshal(fsmState())
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET "+JournalPath, func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(Journal{Shard: "s1", Entries: JournalRecords(journal())})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()
	nf, err := FetchNodeFinal(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(nf, wantNodeFinal()) {
		t.Errorf("FetchNodeFinal =\n%+v\nwant\n%+v", nf, wantNodeFinal())
	}
	sf, err := FetchShardFinal(ctx, strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sf, wantShardFinal) {
		t.Errorf("FetchShardFinal = %+v", sf)
	}

	// A server without the endpoints, and one answering garbage.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == JournalPath {
			_, _ = w.Write([]byte("{not json"))
			return
		}
		http.NotFound(w, r)
	}))
	defer bad.Close()
	if _, err := FetchNodeFinal(ctx, bad.URL); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("FetchNodeFinal from a server without the endpoint: %v", err)
	}
	if _, err := FetchShardFinal(ctx, bad.URL); err == nil || !strings.Contains(err.Error(), "decode") {
		t.Errorf("FetchShardFinal of garbage: %v", err)
	}
}
