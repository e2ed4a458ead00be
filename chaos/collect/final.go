package collect

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/shardmatch/shardmatch/chaos/history"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// Admin API paths the final state is read from.
const (
	// NodeStatePath is a coordinator node's FSM state as protojson (smv1.FSMState),
	// one consistent snapshot under the FSM's read lock.
	NodeStatePath = "/v1/debug/state"
	// JournalPath is a shard server's participant journal as a JSON Journal.
	JournalPath = "/v1/journal"
)

// Journal is the body of a shard server's GET /v1/journal.
type Journal struct {
	Shard   string          `json:"shard"`
	Entries []JournalRecord `json:"entries"`
}

// JournalRecord is one transaction in a shard's journal.
type JournalRecord struct {
	TxID string `json:"txid"`
	// State is twophase.JournalState's name: PREPARED, VOTED_NO, COMMITTED, ABORTED.
	State string `json:"state"`
	// Players are the shard's players in the transaction with their fencing tokens.
	Players []history.PlayerToken `json:"players,omitempty"`
	// Term is the coordinator term of the command that wrote the record.
	Term uint64 `json:"term,omitempty"`
}

// JournalRecords turns journal entries into their wire form, in the same order.
func JournalRecords(entries []twophase.JournalEntry) []JournalRecord {
	out := make([]JournalRecord, 0, len(entries))
	for _, e := range entries {
		r := JournalRecord{TxID: e.TxID, State: e.State.String(), Term: e.Term}
		for _, p := range e.Players {
			r.Players = append(r.Players, history.PlayerToken{Player: p.GetPlayerId(), Token: p.GetFencingToken()})
		}
		out = append(out, r)
	}
	return out
}

// ShardFinal is a shard's journal as the history's final state: its txids by journal
// state. VOTED_NO records hold nothing and are left out.
func ShardFinal(entries []twophase.JournalEntry) history.ShardFinal {
	return shardFinal(JournalRecords(entries))
}

func shardFinal(recs []JournalRecord) history.ShardFinal {
	var sf history.ShardFinal
	for _, r := range recs {
		switch r.State {
		case twophase.JournalPrepared.String():
			sf.Prepared = append(sf.Prepared, r.TxID)
		case twophase.JournalCommitted.String():
			sf.Committed = append(sf.Committed, r.TxID)
		case twophase.JournalAborted.String():
			sf.Aborted = append(sf.Aborted, r.TxID)
		}
	}
	return sf
}

// StateName is a transaction state's name in the history (PREPARING, COMMITTED,
// ABORTED, DONE); an unknown state keeps its proto name.
func StateName(s smv1.TxnState) string {
	switch s {
	case smv1.TxnState_TXN_STATE_PREPARING:
		return history.StatePreparing
	case smv1.TxnState_TXN_STATE_COMMITTED:
		return history.StateCommitted
	case smv1.TxnState_TXN_STATE_ABORTED:
		return history.StateAborted
	case smv1.TxnState_TXN_STATE_DONE:
		return history.StateDone
	}
	return s.String()
}

// NodeFinal is a coordinator node's FSM state as the history's final state.
func NodeFinal(st *smv1.FSMState) history.NodeFinal {
	nf := history.NodeFinal{AppliedIndex: st.GetAppliedIndex()}
	for _, t := range st.GetTxns() {
		tf := history.TxnFinal{TxID: t.GetTxid(), ProposalID: t.GetProposal().GetProposalId(),
			State: StateName(t.GetState()), Shards: t.GetShards(), Acked: t.GetAcked(), Token: t.GetToken()}
		switch t.GetDecision().GetOutcome() {
		case smv1.Outcome_OUTCOME_COMMITTED:
			tf.Outcome = history.OutcomeCommitted
		case smv1.Outcome_OUTCOME_ABORTED:
			tf.Outcome = history.OutcomeAborted
			tf.Reason = t.GetDecision().GetReason().String()
		}
		for _, tm := range t.GetProposal().GetTeams() {
			for _, pl := range tm.GetPlayers() {
				tf.Players = append(tf.Players, history.PlayerRef{Player: pl.GetPlayerId(), Shard: pl.GetShardId()})
			}
		}
		nf.Txns = append(nf.Txns, tf)
	}
	for _, l := range st.GetLeases() {
		state := history.StateReserved
		if l.GetState() == smv1.LeaseState_LEASE_STATE_ACTIVE {
			state = history.StateActive
		}
		nf.Leases = append(nf.Leases, history.LeaseFinal{Player: l.GetPlayerId(), TxID: l.GetTxid(), Token: l.GetToken(), State: state})
	}
	return nf
}

// fetchHTTP makes the Fetch requests; ctx bounds each one further.
var fetchHTTP = &http.Client{Timeout: 10 * time.Second}

// Fetcher reads the final states over HTTP with its client: nil HTTP is a plain client
// with a 10 s timeout; a secured deployment needs one that trusts the admin API's CA
// and presents a token (e.g. admin.NewHTTPClient and a token-adding transport).
type Fetcher struct {
	HTTP *http.Client
}

// FetchNodeFinal is Fetcher{}.NodeFinal.
func FetchNodeFinal(ctx context.Context, adminURL string) (history.NodeFinal, error) {
	return Fetcher{}.NodeFinal(ctx, adminURL)
}

// FetchShardFinal is Fetcher{}.ShardFinal.
func FetchShardFinal(ctx context.Context, adminURL string) (history.ShardFinal, error) {
	return Fetcher{}.ShardFinal(ctx, adminURL)
}

// NodeFinal reads the FSM state of the coordinator node whose admin API is at adminURL
// ("http://host:port", "https://host:port", or "host:port" for http) and maps it with
// NodeFinal.
func (f Fetcher) NodeFinal(ctx context.Context, adminURL string) (history.NodeFinal, error) {
	body, err := f.get(ctx, adminURL, NodeStatePath)
	if err != nil {
		return history.NodeFinal{}, err
	}
	var st smv1.FSMState
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, &st); err != nil {
		return history.NodeFinal{}, fmt.Errorf("collect: decode %s%s: %w", adminURL, NodeStatePath, err)
	}
	return NodeFinal(&st), nil
}

// ShardFinal reads the journal of the shard server whose admin API is at adminURL and
// maps it as the package's ShardFinal does.
func (f Fetcher) ShardFinal(ctx context.Context, adminURL string) (history.ShardFinal, error) {
	body, err := f.get(ctx, adminURL, JournalPath)
	if err != nil {
		return history.ShardFinal{}, err
	}
	var j Journal
	if err := json.Unmarshal(body, &j); err != nil {
		return history.ShardFinal{}, fmt.Errorf("collect: decode %s%s: %w", adminURL, JournalPath, err)
	}
	return shardFinal(j.Entries), nil
}

// get fetches base+path and returns the body of a 200 answer.
func (f Fetcher) get(ctx context.Context, base, path string) ([]byte, error) {
	u := strings.TrimRight(base, "/")
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+path, nil)
	if err != nil {
		return nil, fmt.Errorf("collect: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	hc := f.HTTP
	if hc == nil {
		hc = fetchHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("collect: GET %s%s: %w", base, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("collect: GET %s%s: read: %w", base, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		return nil, fmt.Errorf("collect: GET %s%s: %s: %s", base, path, resp.Status, msg)
	}
	return body, nil
}
