package admin

import (
	"fmt"
	"net/http"

	"github.com/hashicorp/raft"
)

// Operator actions. Each runs behind Server.operate (the operate role, audited) and answers
// {"ok": true, ...} or an error.

// transferRequest is POST /v1/leader/transfer's optional body: the server to hand
// leadership to (both fields, or neither for Raft's choice).
type transferRequest struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// transferResponse answers a leadership transfer.
type transferResponse struct {
	OK bool `json:"ok"`
	// From is the node that led; To the target asked for, if any.
	From string `json:"from"`
	To   string `json:"to,omitempty"`
}

func (s *Server) transferLeader(w http.ResponseWriter, r *http.Request) {
	var req transferRequest
	if e := decodeBody(w, r, &req, true); e != nil {
		writeError(w, e)
		return
	}
	if (req.ID == "") != (req.Addr == "") {
		writeError(w, invalid("id", "give both id and addr of the target server, or neither"))
		return
	}
	if req.ID == s.node.ID() {
		writeError(w, invalid("id", "%s is this node: name another server", req.ID))
		return
	}
	if s.raft.State() != raft.Leader {
		s.fail(w, r, toError(notLeader(s.raft), s.raft))
		return
	}
	var f raft.Future
	if req.ID != "" {
		f = s.raft.LeadershipTransferToServer(raft.ServerID(req.ID), raft.ServerAddress(req.Addr))
	} else {
		f = s.raft.LeadershipTransfer()
	}
	// The future resolves once the target won (or Raft gave up, after an election
	// timeout): bounded without a context.
	if err := f.Error(); err != nil {
		s.log.Warn("leadership transfer failed", "to", req.ID, "err", err)
		s.fail(w, r, toError(err, s.raft))
		return
	}
	s.log.Info("leadership transferred", "to", req.ID)
	writeJSON(w, http.StatusOK, transferResponse{OK: true, From: s.node.ID(), To: req.ID})
}

// voterRequest is POST /v1/voters's body.
type voterRequest struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// changeResponse answers a membership change with the configuration entry's index.
type changeResponse struct {
	OK    bool   `json:"ok"`
	ID    string `json:"id"`
	Index uint64 `json:"index"`
}

func (s *Server) addVoter(w http.ResponseWriter, r *http.Request) {
	var req voterRequest
	if e := decodeBody(w, r, &req, false); e != nil {
		writeError(w, e)
		return
	}
	switch {
	case req.ID == "":
		writeError(w, invalid("id", "id (the new server's Raft id) is required"))
		return
	case req.Addr == "":
		writeError(w, invalid("addr", "addr (the new server's Raft address) is required"))
		return
	case len(req.ID) > 256 || len(req.Addr) > 1024:
		writeError(w, invalid("id", "id or addr is too long"))
		return
	}
	if s.raft.State() != raft.Leader {
		s.fail(w, r, toError(notLeader(s.raft), s.raft))
		return
	}
	f := s.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.Addr), 0, s.cfg.ChangeTimeout)
	if err := f.Error(); err != nil {
		s.log.Warn("add voter failed", "id", req.ID, "addr", req.Addr, "err", err)
		s.fail(w, r, toError(err, s.raft))
		return
	}
	s.log.Info("voter added", "id", req.ID, "addr", req.Addr, "index", f.Index())
	writeJSON(w, http.StatusOK, changeResponse{OK: true, ID: req.ID, Index: f.Index()})
}

func (s *Server) removeVoter(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if s.raft.State() != raft.Leader {
		s.fail(w, r, toError(notLeader(s.raft), s.raft))
		return
	}
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		s.fail(w, r, toError(err, s.raft))
		return
	}
	known := false
	for _, sv := range cf.Configuration().Servers {
		known = known || string(sv.ID) == id
	}
	if !known {
		writeError(w, &Error{Code: CodeNotFound, Message: fmt.Sprintf("no server %q in the configuration", id)})
		return
	}
	f := s.raft.RemoveServer(raft.ServerID(id), 0, s.cfg.ChangeTimeout)
	if err := f.Error(); err != nil {
		s.log.Warn("remove server failed", "id", id, "err", err)
		s.fail(w, r, toError(err, s.raft))
		return
	}
	s.log.Info("server removed", "id", id, "index", f.Index())
	writeJSON(w, http.StatusOK, changeResponse{OK: true, ID: id, Index: f.Index()})
}

// abortResponse answers a force-abort.
type abortResponse struct {
	OK   bool   `json:"ok"`
	TxID string `json:"txid"`
}

// POST /v1/txns/{id}/abort: needs the optional Node.ForceAbort (501 until then).
func (s *Server) forceAbort(w http.ResponseWriter, r *http.Request) {
	fa, ok := s.node.(ForceAborter)
	if !ok {
		writeError(w, &Error{Code: CodeNotImplemented,
			Message: "this coordinator cannot force-abort transactions yet (Node.ForceAbort is missing)"})
		return
	}
	txid := r.PathValue("id")
	if rec, ok := localTxn(s.state, txid); ok { // accept a proposal id too
		txid = rec.GetTxid()
	}
	ctx, cancel := readCtx(r, s.cfg.ChangeTimeout)
	defer cancel()
	if err := fa.ForceAbort(ctx, txid); err != nil {
		s.log.Warn("force-abort failed", "txid", txid, "err", err)
		s.fail(w, r, toError(err, s.raft))
		return
	}
	s.log.Info("transaction force-aborted", "txid", txid)
	writeJSON(w, http.StatusOK, abortResponse{OK: true, TxID: txid})
}
