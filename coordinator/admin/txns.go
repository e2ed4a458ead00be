package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/shardmatch/shardmatch/coordinator"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Defaults of the transaction listings.
const (
	// DefaultStuckAfter is how long a decision may stay unacknowledged before
	// state=stuck lists it (older_than).
	DefaultStuckAfter = 30 * time.Second
	// DefaultDeadLetterAfter is GET /v1/deadletters's older_than.
	DefaultDeadLetterAfter = time.Minute
	// MaxListLimit caps a listing's limit parameter.
	MaxListLimit = 10000
)

// TxnList is GET /v1/txns.
type TxnList struct {
	Txns []json.RawMessage `json:"txns"`
	// Total is how many txns match on every page; Truncated is set when more pages
	// follow, and NextCursor is then the cursor of the next one ("" on the last page).
	Total      int    `json:"total"`
	Truncated  bool   `json:"truncated,omitempty"`
	NextCursor string `json:"next_cursor"`
}

var (
	decidedUnfinished = []smv1.TxnState{smv1.TxnState_TXN_STATE_COMMITTED, smv1.TxnState_TXN_STATE_ABORTED}
	unfinished        = []smv1.TxnState{smv1.TxnState_TXN_STATE_PREPARING, smv1.TxnState_TXN_STATE_COMMITTED, smv1.TxnState_TXN_STATE_ABORTED}
)

// GET /v1/txns: this node's txns, in log order, paged (see doc.go for the parameters).
func (s *Server) listTxns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	now := s.cfg.Clock.Now()
	var tq coordinator.TxnQuery
	olderThan, e := durationParam(q, "older_than", DefaultStuckAfter)
	if e != nil {
		writeError(w, e)
		return
	}
	switch st := q.Get("state"); st {
	case "": // what a leader drives
		tq.States = unfinished
	case "all":
	case "preparing":
		tq.States = []smv1.TxnState{smv1.TxnState_TXN_STATE_PREPARING}
	case "undelivered":
		tq.States = decidedUnfinished
	case "committed":
		tq.Outcome = smv1.Outcome_OUTCOME_COMMITTED
	case "aborted":
		tq.Outcome = smv1.Outcome_OUTCOME_ABORTED
	case "stuck":
		tq.States = unfinished
		tq.Keep = func(rec *smv1.TxnRecord) bool { return s.stuck(rec, now, olderThan) }
	default:
		writeError(w, invalid("state", "unknown state %q: want preparing, committed, aborted, undelivered, stuck or all", st))
		return
	}
	if v := q.Get("since"); v != "" {
		since, err := parseSince(v, now)
		if err != nil {
			writeError(w, invalid("since", "since=%q: want an RFC 3339 time (2026-12-05T08:00:00Z) or a Go duration back from now (15m)", v))
			return
		}
		tq.SinceUnixMs = max(since.UnixMilli(), 1)
	}
	tq.Shard = q.Get("shard")
	if tq.Limit, e = s.limitParam(q); e != nil {
		writeError(w, e)
		return
	}
	tq.After = q.Get("cursor")
	page, err := s.state.ListTxns(tq)
	if err != nil {
		var ie *coordinator.InvalidError
		if errors.As(err, &ie) {
			writeError(w, invalid(ie.Field, "%s", ie.Reason))
			return
		}
		s.fail(w, r, toError(err, s.raft))
		return
	}
	out := TxnList{Txns: make([]json.RawMessage, 0, len(page.Txns)), Total: page.Total, NextCursor: page.Next, Truncated: page.Next != ""}
	for _, t := range page.Txns {
		b, err := protoJSON(t)
		if err != nil {
			s.log.Error("encode txn", "txid", t.GetTxid(), "err", err)
			writeError(w, &Error{Code: CodeInternal, Message: "cannot encode the response"})
			return
		}
		out.Txns = append(out.Txns, b)
	}
	w.Header().Set(HeaderRead, "stale")
	w.Header().Set(HeaderAppliedIndex, strconv.FormatUint(s.state.AppliedIndex(), 10))
	writeJSON(w, http.StatusOK, out)
}

// stuck: PREPARING past its prepare deadline (the leader should have decided), or
// decided and not acknowledged by every shard for olderThan or more.
func (s *Server) stuck(rec *smv1.TxnRecord, now time.Time, olderThan time.Duration) bool {
	switch st := rec.GetState(); st {
	case smv1.TxnState_TXN_STATE_PREPARING:
		created := rec.GetDecision().GetCreatedUnixMs()
		if created == 0 {
			return false
		}
		timeout := s.cfg.PrepareTimeout
		if ms := rec.GetProposal().GetPrepareTimeoutMs(); ms > 0 {
			timeout = time.Duration(ms) * time.Millisecond
		}
		return now.After(time.UnixMilli(created).Add(timeout))
	case smv1.TxnState_TXN_STATE_COMMITTED, smv1.TxnState_TXN_STATE_ABORTED:
		decided := rec.GetDecision().GetDecidedUnixMs()
		return decided > 0 && now.Sub(time.UnixMilli(decided)) >= olderThan
	}
	return false
}

// DeadLetter is one decision a shard has not acknowledged, in GET /v1/deadletters.
type DeadLetter struct {
	TxID    string `json:"txid"`
	Shard   string `json:"shard"`
	Outcome string `json:"outcome"`
	// DecidedAt is when the leader decided (its wall clock); AgeSeconds how long ago.
	DecidedAt  time.Time `json:"decided_at"`
	AgeSeconds float64   `json:"age_seconds"`
	// Attempts is how many times the current leader sent the decision to the shard in
	// its term; -1 when a follower answered (?stale=true): only the leader knows.
	Attempts   int    `json:"attempts"`
	ShardState string `json:"shard_state"`
}

// DeadLetterList is GET /v1/deadletters.
type DeadLetterList struct {
	DeadLetters []DeadLetter `json:"deadletters"`
	// Total counts every dead letter; Truncated is set when limit cut the list.
	Total     int  `json:"total"`
	Truncated bool `json:"truncated,omitempty"`
}

// GET /v1/deadletters?older_than=1m&limit=N: decisions a shard has not acknowledged for
// older_than, or owed to a DISABLED shard. The leader answers (it knows the delivery
// attempts); a follower answers NOT_LEADER, or with ?stale=true from its own state
// with attempts -1.
func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	stale, e := boolParam(r, "stale")
	if e != nil {
		writeError(w, e)
		return
	}
	olderThan, e := durationParam(q, "older_than", DefaultDeadLetterAfter)
	if e != nil {
		writeError(w, e)
		return
	}
	limit, e := s.limitParam(q)
	if e != nil {
		writeError(w, e)
		return
	}
	op, _ := s.node.(Operator)
	if !stale && !s.node.IsLeader() {
		s.fail(w, r, toError(notLeader(s.raft), s.raft))
		return
	}
	shardState := map[string]smv1.ShardState{}
	for _, sh := range s.state.Shards() {
		shardState[sh.GetShardId()] = sh.GetState()
	}
	page, err := s.state.ListTxns(coordinator.TxnQuery{States: decidedUnfinished})
	if err != nil {
		s.fail(w, r, toError(err, s.raft))
		return
	}
	now := s.cfg.Clock.Now()
	out := DeadLetterList{DeadLetters: []DeadLetter{}}
	for _, rec := range page.Txns {
		decided := time.UnixMilli(rec.GetDecision().GetDecidedUnixMs())
		age := now.Sub(decided)
		var attempts map[string]int
		if !stale && op != nil {
			attempts, _ = op.DeliveryAttempts(rec.GetTxid())
		}
		for _, sh := range rec.GetShards() {
			if slices.Contains(rec.GetAcked(), sh) {
				continue
			}
			st := shardState[sh]
			if age < olderThan && st != smv1.ShardState_SHARD_STATE_DISABLED {
				continue
			}
			out.Total++
			if len(out.DeadLetters) >= limit {
				out.Truncated = true
				continue
			}
			dl := DeadLetter{TxID: rec.GetTxid(), Shard: sh, Outcome: rec.GetDecision().GetOutcome().String(),
				DecidedAt: decided.UTC(), AgeSeconds: age.Seconds(), Attempts: attempts[sh], ShardState: st.String()}
			if stale {
				dl.Attempts = -1
			}
			out.DeadLetters = append(out.DeadLetters, dl)
		}
	}
	if stale {
		w.Header().Set(HeaderRead, "stale")
	}
	w.Header().Set(HeaderAppliedIndex, strconv.FormatUint(s.state.AppliedIndex(), 10))
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) limitParam(q url.Values) (int, *Error) {
	l := q.Get("limit")
	if l == "" {
		return s.cfg.ListLimit, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 || n > MaxListLimit {
		return 0, invalid("limit", "limit %q must be an integer from 1 to %d", l, MaxListLimit)
	}
	return n, nil
}

func durationParam(q url.Values, name string, def time.Duration) (time.Duration, *Error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, invalid(name, "%s=%q: want a Go duration like 30s or 5m", name, v)
	}
	return d, nil
}

// parseSince reads an RFC 3339 time, or a duration back from now.
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return time.Time{}, errors.New("bad since")
	}
	return now.Add(-d), nil
}
