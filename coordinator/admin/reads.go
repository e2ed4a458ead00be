package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/lease"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Response headers of the transaction reads.
const (
	// HeaderRead says how a read was served: "linearizable" or "stale".
	HeaderRead = "X-Shardmatch-Read"
	// HeaderAppliedIndex is the node's FSM applied index when a local read was served.
	HeaderAppliedIndex = "X-Shardmatch-Applied-Index"
)

var pj = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false}

// protoJSON renders m for embedding in a JSON response.
func protoJSON(m proto.Message) (json.RawMessage, error) {
	b, err := pj.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("admin: encode %T: %w", m, err)
	}
	return b, nil
}

func (s *Server) writeProto(w http.ResponseWriter, m proto.Message) {
	b, err := protoJSON(m)
	if err != nil {
		s.log.Error("encode response", "err", err)
		writeError(w, &Error{Code: CodeInternal, Message: "cannot encode the response"})
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// GET /v1/txns/{id}: linearizable through Node.Status (leader only), or with
// ?stale=true from this node's FSM.
func (s *Server) getTxn(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	stale, e := boolParam(r, "stale")
	if e != nil {
		writeError(w, e)
		return
	}
	if stale {
		rec, ok := localTxn(s.state, id)
		w.Header().Set(HeaderRead, "stale")
		w.Header().Set(HeaderAppliedIndex, strconv.FormatUint(s.state.AppliedIndex(), 10))
		if !ok {
			writeError(w, &Error{Code: CodeNotFound, Message: fmt.Sprintf("no transaction %q on this node", id)})
			return
		}
		s.writeProto(w, rec)
		return
	}
	ctx, cancel := readCtx(r, s.cfg.ReadTimeout)
	defer cancel()
	rec, err := s.node.Status(ctx, id)
	if err != nil {
		s.fail(w, r, toError(err, s.raft))
		return
	}
	w.Header().Set(HeaderRead, "linearizable")
	s.writeProto(w, rec)
}

// GET /v1/leases/{player}: the player's lease in this node's FSM.
func (s *Server) getLease(w http.ResponseWriter, r *http.Request) {
	player := r.PathValue("player")
	l, ok := s.state.Lease(player)
	if !ok {
		writeError(w, &Error{Code: CodeNotFound, Message: fmt.Sprintf("player %q holds no lease", player)})
		return
	}
	w.Header().Set(HeaderAppliedIndex, strconv.FormatUint(s.state.AppliedIndex(), 10))
	s.writeProto(w, leaseRecord(l))
}

func leaseRecord(l lease.Lease) *smv1.LeaseRecord {
	st := smv1.LeaseState_LEASE_STATE_UNSPECIFIED
	switch l.State {
	case lease.Reserved:
		st = smv1.LeaseState_LEASE_STATE_RESERVED
	case lease.Active:
		st = smv1.LeaseState_LEASE_STATE_ACTIVE
	}
	return &smv1.LeaseRecord{PlayerId: l.Player, Txid: l.TxID, Token: l.Token, State: st,
		TtlMs: l.TTL.Milliseconds(), RenewSeq: l.RenewSeq}
}

// shardList is GET /v1/shards.
type shardList struct {
	Shards []json.RawMessage `json:"shards"`
}

func (s *Server) listShards(w http.ResponseWriter, _ *http.Request) {
	out := shardList{Shards: []json.RawMessage{}}
	for _, sh := range s.state.Shards() {
		b, err := protoJSON(sh)
		if err != nil {
			s.log.Error("encode shard", "shard", sh.GetShardId(), "err", err)
			writeError(w, &Error{Code: CodeInternal, Message: "cannot encode the response"})
			return
		}
		out.Shards = append(out.Shards, b)
	}
	writeJSON(w, http.StatusOK, out)
}

func boolParam(r *http.Request, name string) (bool, *Error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, invalid(name, "%s=%q is not a boolean", name, v)
	}
	return b, nil
}
