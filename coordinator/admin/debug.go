package admin

import (
	"net/http"
	"strconv"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// PathDebugState is GET /v1/debug/state: this node's whole FSM state (smv1.FSMState
// as protojson, proto field names), taken under the FSM's read lock as one consistent
// snapshot at its applied_index. Read-only and always on; chaos runs read every
// node's final state from it. The answer can be large: it lists every transaction
// and lease the node holds.
const PathDebugState = "/v1/debug/state"

// stateSnapshotter is the optional stateAPI method behind /v1/debug/state;
// *coordinator.FSM has it.
type stateSnapshotter interface {
	State() *smv1.FSMState
}

func (s *Server) debugState(w http.ResponseWriter, _ *http.Request) {
	ss, ok := s.state.(stateSnapshotter)
	if !ok {
		writeError(w, &Error{Code: CodeNotImplemented, Message: "this node cannot snapshot its state"})
		return
	}
	st := ss.State()
	w.Header().Set(HeaderAppliedIndex, strconv.FormatUint(st.GetAppliedIndex(), 10))
	s.writeProto(w, st)
}
