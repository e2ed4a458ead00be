package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/lease"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// fakeRaft is a scriptable raftAPI.
type fakeRaft struct {
	mu                        sync.Mutex
	state                     raft.RaftState
	leaderID, leaderAddr      string
	term, commit, applied     uint64
	servers                   []raft.Server
	err                       error // returned by every future
	transfers, adds, removals []string
}

func (f *fakeRaft) State() raft.RaftState { f.mu.Lock(); defer f.mu.Unlock(); return f.state }
func (f *fakeRaft) LeaderWithID() (raft.ServerAddress, raft.ServerID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return raft.ServerAddress(f.leaderAddr), raft.ServerID(f.leaderID)
}
func (f *fakeRaft) CurrentTerm() uint64    { f.mu.Lock(); defer f.mu.Unlock(); return f.term }
func (f *fakeRaft) CommitIndex() uint64    { f.mu.Lock(); defer f.mu.Unlock(); return f.commit }
func (f *fakeRaft) AppliedIndex() uint64   { f.mu.Lock(); defer f.mu.Unlock(); return f.applied }
func (f *fakeRaft) LastIndex() uint64      { f.mu.Lock(); defer f.mu.Unlock(); return f.commit }
func (f *fakeRaft) LastContact() time.Time { return time.Time{} }
func (f *fakeRaft) GetConfiguration() raft.ConfigurationFuture {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fakeFuture{cfg: raft.Configuration{Servers: append([]raft.Server(nil), f.servers...)}}
}
func (f *fakeRaft) LeadershipTransfer() raft.Future {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.transfers = append(f.transfers, "")
	return fakeFuture{err: f.err}
}
func (f *fakeRaft) LeadershipTransferToServer(id raft.ServerID, _ raft.ServerAddress) raft.Future {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.transfers = append(f.transfers, string(id))
	return fakeFuture{err: f.err}
}
func (f *fakeRaft) AddVoter(id raft.ServerID, addr raft.ServerAddress, _ uint64, _ time.Duration) raft.IndexFuture {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.adds = append(f.adds, string(id)+"@"+string(addr))
	return fakeFuture{err: f.err, index: 42}
}
func (f *fakeRaft) RemoveServer(id raft.ServerID, _ uint64, _ time.Duration) raft.IndexFuture {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removals = append(f.removals, string(id))
	return fakeFuture{err: f.err, index: 43}
}

type fakeFuture struct {
	err   error
	index uint64
	cfg   raft.Configuration
}

func (f fakeFuture) Error() error                      { return f.err }
func (f fakeFuture) Index() uint64                     { return f.index }
func (f fakeFuture) Configuration() raft.Configuration { return f.cfg }

// fakeState is a stateAPI over fixed data.
type fakeState struct {
	txns   []*smv1.TxnRecord
	leases map[string]lease.Lease
	shards []*smv1.ShardInfo
	panics bool // Shards panics
}

func (f *fakeState) Txn(id string) (*smv1.TxnRecord, bool) {
	for _, t := range f.txns {
		if t.GetTxid() == id {
			return t, true
		}
	}
	return nil, false
}
func (f *fakeState) TxnByProposal(pid string) (*smv1.TxnRecord, bool) {
	for _, t := range f.txns {
		if t.GetProposal().GetProposalId() == pid {
			return t, true
		}
	}
	return nil, false
}
func (f *fakeState) Lease(p string) (lease.Lease, bool) { l, ok := f.leases[p]; return l, ok }
func (f *fakeState) Shards() []*smv1.ShardInfo {
	if f.panics {
		panic("fake state: shards exploded")
	}
	return f.shards
}
func (f *fakeState) Unfinished() []*smv1.TxnRecord {
	var out []*smv1.TxnRecord
	for _, t := range f.txns {
		if t.GetState() != smv1.TxnState_TXN_STATE_DONE {
			out = append(out, t)
		}
	}
	return out
}
func (f *fakeState) Shard(id string) (*smv1.ShardInfo, bool) {
	for _, sh := range f.shards {
		if sh.GetShardId() == id {
			return sh, true
		}
	}
	return nil, false
}

// ListTxns filters and pages like the FSM, naively: log order is token then txid, the
// cursor "<token>.<txid>".
func (f *fakeState) ListTxns(q coordinator.TxnQuery) (coordinator.TxnPage, error) {
	key := func(t *smv1.TxnRecord) string { return fmt.Sprintf("%020d.%s", t.GetToken(), t.GetTxid()) }
	var after string
	if q.After != "" {
		tok, id, ok := strings.Cut(q.After, ".")
		n, err := strconv.ParseUint(tok, 10, 64)
		if !ok || err != nil {
			return coordinator.TxnPage{}, &coordinator.InvalidError{Field: "cursor", Reason: "bad"}
		}
		after = fmt.Sprintf("%020d.%s", n, id)
	}
	var all []*smv1.TxnRecord
	for _, t := range f.txns {
		switch {
		case len(q.States) > 0 && !slices.Contains(q.States, t.GetState()),
			q.Outcome != 0 && t.GetDecision().GetOutcome() != q.Outcome,
			q.Shard != "" && !slices.Contains(t.GetShards(), q.Shard),
			q.Keep != nil && !q.Keep(t):
			continue
		}
		all = append(all, t)
	}
	slices.SortFunc(all, func(a, b *smv1.TxnRecord) int { return strings.Compare(key(a), key(b)) })
	page := coordinator.TxnPage{Total: len(all)}
	for _, t := range all {
		if key(t) <= after {
			continue
		}
		if q.Limit > 0 && len(page.Txns) == q.Limit {
			last := page.Txns[len(page.Txns)-1]
			page.Next = fmt.Sprintf("%d.%s", last.GetToken(), last.GetTxid())
			break
		}
		page.Txns = append(page.Txns, t)
	}
	return page, nil
}

func (f *fakeState) Counts() coordinator.Counts {
	c := coordinator.Counts{Txns: len(f.txns), Leases: len(f.leases), Shards: len(f.shards)}
	for _, t := range f.txns {
		switch t.GetState() {
		case smv1.TxnState_TXN_STATE_PREPARING:
			c.Preparing++
		case smv1.TxnState_TXN_STATE_COMMITTED, smv1.TxnState_TXN_STATE_ABORTED:
			c.Undelivered++
		}
	}
	return c
}
func (f *fakeState) AppliedIndex() uint64 { return 7 }
func (f *fakeState) InDoubtByShard() map[string]int {
	out := map[string]int{}
	for _, sh := range f.shards {
		out[sh.GetShardId()] = 0
	}
	for _, t := range f.txns {
		if st := t.GetState(); st == smv1.TxnState_TXN_STATE_COMMITTED || st == smv1.TxnState_TXN_STATE_ABORTED {
			for _, sh := range t.GetShards() {
				if !slices.Contains(t.GetAcked(), sh) {
					out[sh]++
				}
			}
		}
	}
	return out
}

// fakeNode is a Node whose Raft and FSM come from the fakes (newServer), not from the
// methods below.
type fakeNode struct {
	id     string
	leader bool
	r      *fakeRaft
	st     *fakeState
}

func (n *fakeNode) ID() string            { return n.id }
func (n *fakeNode) IsLeader() bool        { return n.leader }
func (n *fakeNode) Raft() *raft.Raft      { return nil }
func (n *fakeNode) FSM() *coordinator.FSM { return nil }
func (n *fakeNode) Status(_ context.Context, id string) (*smv1.TxnRecord, error) {
	if n.r.State() != raft.Leader {
		return nil, notLeader(n.r)
	}
	if rec, ok := localTxn(n.st, id); ok {
		return rec, nil
	}
	return nil, coordinator.ErrNotFound
}

// abortingNode adds the optional ForceAbort and DriverStats.
type abortingNode struct {
	*fakeNode
	mu      sync.Mutex
	aborted []string
	err     error
}

func (n *abortingNode) ForceAbort(_ context.Context, txid string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.aborted = append(n.aborted, txid)
	return n.err
}

func (n *abortingNode) DriverStats() (twophase.DriverStats, bool) {
	return twophase.DriverStats{Started: 3, Committed: 2, Aborted: 1}, n.leader
}

var (
	_ ForceAborter  = (*abortingNode)(nil)
	_ DriverStatser = (*abortingNode)(nil)
)

const testToken = "s3cret"

// fixture is a Server over fakes: a leader c1 of c1..c3 with one PREPARING txn, one
// undelivered and one DONE, a lease and two shards.
type fixture struct {
	r    *fakeRaft
	st   *fakeState
	node *fakeNode
	srv  *Server
	h    http.Handler
}

func newFixture(t *testing.T, mutate func(*Config, *fakeNode) Node) *fixture {
	t.Helper()
	r := &fakeRaft{state: raft.Leader, leaderID: "c1", leaderAddr: "c1:7000", term: 4, commit: 20, applied: 20,
		servers: []raft.Server{{ID: "c1", Address: "c1:7000"}, {ID: "c2", Address: "c2:7000"},
			{ID: "c3", Address: "c3:7000", Suffrage: raft.Nonvoter}}}
	st := &fakeState{
		txns: []*smv1.TxnRecord{
			{Txid: "tx-5-0", State: smv1.TxnState_TXN_STATE_PREPARING, Proposal: &smv1.Proposal{ProposalId: "p-prep"}},
			{Txid: "tx-6-0", State: smv1.TxnState_TXN_STATE_COMMITTED, Proposal: &smv1.Proposal{ProposalId: "p-undel"}},
			{Txid: "tx-7-0", State: smv1.TxnState_TXN_STATE_DONE, Proposal: &smv1.Proposal{ProposalId: "p-done"}},
		},
		leases: map[string]lease.Lease{"alice": {Player: "alice", TxID: "tx-6-0", Token: 6 << 16, State: lease.Active,
			TTL: time.Minute, RenewSeq: 2}},
		shards: []*smv1.ShardInfo{{ShardId: "s1", Region: "eu", State: smv1.ShardState_SHARD_STATE_ACTIVE},
			{ShardId: "s2", Region: "us", State: smv1.ShardState_SHARD_STATE_DRAINING}},
	}
	n := &fakeNode{id: "c1", leader: true, r: r, st: st}
	cfg := Config{AuthToken: testToken}
	var node Node = n
	if mutate != nil {
		node = mutate(&cfg, n)
	}
	cfg.Node = node
	srv, err := newServer(cfg, r, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return &fixture{r: r, st: st, node: n, srv: srv, h: srv.Handler()}
}

// do runs one request through the handler in memory.
func (f *fixture) do(method, target, token, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

var errBoom = errors.New("boom")
