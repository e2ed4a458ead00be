package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/shardmatch/shardmatch/coordinator"
)

// Snapshot backup and restore: GET /v1/snapshot and POST /v1/snapshot/restore, both
// behind the operate role (a snapshot is the whole state, so reading it is as
// privileged as changing it).

// Headers of GET /v1/snapshot, so a client can report the snapshot without parsing it.
const (
	HeaderSnapshotIndex = "X-Shardmatch-Snapshot-Index"
	HeaderSnapshotTerm  = "X-Shardmatch-Snapshot-Term"
)

// Snapshotter is the optional Node side of the snapshot endpoints; *coordinator.Node
// has it. Without it they answer 501.
type Snapshotter interface {
	// OpenSnapshot takes a fresh snapshot of the whole FSM (leader only unless
	// allowStale).
	OpenSnapshot(ctx context.Context, allowStale bool) (*coordinator.OpenedSnapshot, error)
	// RestoreSnapshot verifies a snapshot file read from r, then restores it onto the
	// cluster (leader only).
	RestoreSnapshot(ctx context.Context, r io.Reader, opts coordinator.RestoreOptions) (*coordinator.RestoreResult, error)
}

var _ Snapshotter = (*coordinator.Node)(nil)

// SnapshotInfo describes a snapshot: its Raft position, its size and what it holds.
type SnapshotInfo struct {
	Index        uint64 `json:"index"`
	Term         uint64 `json:"term"`
	Size         int64  `json:"size"`
	AppliedIndex uint64 `json:"applied_index"`
	MaxToken     uint64 `json:"max_token"`
	Txns         int    `json:"txns"`
	Preparing    int    `json:"preparing"`
	Undelivered  int    `json:"undelivered"`
	Leases       int    `json:"leases"`
	Shards       int    `json:"shards"`
}

// NewSnapshotInfo converts a coordinator.SnapshotSummary.
func NewSnapshotInfo(s coordinator.SnapshotSummary) SnapshotInfo {
	return SnapshotInfo{Index: s.Index, Term: s.Term, Size: s.Size, AppliedIndex: s.AppliedIndex, MaxToken: s.MaxToken,
		Txns: s.Txns, Preparing: s.Preparing, Undelivered: s.Undelivered, Leases: s.Leases, Shards: s.Shards}
}

// RestoreResponse answers POST /v1/snapshot/restore.
type RestoreResponse struct {
	OK bool `json:"ok"`
	// Index is the Raft index the restored state sits at; PreviousIndex the applied
	// index of the state it replaced.
	Index         uint64 `json:"index"`
	PreviousIndex uint64 `json:"previous_index"`
	// Forced is true when an older snapshot went in because force=true.
	Forced   bool         `json:"forced"`
	Snapshot SnapshotInfo `json:"snapshot"`
}

// registerSnapshot adds the snapshot endpoints to mux.
func (s *Server) registerSnapshot(mux *http.ServeMux) {
	// The download is the whole state (every lease and transaction): operate, not read.
	mux.HandleFunc("GET /v1/snapshot", s.operate(s.saveSnapshot, false))
	mux.HandleFunc("POST "+PathSnapshotRestore, s.operate(s.restoreSnapshot, false))
}

func (s *Server) snapshotter(w http.ResponseWriter) (Snapshotter, bool) {
	sn, ok := s.node.(Snapshotter)
	if !ok {
		writeError(w, &Error{Code: CodeNotImplemented, Message: "this coordinator cannot take or restore snapshots"})
	}
	return sn, ok
}

// GET /v1/snapshot[?stale=true]: the snapshot file, streamed.
func (s *Server) saveSnapshot(w http.ResponseWriter, r *http.Request) {
	sn, ok := s.snapshotter(w)
	if !ok {
		return
	}
	stale, e := boolParam(r, "stale")
	if e != nil {
		writeError(w, e)
		return
	}
	ctx, cancel := readCtx(r, s.cfg.ChangeTimeout)
	snap, err := sn.OpenSnapshot(ctx, stale)
	cancel()
	if err != nil {
		s.log.Warn("snapshot failed", "err", err)
		s.fail(w, r, toError(err, s.raft))
		return
	}
	defer snap.Close()
	size, err := coordinator.SnapshotFileSize(snap.Meta)
	if err != nil {
		writeError(w, &Error{Code: CodeInternal, Message: err.Error()})
		return
	}
	// A big snapshot may take longer than the server's write timeout allows a reply.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="shardmatch-%d-%d.snap"`, snap.Meta.Term, snap.Meta.Index))
	h.Set("Cache-Control", "no-store")
	h.Set(HeaderSnapshotIndex, strconv.FormatUint(snap.Meta.Index, 10))
	h.Set(HeaderSnapshotTerm, strconv.FormatUint(snap.Meta.Term, 10))
	w.WriteHeader(http.StatusOK)
	if _, err := snap.WriteTo(w); err != nil {
		// The status is sent: cut the connection so the client sees a short body (its
		// checksum could not match anyway).
		s.log.Warn("snapshot stream failed", "index", snap.Meta.Index, "err", err)
		panic(http.ErrAbortHandler)
	}
	s.log.Info("snapshot saved", "index", snap.Meta.Index, "term", snap.Meta.Term, "bytes", size, "stale", stale)
}

// POST /v1/snapshot/restore[?force=true][&min_index=N]: the body is a snapshot file.
func (s *Server) restoreSnapshot(w http.ResponseWriter, r *http.Request) {
	sn, ok := s.snapshotter(w)
	if !ok {
		return
	}
	force, e := boolParam(r, "force")
	if e != nil {
		writeError(w, e)
		return
	}
	var opts coordinator.RestoreOptions
	opts.Force = force
	if v := r.URL.Query().Get("min_index"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n >= 1<<47 {
			writeError(w, invalid("min_index", "min_index=%q is not a Raft index", v))
			return
		}
		opts.MinIndex = n
	}
	// The body is streamed to disk, however long it takes; the node bounds its size.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	res, err := sn.RestoreSnapshot(r.Context(), r.Body, opts)
	if err != nil {
		s.log.Warn("snapshot restore refused or failed", "force", force, "err", err)
		writeError(w, restoreError(err, s.raft))
		return
	}
	s.log.Warn("snapshot restored", "index", res.Index, "previous_index", res.PreviousIndex, "forced", res.Forced,
		"snapshot_index", res.Snapshot.Index)
	writeJSON(w, http.StatusOK, RestoreResponse{OK: true, Index: res.Index, PreviousIndex: res.PreviousIndex,
		Forced: res.Forced, Snapshot: NewSnapshotInfo(res.Snapshot)})
}

// restoreError names a refused snapshot file's defect in Field ("snapshot.checksum",
// "snapshot.version", ...) so clients can tell the kinds of INVALID apart.
func restoreError(err error, r raftAPI) *Error {
	var se *coordinator.SnapshotError
	if errors.As(err, &se) {
		return &Error{Code: CodeInvalid, Field: "snapshot." + string(se.Problem), Message: err.Error()}
	}
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return &Error{Code: CodeInvalid, Field: "snapshot." + string(coordinator.SnapshotTooLarge), Message: err.Error()}
	}
	return toError(err, r)
}
