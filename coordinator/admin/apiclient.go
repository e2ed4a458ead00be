package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// APIClient calls a cluster's admin API through any of its nodes: the operator's CLI
// (coordinator txn, lease, shard, cluster, leader, deadletter). Every call goes to the
// first endpoint that answers; a node that cannot be reached is skipped, and a
// NOT_LEADER answer that names the leader's admin URL (leader_admin_url) is followed
// once, to that URL, so that an operator can give any node. Answers other than 2xx are
// returned as *Error.
type APIClient struct {
	// Endpoints are the nodes' admin base URLs (BaseURL form), tried in order.
	Endpoints []string
	// HTTP makes the requests (nil: a client with a 10s timeout).
	HTTP *http.Client
	// Token is sent as a bearer token: the read token for reads, the operate token for
	// operator actions (which also reads).
	Token string
}

// TxnQuery selects the transactions of ListTxns (GET /v1/txns); zero fields are the
// server's defaults.
type TxnQuery struct {
	// State is preparing, committed, aborted, undelivered, stuck or all ("": every
	// unfinished one).
	State string
	// Since keeps the txns begun at or after it: RFC 3339 or a Go duration before now.
	Since string
	// Shard keeps the txns touching that shard.
	Shard string
	// OlderThan is the threshold of state=stuck (a Go duration).
	OlderThan string
	Limit     int
	Cursor    string
}

// TxnPage is one page of GET /v1/txns; NextCursor is "" on the last page.
type TxnPage struct {
	Txns       []json.RawMessage `json:"txns"`
	Total      int               `json:"total"`
	Truncated  bool              `json:"truncated,omitempty"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// Records decodes the page's transactions.
func (p *TxnPage) Records() ([]*smv1.TxnRecord, error) {
	out := make([]*smv1.TxnRecord, 0, len(p.Txns))
	for _, raw := range p.Txns {
		var rec smv1.TxnRecord
		if err := protojson.Unmarshal(raw, &rec); err != nil {
			return nil, fmt.Errorf("admin: decode txn: %w", err)
		}
		out = append(out, &rec)
	}
	return out, nil
}

// RedriveResult answers POST /v1/txns/{id}/redrive: the shards the decision was re-sent to.
type RedriveResult struct {
	TxID   string   `json:"txid"`
	Shards []string `json:"shards"`
}

// ActionResult is the answer of an operator action that only confirms it
// ({"ok":true,...}); fields the action does not set stay empty.
type ActionResult struct {
	OK    bool   `json:"ok"`
	TxID  string `json:"txid,omitempty"`
	Shard string `json:"shard,omitempty"`
	State string `json:"state,omitempty"`
	From  string `json:"from,omitempty"`
	To    string `json:"to,omitempty"`
}

// Status is GET /v1/status of the first node that answers.
func (c *APIClient) Status(ctx context.Context) (*Status, error) {
	var st Status
	base, err := c.do(ctx, http.MethodGet, PathStatus, nil, nil, &st, false)
	st.Endpoint = base
	return &st, err
}

// Txn is GET /v1/txns/{id}: a transaction by txid or proposal id (linearizable: the
// leader answers, followed from any node).
func (c *APIClient) Txn(ctx context.Context, id string) (*smv1.TxnRecord, json.RawMessage, error) {
	var raw json.RawMessage
	if _, err := c.do(ctx, http.MethodGet, PathFor(PathTxn, id), nil, nil, &raw, true); err != nil {
		return nil, nil, err
	}
	var rec smv1.TxnRecord
	if err := protojson.Unmarshal(raw, &rec); err != nil {
		return nil, nil, fmt.Errorf("admin: decode txn: %w", err)
	}
	return &rec, raw, nil
}

// ListTxns is one page of GET /v1/txns.
func (c *APIClient) ListTxns(ctx context.Context, q TxnQuery) (*TxnPage, error) {
	v := url.Values{}
	for k, s := range map[string]string{"state": q.State, "since": q.Since, "shard": q.Shard, "older_than": q.OlderThan, "cursor": q.Cursor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var p TxnPage
	if _, err := c.do(ctx, http.MethodGet, PathTxns, v, nil, &p, false); err != nil {
		return nil, err
	}
	return &p, nil
}

// ListAllTxns follows the cursors from q until the last page, or until limit records
// (0: no bound), and returns them with the server's total.
func (c *APIClient) ListAllTxns(ctx context.Context, q TxnQuery, limit int) (*TxnPage, error) {
	all := &TxnPage{Txns: []json.RawMessage{}}
	for {
		p, err := c.ListTxns(ctx, q)
		if err != nil {
			return nil, err
		}
		all.Txns = append(all.Txns, p.Txns...)
		all.Total = max(all.Total, p.Total)
		if limit > 0 && len(all.Txns) >= limit {
			all.Txns = all.Txns[:limit]
			all.Truncated = p.NextCursor != "" || len(all.Txns) < p.Total
			return all, nil
		}
		if p.NextCursor == "" || p.NextCursor == q.Cursor {
			// A server without cursors answers truncated and no cursor: say so.
			all.Truncated = p.Truncated && p.NextCursor == ""
			return all, nil
		}
		q.Cursor = p.NextCursor
	}
}

// AbortTxn is POST /v1/txns/{id}/abort: force-abort an undecided transaction.
func (c *APIClient) AbortTxn(ctx context.Context, id string) (*ActionResult, error) {
	var r ActionResult
	_, err := c.do(ctx, http.MethodPost, PathFor(PathTxnAbort, id), nil, nil, &r, true)
	return &r, err
}

// RedriveTxn is POST /v1/txns/{id}/redrive: re-send the decision, now, to every shard
// that has not acked it.
func (c *APIClient) RedriveTxn(ctx context.Context, id string) (*RedriveResult, error) {
	var r RedriveResult
	_, err := c.do(ctx, http.MethodPost, PathFor(PathTxnRedrive, id), nil, nil, &r, true)
	return &r, err
}

// ResolveTxn is POST /v1/txns/{id}/resolve: record the ack of a disabled shard.
func (c *APIClient) ResolveTxn(ctx context.Context, id, shard string) (*ActionResult, error) {
	var r ActionResult
	_, err := c.do(ctx, http.MethodPost, PathFor(PathTxnResolve, id), nil,
		map[string]string{"shard": shard}, &r, true)
	return &r, err
}

// DeadLetters is GET /v1/deadletters (olderThan "": the server's default).
func (c *APIClient) DeadLetters(ctx context.Context, olderThan string) (*DeadLetterList, error) {
	v := url.Values{}
	if olderThan != "" {
		v.Set("older_than", olderThan)
	}
	var d DeadLetterList
	_, err := c.do(ctx, http.MethodGet, PathDeadLetters, v, nil, &d, false)
	return &d, err
}

// Lease is GET /v1/leases/{player}.
func (c *APIClient) Lease(ctx context.Context, player string) (*smv1.LeaseRecord, json.RawMessage, error) {
	var raw json.RawMessage
	if _, err := c.do(ctx, http.MethodGet, PathFor(PathLease, player), nil, nil, &raw, false); err != nil {
		return nil, nil, err
	}
	var rec smv1.LeaseRecord
	if err := protojson.Unmarshal(raw, &rec); err != nil {
		return nil, nil, fmt.Errorf("admin: decode lease: %w", err)
	}
	return &rec, raw, nil
}

// Shards is GET /v1/shards.
func (c *APIClient) Shards(ctx context.Context) ([]*smv1.ShardInfo, []json.RawMessage, error) {
	var l struct {
		Shards []json.RawMessage `json:"shards"`
	}
	if _, err := c.do(ctx, http.MethodGet, PathShards, nil, nil, &l, false); err != nil {
		return nil, nil, err
	}
	out := make([]*smv1.ShardInfo, 0, len(l.Shards))
	for _, raw := range l.Shards {
		var sh smv1.ShardInfo
		if err := protojson.Unmarshal(raw, &sh); err != nil {
			return nil, nil, fmt.Errorf("admin: decode shard: %w", err)
		}
		out = append(out, &sh)
	}
	return out, l.Shards, nil
}

// SetShardState is POST /v1/shards/{id}/state: active, draining or disabled.
func (c *APIClient) SetShardState(ctx context.Context, id, state string) (*ActionResult, error) {
	var r ActionResult
	_, err := c.do(ctx, http.MethodPost, PathFor(PathShardState, id), nil,
		map[string]string{"state": state}, &r, true)
	return &r, err
}

// TransferLeader is POST /v1/leader/transfer, to the server id at Raft address addr,
// or (both "") to the server Raft picks.
func (c *APIClient) TransferLeader(ctx context.Context, id, addr string) (*ActionResult, error) {
	var body any
	if id != "" {
		body = map[string]string{"id": id, "addr": addr}
	}
	var r ActionResult
	_, err := c.do(ctx, http.MethodPost, PathLeaderTransfer, nil, body, &r, true)
	return &r, err
}

// do makes the call on the first endpoint that answers and decodes a 2xx answer into
// out; it returns the base URL that answered. A NOT_LEADER answer naming the leader's
// admin URL is retried there, once. With toLeader, a NOT_LEADER answer without that URL
// moves on to the next endpoint (one of them may lead).
func (c *APIClient) do(ctx context.Context, method, path string, q url.Values, body, out any, toLeader bool) (string, error) {
	if len(c.Endpoints) == 0 {
		return "", errors.New("admin: no endpoints")
	}
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return "", err
		}
	}
	var last error
	for _, base := range c.Endpoints {
		leaderURL, err := c.once(ctx, method, base, path, q, b, out)
		if err == nil {
			return base, nil
		}
		if leaderURL != "" && leaderURL != base {
			if _, err = c.once(ctx, method, leaderURL, path, q, b, out); err == nil {
				return leaderURL, nil
			}
			return leaderURL, err
		}
		last = err
		var e *Error
		if errors.As(err, &e) && !(e.Code == CodeNotLeader && toLeader) && e.Code != CodeUnavailable {
			return base, err // an answer: another node would give the same
		}
		if ctx.Err() != nil {
			break
		}
	}
	return "", last
}

// once makes one request to base. On NOT_LEADER it returns the leader's admin URL if
// the answer names one.
func (c *APIClient) once(ctx context.Context, method, base, path string, q url.Values, body []byte, out any) (leaderURL string, _ error) {
	u := strings.TrimRight(BaseURL(base, false), "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return "", fmt.Errorf("admin: %s %s: %w", method, u, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("admin: %s %s: %w", method, base, ExplainTLS(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return "", fmt.Errorf("admin: %s %s: read: %w", method, u, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb errorBody
		if json.Unmarshal(raw, &eb) == nil && eb.Error != nil && eb.Error.Code != "" {
			eb.Error.HTTPStatus = resp.StatusCode
			if eb.Error.Code == CodeNotLeader {
				return strings.TrimRight(eb.Error.LeaderAdminURL, "/"), eb.Error
			}
			return "", eb.Error
		}
		return "", decodeError(resp.StatusCode, raw)
	}
	if out == nil {
		return "", nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return "", fmt.Errorf("admin: %s %s: decode: %w", method, u, err)
	}
	return "", nil
}
