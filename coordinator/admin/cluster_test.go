package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/admin"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

const token = "test-token"

// yesShard votes YES to everything.
type yesShard struct{}

func (yesShard) Prepare(context.Context, string, []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error) {
	return nil, nil
}
func (yesShard) Commit(context.Context, string, []*smv1.ShardPlayer) error { return nil }
func (yesShard) Abort(context.Context, string, []*smv1.ShardPlayer) error  { return nil }

// adminCluster is a real 3-node coordinator.LocalCluster with shards s1 and s2 on the
// in-memory participant network, and one admin server per node behind httptest.
type adminCluster struct {
	t       *testing.T
	lc      *coordinator.LocalCluster
	metrics map[string]*admin.Metrics
	servers []*admin.Server
	https   []*httptest.Server
	hc      *http.Client
	// dropAcks drops the acks shard s2 sends while set: its decisions stay undelivered.
	dropAcks atomic.Bool
}

func newAdminCluster(t *testing.T) *adminCluster {
	t.Helper()
	ref := clock.NewReal()
	c := &adminCluster{t: t, metrics: map[string]*admin.Metrics{}, hc: &http.Client{Transport: &http.Transport{}}}
	netw := twophase.NewInmemNetwork(twophase.InmemConfig{Clock: ref})
	t.Cleanup(func() { _ = netw.Close() })
	netw.SetHook(func(from, _ string, msg proto.Message) bool {
		r, ok := msg.(*smv1.ShardReply)
		return !(ok && from == "s2" && r.GetAck() != nil && c.dropAcks.Load())
	})
	for _, id := range []string{"s1", "s2"} {
		p, err := twophase.NewParticipant(twophase.ParticipantConfig{ShardID: id, Handler: yesShard{},
			Journal: twophase.NewMemJournal(), Clock: ref})
		if err != nil {
			t.Fatal(err)
		}
		netw.AddShard(id, p)
	}
	for _, id := range []string{"c1", "c2", "c3"} {
		m, err := admin.NewMetrics(admin.MetricsConfig{NodeID: id})
		if err != nil {
			t.Fatal(err)
		}
		c.metrics[id] = m
	}
	lc, err := coordinator.NewLocalCluster(coordinator.LocalClusterConfig{
		DataDir: t.TempDir(), AttemptTimeout: 2 * time.Second,
		Participants: func(id string) coordinator.TransportFactory {
			return func(h twophase.ReplyHandler) (twophase.Transport, error) { return netw.Coordinator(id, h), nil }
		},
		Configure: func(id string, cfg *coordinator.Config) {
			cfg.Clock = ref
			cfg.ResendInitial, cfg.ResendMax, cfg.ExpiryScan = 20*time.Millisecond, 200*time.Millisecond, 20*time.Millisecond
			cfg.OnDecided = c.metrics[id].ObserveDecision
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.lc = lc
	t.Cleanup(func() {
		for _, h := range c.https {
			h.Close()
		}
		c.hc.CloseIdleConnections()
		lc.Shutdown()
		for _, s := range c.servers {
			s.Close()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, s := range []string{"s1", "s2"} {
		if err := lc.OnLeader(ctx, func(n *coordinator.Node) error {
			return n.RegisterShard(ctx, &smv1.ShardInfo{ShardId: s, Region: "eu"})
		}); err != nil {
			t.Fatalf("register %s: %v", s, err)
		}
	}
	// Each node advertises its httptest URL, and learns the leader's as serve's nodes
	// do over NATS: from the leader's answer to the leader-index request.
	handlers := make([]atomic.Pointer[http.Handler], lc.Size())
	for i := range lc.Size() {
		c.https = append(c.https, httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			(*handlers[i].Load()).ServeHTTP(w, r)
		})))
	}
	leaderIndex := admin.LeaderIndexFunc(func(context.Context) (admin.LeaderIndex, error) {
		for i := range lc.Size() {
			if n := lc.Node(i); n != nil && n.IsLeader() {
				return admin.LeaderIndex{NodeID: n.ID(), Term: n.Raft().CurrentTerm(), CommitIndex: n.Raft().CommitIndex(),
					AdminURL: c.url(i)}, nil
			}
		}
		return admin.LeaderIndex{}, errors.New("no leader")
	})
	for i := range lc.Size() {
		n := lc.Node(i)
		srv, err := admin.New(admin.Config{Node: n, AuthToken: token, Metrics: c.metrics[n.ID()],
			AdvertiseURL: c.url(i), LeaderIndex: leaderIndex})
		if err != nil {
			t.Fatal(err)
		}
		c.servers = append(c.servers, srv)
		h := srv.Handler()
		handlers[i].Store(&h)
	}
	return c
}

func (c *adminCluster) url(i int) string { return c.https[i].URL }

// call makes one request to node i and returns the status and body.
func (c *adminCluster) call(i int, method, path, tok, body string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url(i)+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, b
}

func (c *adminCluster) statuses() []*admin.Status {
	c.t.Helper()
	var out []*admin.Status
	for i := range c.https {
		code, b := c.call(i, "GET", "/v1/status", "", "")
		var st admin.Status
		if code != 200 || json.Unmarshal(b, &st) != nil {
			c.t.Fatalf("status of node %d: %d %s", i, code, b)
		}
		out = append(out, &st)
	}
	return out
}

// settled: one leader every node agrees on, in one term, everything applied everywhere
// and nothing in flight. It returns the leader's index.
func (c *adminCluster) settled() (int, error) {
	sts := c.statuses()
	leader := -1
	for i, st := range sts {
		if st.Role == "leader" && st.Leading {
			if leader >= 0 {
				return -1, fmt.Errorf("two leaders: %s and %s", sts[leader].NodeID, st.NodeID)
			}
			leader = i
		}
	}
	if leader < 0 {
		return -1, fmt.Errorf("no leader")
	}
	l := sts[leader]
	for _, st := range sts {
		switch {
		case !st.Ready:
			return -1, fmt.Errorf("%s not ready: %s", st.NodeID, st.NotReady)
		case st.LeaderID != l.NodeID || st.Term != l.Term:
			return -1, fmt.Errorf("%s sees leader %s term %d, leader is %s term %d", st.NodeID, st.LeaderID, st.Term, l.NodeID, l.Term)
		case st.AppliedIndex != l.CommitIndex || st.FSMAppliedIndex != l.FSMAppliedIndex:
			return -1, fmt.Errorf("%s applied %d/%d, leader committed %d", st.NodeID, st.AppliedIndex, st.FSMAppliedIndex, l.CommitIndex)
		case st.Counts.Preparing+st.Counts.Undelivered > 0:
			return -1, fmt.Errorf("%s has txns in flight: %+v", st.NodeID, st.Counts)
		}
	}
	return leader, nil
}

// eventually polls f until it succeeds or d passes.
func eventually[T any](t *testing.T, d time.Duration, f func() (T, error)) T {
	t.Helper()
	deadline := time.After(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		v, err := f()
		if err == nil {
			return v
		}
		select {
		case <-deadline:
			t.Fatalf("gave up after %s: %v", d, err)
		case <-tick.C:
		}
	}
}

func duel(id, a, b string) *smv1.Proposal {
	return &smv1.Proposal{ProposalId: id, Mode: "duel", MatchTtlMs: time.Minute.Milliseconds(), Teams: []*smv1.Team{
		{Players: []*smv1.Player{{PlayerId: a, ShardId: "s1"}}}, {Players: []*smv1.Player{{PlayerId: b, ShardId: "s2"}}}}}
}

func protoUnmarshal(b []byte, m proto.Message) error { return protojson.Unmarshal(b, m) }
