package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/shardmatch/shardmatch/chaos/collect"
	"github.com/shardmatch/shardmatch/chaos/history"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// AuditTargets are where the final state is read: every coordinator's and every
// shard's admin API by node id, and the directory the pods wrote their history
// files to (--history-dir; "" if they recorded none).
type AuditTargets struct {
	Coordinators map[string]string // node id -> http://ip:port
	Shards       map[string]string // shard id -> http://ip:port
	HistoryDir   string
	// HTTP and Token, if set, read the coordinators' admin APIs (an https client
	// trusting the admin CA; the read token): a secured install.
	HTTP  *http.Client
	Token string
}

// Audit waits (up to settle) until the run has settled (every txn DONE on every
// node, no shard holding a txn prepared, the nodes caught up), then checks
// invariants I1–I7 over the proposers' history, the pods' recorded effects and the
// final state. settled is false if the run did not settle in time; the report then
// says what it could not check.
func Audit(ctx context.Context, rec *history.Recorder, t AuditTargets, settle time.Duration) (history.Report, *history.History, error) {
	h := rec.History()
	if t.HistoryDir != "" {
		shardEvs, leaseEvs, err := collect.ReadDir(t.HistoryDir)
		if err != nil {
			return history.Report{}, nil, err
		}
		h.ShardEvents, h.LeaseEvents = shardEvs, leaseEvs
	}
	sctx, cancel := context.WithTimeout(ctx, settle)
	defer cancel()
	h.Final, h.Settled = settleFinal(sctx, t)
	if t.HistoryDir != "" { // events written while settling
		if shardEvs, leaseEvs, err := collect.ReadDir(t.HistoryDir); err == nil {
			h.ShardEvents, h.LeaseEvents = shardEvs, leaseEvs
		}
	}
	return history.Check(h), h, nil
}

// settleFinal polls every node and shard until the state has converged.
func settleFinal(ctx context.Context, t AuditTargets) (history.Final, bool) {
	var last history.Final
	var prevMax uint64
	for {
		f, complete := pollFinal(ctx, t)
		if f.Nodes != nil {
			last = f
		}
		if complete {
			var ok bool
			if prevMax, ok = history.Converged(f, prevMax); ok {
				return f, true
			}
		}
		select {
		case <-ctx.Done():
			return last, false
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func pollFinal(ctx context.Context, t AuditTargets) (history.Final, bool) {
	f := history.Final{Nodes: map[string]history.NodeFinal{}, Shards: map[string]history.ShardFinal{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id, url := range t.Coordinators {
		wg.Go(func() {
			if nf, err := fetchNodeFinal(ctx, t, url); err == nil {
				mu.Lock()
				f.Nodes[id] = nf
				mu.Unlock()
			}
		})
	}
	for id, url := range t.Shards {
		wg.Go(func() {
			if sf, err := collect.FetchShardFinal(ctx, url); err == nil {
				mu.Lock()
				f.Shards[id] = sf
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return f, len(f.Nodes) == len(t.Coordinators) && len(f.Shards) == len(t.Shards)
}

// fetchNodeFinal is collect.FetchNodeFinal through t's client and token.
func fetchNodeFinal(ctx context.Context, t AuditTargets, url string) (history.NodeFinal, error) {
	if t.HTTP == nil && t.Token == "" {
		return collect.FetchNodeFinal(ctx, url)
	}
	hc := t.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+collect.NodeStatePath, nil)
	if err != nil {
		return history.NodeFinal{}, err
	}
	req.Header.Set("Accept", "application/json")
	if t.Token != "" {
		req.Header.Set("Authorization", "Bearer "+t.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return history.NodeFinal{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return history.NodeFinal{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return history.NodeFinal{}, fmt.Errorf("GET %s%s: %s", url, collect.NodeStatePath, resp.Status)
	}
	var st smv1.FSMState
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, &st); err != nil {
		return history.NodeFinal{}, fmt.Errorf("decode %s%s: %w", url, collect.NodeStatePath, err)
	}
	return collect.NodeFinal(&st), nil
}
