package admin

import (
	"fmt"
	"net/http"
	"strings"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Operator actions on delivered decisions and on shards, through the optional
// Operator side of the Node (501 without it).

func (s *Server) operator(w http.ResponseWriter) (Operator, bool) {
	op, ok := s.node.(Operator)
	if !ok {
		writeError(w, &Error{Code: CodeNotImplemented, Message: "this coordinator cannot redrive, resolve or change shard states (Node lacks Operator)"})
	}
	return op, ok
}

// RedriveResponse answers POST /v1/txns/{id}/redrive.
type RedriveResponse struct {
	OK   bool   `json:"ok"`
	TxID string `json:"txid"`
	// Shards are the shards the decision was sent to again: those that had not
	// acknowledged it.
	Shards []string `json:"shards"`
}

// POST /v1/txns/{id}/redrive: the leader sends the decision now to every shard that
// has not acknowledged it, and restarts its backoff.
func (s *Server) redrive(w http.ResponseWriter, r *http.Request) {
	op, ok := s.operator(w)
	if !ok {
		return
	}
	txid := s.txid(r.PathValue("id"))
	ctx, cancel := readCtx(r, s.cfg.ChangeTimeout)
	defer cancel()
	shards, err := op.Redrive(ctx, txid)
	if err != nil {
		s.log.Warn("redrive failed", "txid", txid, "err", err)
		s.fail(w, r, toError(err, s.raft))
		return
	}
	s.log.Info("decision redriven", "txid", txid, "shards", shards)
	writeJSON(w, http.StatusOK, RedriveResponse{OK: true, TxID: txid, Shards: shards})
}

// resolveRequest is POST /v1/txns/{id}/resolve's body.
type resolveRequest struct {
	Shard string `json:"shard"`
}

// ResolveResponse answers POST /v1/txns/{id}/resolve.
type ResolveResponse struct {
	OK    bool   `json:"ok"`
	TxID  string `json:"txid"`
	Shard string `json:"shard"`
}

// POST /v1/txns/{id}/resolve {"shard":"s3"}: log a DISABLED shard's acknowledgement of
// the decision on its behalf, which clears its dead letter.
func (s *Server) resolve(w http.ResponseWriter, r *http.Request) {
	op, ok := s.operator(w)
	if !ok {
		return
	}
	var req resolveRequest
	if e := decodeBody(w, r, &req, false); e != nil {
		writeError(w, e)
		return
	}
	if req.Shard == "" {
		writeError(w, invalid("shard", "shard (the DISABLED shard to acknowledge for) is required"))
		return
	}
	txid := s.txid(r.PathValue("id"))
	ctx, cancel := readCtx(r, s.cfg.ChangeTimeout)
	defer cancel()
	if err := op.Resolve(ctx, txid, req.Shard); err != nil {
		s.log.Warn("resolve failed", "txid", txid, "shard", req.Shard, "err", err)
		s.fail(w, r, toError(err, s.raft))
		return
	}
	s.log.Info("decision resolved for a retired shard", "txid", txid, "shard", req.Shard)
	writeJSON(w, http.StatusOK, ResolveResponse{OK: true, TxID: txid, Shard: req.Shard})
}

// shardStateRequest is POST /v1/shards/{id}/state's body.
type shardStateRequest struct {
	State string `json:"state"`
}

// ShardStateResponse answers POST /v1/shards/{id}/state.
type ShardStateResponse struct {
	OK    bool   `json:"ok"`
	Shard string `json:"shard"`
	State string `json:"state"`
}

// ParseShardState reads active, draining or disabled (any case, with or without the
// SHARD_STATE_ prefix).
func ParseShardState(v string) (smv1.ShardState, bool) {
	u := strings.ToUpper(strings.TrimSpace(v))
	switch strings.TrimPrefix(u, "SHARD_STATE_") {
	case "ACTIVE":
		return smv1.ShardState_SHARD_STATE_ACTIVE, true
	case "DRAINING":
		return smv1.ShardState_SHARD_STATE_DRAINING, true
	case "DISABLED":
		return smv1.ShardState_SHARD_STATE_DISABLED, true
	}
	return 0, false
}

// POST /v1/shards/{id}/state {"state":"draining"}: a draining or disabled shard takes
// no new match; its transactions go on to their end.
func (s *Server) setShardState(w http.ResponseWriter, r *http.Request) {
	op, ok := s.operator(w)
	if !ok {
		return
	}
	var req shardStateRequest
	if e := decodeBody(w, r, &req, false); e != nil {
		writeError(w, e)
		return
	}
	st, ok := ParseShardState(req.State)
	if !ok {
		writeError(w, invalid("state", "state %q: want active, draining or disabled", req.State))
		return
	}
	id := r.PathValue("id")
	if _, known := s.state.Shard(id); !known {
		writeError(w, &Error{Code: CodeNotFound, Message: fmt.Sprintf("no shard %q is registered", id)})
		return
	}
	ctx, cancel := readCtx(r, s.cfg.ChangeTimeout)
	defer cancel()
	if err := op.SetShardState(ctx, id, st); err != nil {
		s.log.Warn("shard state change failed", "shard", id, "state", st, "err", err)
		s.fail(w, r, toError(err, s.raft))
		return
	}
	s.log.Info("shard state changed", "shard", id, "state", st)
	writeJSON(w, http.StatusOK, ShardStateResponse{OK: true, Shard: id, State: st.String()})
}

// txid resolves id, a txid or a proposal id, to a txid through this node's FSM.
func (s *Server) txid(id string) string {
	if rec, ok := localTxn(s.state, id); ok {
		return rec.GetTxid()
	}
	return id
}
