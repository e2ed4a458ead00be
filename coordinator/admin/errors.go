package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/shardmatch/shardmatch/coordinator"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Wire error codes. The first six are coordinator.APIError's codes (smv1.ErrorCode
// without its prefix); the rest belong to the HTTP layer.
const (
	CodeInvalid          = "INVALID"
	CodeNotLeader        = "NOT_LEADER"
	CodeOutcomeUnknown   = "OUTCOME_UNKNOWN"
	CodeNotFound         = "NOT_FOUND"
	CodeConflict         = "CONFLICT"
	CodeUnavailable      = "UNAVAILABLE"
	CodeUnauthenticated  = "UNAUTHENTICATED"
	CodeForbidden        = "FORBIDDEN"
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	CodeTooLarge         = "TOO_LARGE"
	CodeNotImplemented   = "NOT_IMPLEMENTED"
	CodeInternal         = "INTERNAL"
)

// Error is the error half of every admin response, {"error": Error}. StatusClient
// returns it for a non-2xx answer.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// LeaderID and LeaderAddr (Raft address) name the leader on NOT_LEADER, when known;
	// LeaderAdminURL is the leader's admin API base URL, where to send the call again
	// (when the leader advertises one: serve --admin-advertise-url).
	LeaderID       string `json:"leader_id,omitempty"`
	LeaderAddr     string `json:"leader_addr,omitempty"`
	LeaderAdminURL string `json:"leader_admin_url,omitempty"`
	TxID           string `json:"txid,omitempty"`
	// Field names the offending field of an INVALID request.
	Field string `json:"field,omitempty"`
	// HTTPStatus is the response's status code (client side only).
	HTTPStatus int `json:"-"`
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("admin: %s: %s", e.Code, e.Message)
	if e.LeaderID != "" {
		msg += fmt.Sprintf(" (leader is %s)", e.LeaderID)
	}
	return msg
}

type errorBody struct {
	Error *Error `json:"error"`
}

// httpStatus maps a wire code to its HTTP status.
func httpStatus(e *Error) int {
	switch e.Code {
	case CodeInvalid:
		return http.StatusBadRequest
	case CodeNotFound:
		return http.StatusNotFound
	case CodeNotLeader:
		// 421: this server cannot answer, another one can. With no leader known no
		// server can right now: 503, retry later.
		if e.LeaderID != "" {
			return http.StatusMisdirectedRequest
		}
		return http.StatusServiceUnavailable
	case CodeConflict:
		return http.StatusConflict
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeOutcomeUnknown:
		return http.StatusGatewayTimeout
	case CodeUnauthenticated:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeNotImplemented:
		return http.StatusNotImplemented
	}
	return http.StatusInternalServerError
}

// toError translates an error from the coordinator or Raft into its wire form.
func toError(err error, r raftAPI) *Error {
	err = fromRaft(err, r)
	api := coordinator.APIError(err)
	e := &Error{Code: wireCode(api.GetCode()), Message: api.GetMessage(), LeaderID: api.GetLeaderId(),
		TxID: api.GetTxid(), Field: api.GetField()}
	var nl *coordinator.NotLeaderError
	if errors.As(err, &nl) {
		e.LeaderAddr = nl.LeaderAddr
	}
	return e
}

func wireCode(c smv1.ErrorCode) string {
	if c == smv1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		return CodeInternal
	}
	return strings.TrimPrefix(c.String(), "ERROR_CODE_")
}

// fromRaft turns hashicorp/raft's sentinels into the coordinator's typed errors, so one
// mapping (coordinator.APIError) classifies everything.
func fromRaft(err error, r raftAPI) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return notLeader(r)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrAbortedByRestore):
		// The change may or may not have been committed: never report it as failed.
		return &coordinator.UnknownOutcomeError{Cause: err}
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %v", coordinator.ErrConflict, err)
	}
	return err
}

func notLeader(r raftAPI) error {
	addr, id := r.LeaderWithID()
	return &coordinator.NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
}

// fail sends e, naming the leader's admin URL on a NOT_LEADER that lacks it.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, e *Error) {
	if e.Code == CodeNotLeader && e.LeaderID != "" && e.LeaderAdminURL == "" {
		e.LeaderAdminURL = s.leaderAdminURL(r.Context(), e.LeaderID)
	}
	writeError(w, e)
}

// leaderAdminURL is the admin URL of leader id: this node's own advertised URL, or the
// one the leader's leader-index answer carries (cached by the source; "" if unknown or
// if the answer came from another node).
func (s *Server) leaderAdminURL(ctx context.Context, id string) string {
	if id == s.node.ID() {
		return s.cfg.AdvertiseURL
	}
	if s.cfg.LeaderIndex == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LeaderIndexTimeout)
	defer cancel()
	li, err := s.cfg.LeaderIndex.LeaderIndex(ctx)
	if err != nil || li.NodeID != id {
		return ""
	}
	return li.AdminURL
}

// writeError sends e with the status its code maps to.
func writeError(w http.ResponseWriter, e *Error) {
	status := httpStatus(e)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if e.Code == CodeUnauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="shardmatch-admin"`)
	}
	writeJSON(w, status, errorBody{Error: e})
}

func invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// writeJSON sends v as the response body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"INTERNAL","message":"cannot encode the response"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
