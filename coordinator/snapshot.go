package coordinator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/raft"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Backup and restore of the whole FSM through Raft's user snapshots (raft.Snapshot,
// raft.Restore), in the file format of snapshotfile.go.
//
// What a restore means for the invariants, and why the rules below:
//   - The state goes back to the snapshot's: transactions, leases with their fencing
//     tokens, the shard registry. Shards may hold newer state (a match committed after
//     the snapshot, a higher fencing token per player). So a restore is for disaster
//     recovery, into a cluster whose every node lost its data or a fresh one, never a
//     way to undo a live cluster's recent past: RestoreSnapshot refuses a snapshot older
//     than the state it would replace unless forced (SnapshotOlderError).
//   - Fencing tokens stay monotonic within the cluster restored into: a token is
//     Token(index, pos), and raft.Restore puts the restored state at
//     max(last log index, snapshot index)+1, so every token issued afterwards exceeds
//     every token this cluster or the snapshot ever issued. For a cluster that lost its
//     data, RestoreOptions.MinIndex lifts that floor above the lost cluster's last
//     index, so new tokens also exceed what shards saw from it; without it shards refuse
//     the lower tokens (STALE_TOKEN aborts, never double booking) until the log passes.
//   - Transactions in flight in the snapshot are driven again: the leader restarts its
//     duties on the restored state, so PREPARING ones are presumed aborted and decided
//     ones redelivered, exactly as after a failover. The leader's duties pause for the
//     restore itself, so no decision meant for the replaced state reaches the new one.

// DefaultMaxSnapshotBytes bounds a restored snapshot's data when RestoreOptions.MaxBytes
// is zero.
const DefaultMaxSnapshotBytes int64 = 1 << 30

// SnapshotOlderError refuses a restore that would roll a cluster with history back.
// It matches ErrConflict.
type SnapshotOlderError struct {
	// SnapshotIndex is the snapshot's Raft index; ClusterIndex the applied index of
	// the state it would replace.
	SnapshotIndex, ClusterIndex uint64
}

func (e *SnapshotOlderError) Error() string {
	return fmt.Sprintf("coordinator: snapshot index %d is older than this cluster's applied index %d: "+
		"restoring it would roll the cluster's transactions, leases and fencing tokens back (force it only for "+
		"disaster recovery, knowing the shards hold newer state)", e.SnapshotIndex, e.ClusterIndex)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *SnapshotOlderError) Is(target error) bool { return target == ErrConflict }

// OpenedSnapshot is a fresh Raft snapshot of the FSM, open for reading once.
type OpenedSnapshot struct {
	Meta *raft.SnapshotMeta
	data io.ReadCloser
}

// WriteTo writes the snapshot file (snapshotfile.go) to w.
func (s *OpenedSnapshot) WriteTo(w io.Writer) (int64, error) { return WriteSnapshot(w, s.Meta, s.data) }

// Close releases the snapshot.
func (s *OpenedSnapshot) Close() error { return s.data.Close() }

// OpenSnapshot takes a fresh Raft snapshot of the whole FSM and opens it. On the
// leader it first logs an empty command and waits until it is applied, so the snapshot
// holds everything committed before the call. Off the leader it returns a
// *NotLeaderError, unless allowStale: then it snapshots this replica as applied so far.
func (n *Node) OpenSnapshot(ctx context.Context, allowStale bool) (*OpenedSnapshot, error) {
	if n.raft.State() == raft.Leader {
		if err := n.leaderApply(ctx, &smv1.Command{Op: &smv1.Command_Forget{Forget: &smv1.Forget{}}}); err != nil {
			return nil, err
		}
	} else if !allowStale {
		return nil, n.notLeader()
	}
	f := n.raft.Snapshot()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("coordinator: take snapshot: %w", err)
	}
	meta, rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("coordinator: open snapshot: %w", err)
	}
	return &OpenedSnapshot{Meta: meta, data: rc}, nil
}

// RestoreOptions tune RestoreSnapshot.
type RestoreOptions struct {
	// Force restores a snapshot older than the cluster's state (see SnapshotOlderError).
	Force bool
	// MinIndex, if above the snapshot's index, is the Raft index the restored state is
	// placed after, so every fencing token issued afterwards exceeds Token(MinIndex, 0).
	// Set it to the lost cluster's last applied index when restoring after data loss.
	MinIndex uint64
	// MaxBytes bounds the snapshot's data (default Config.MaxSnapshotBytes).
	MaxBytes int64
}

// RestoreResult reports a restore.
type RestoreResult struct {
	// Snapshot describes what was restored.
	Snapshot SnapshotSummary
	// PreviousIndex is the applied index of the state replaced; Index the Raft index
	// the restored state now sits at (new entries follow it).
	PreviousIndex, Index uint64
	// Forced is true when the snapshot was older than the state and Force let it in.
	Forced bool
}

// RestoreSnapshot replaces the whole replicated state with a snapshot file read from r.
// It runs on the leader only (*NotLeaderError otherwise, before reading r). It spools
// the file into the data directory and verifies it entirely (format, checksum, and
// that the state decodes and its lease table loads) before it touches anything: a bad
// file is a *SnapshotError and changes nothing. A snapshot older than the state it
// would replace is a *SnapshotOlderError unless opts.Force, except on a cluster that
// has never granted a lease nor holds a transaction (a fresh one). Then the leader's
// duties pause, raft.Restore installs the state on the leader and every follower, and
// the duties restart on the restored state. An error after raft.Restore began is an
// *UnknownOutcomeError: check the cluster's status.
func (n *Node) RestoreSnapshot(ctx context.Context, r io.Reader, opts RestoreOptions) (*RestoreResult, error) {
	if n.raft.State() != raft.Leader {
		return nil, n.notLeader()
	}
	if !n.restoreMu.TryLock() {
		return nil, fmt.Errorf("%w: a restore is already running on this node", ErrConflict)
	}
	defer n.restoreMu.Unlock()
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = n.cfg.MaxSnapshotBytes
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxSnapshotBytes
	}
	spool, meta, sum, err := n.spoolSnapshot(r, opts.MaxBytes)
	if err != nil {
		return nil, err
	}
	defer func() {
		_ = spool.Close()
		_ = os.Remove(spool.Name())
	}()
	// Refuse a rollback before pausing anything (a refusal changes nothing, not even
	// the log), and again once paused, when the state can no longer move.
	if _, err := n.checkRestore(meta, opts.Force); err != nil {
		return nil, err
	}
	if err := n.pauseLeading(ctx, true); err != nil {
		return nil, err
	}
	resumed := false
	resume := func() error {
		if resumed {
			return nil
		}
		resumed = true
		return n.pauseLeading(context.WithoutCancel(ctx), false)
	}
	defer func() { _ = resume() }()
	if n.raft.State() != raft.Leader {
		return nil, n.notLeader()
	}
	res := &RestoreResult{Snapshot: sum, PreviousIndex: n.raft.AppliedIndex()}
	if res.Forced, err = n.checkRestore(meta, opts.Force); err != nil {
		return nil, err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("coordinator: rewind spooled snapshot: %w", err)
	}
	rm := *meta
	rm.Index = max(rm.Index, opts.MinIndex)
	n.log.Warn("restoring snapshot", "snapshot_index", meta.Index, "snapshot_term", meta.Term, "min_index", opts.MinIndex,
		"previous_index", res.PreviousIndex, "forced", res.Forced, "txns", sum.Txns, "leases", sum.Leases, "shards", sum.Shards)
	if err := n.raft.Restore(&rm, bufio.NewReaderSize(spool, 1<<20), n.cfg.ApplyTimeout); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrEnqueueTimeout) && n.raft.State() != raft.Leader {
			return nil, n.notLeader()
		}
		return nil, &UnknownOutcomeError{Cause: fmt.Errorf("restore: %w", err)}
	}
	res.Index = n.raft.LastIndex()
	if err := resume(); err != nil {
		return nil, err
	}
	// Wait for the duties of the restored state: recovery has started the driver on
	// its transactions. If leadership moved meanwhile, the new leader recovers them.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for n.raft.State() == raft.Leader && n.leaderState() == nil {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, &UnknownOutcomeError{Cause: fmt.Errorf("restored at index %d; waiting for the leader to resume: %w", res.Index, ctx.Err())}
		case <-n.stop:
			return nil, &UnknownOutcomeError{Cause: ErrClosed}
		}
	}
	n.log.Warn("snapshot restored", "index", res.Index, "snapshot_index", meta.Index)
	return res, nil
}

// checkRestore applies the rollback rule: a snapshot older than the applied state is
// refused unless force, except on a pristine state. forced reports that force was needed.
func (n *Node) checkRestore(meta *raft.SnapshotMeta, force bool) (forced bool, err error) {
	applied := n.raft.AppliedIndex()
	if meta.Index >= applied || n.fsm.pristine() {
		return false, nil
	}
	if !force {
		return false, &SnapshotOlderError{SnapshotIndex: meta.Index, ClusterIndex: applied}
	}
	return true, nil
}

// spoolSnapshot copies a snapshot file's data from r into a temporary file in the data
// directory, verifies the file, and decodes the state once to prove it loads.
func (n *Node) spoolSnapshot(r io.Reader, maxBytes int64) (*os.File, *raft.SnapshotMeta, SnapshotSummary, error) {
	f, err := os.CreateTemp(n.cfg.DataDir, "restore-*.part")
	if err != nil {
		return nil, nil, SnapshotSummary{}, fmt.Errorf("coordinator: spool snapshot: %w", err)
	}
	fail := func(err error) (*os.File, *raft.SnapshotMeta, SnapshotSummary, error) {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, nil, SnapshotSummary{}, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	meta, err := ReadSnapshot(r, w, maxBytes)
	if err != nil {
		return fail(err)
	}
	if err := w.Flush(); err != nil {
		return fail(fmt.Errorf("coordinator: spool snapshot: %w", err))
	}
	// The state is decoded once here, and again by FSM.Restore, streaming both times;
	// this copy is dropped before Restore builds its own.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(fmt.Errorf("coordinator: rewind spooled snapshot: %w", err))
	}
	sum, err := verifySnapshotState(io.LimitReader(f, meta.Size), meta)
	if err != nil {
		return fail(err)
	}
	return f, meta, sum, nil
}

// pauseLeading stops (pause) or restarts (resume) this node's leadership duties — the
// two-phase driver, lease expiry, retention — and waits until the leadership loop has
// done it. While paused the node is not IsLeader, so it takes no proposals.
func (n *Node) pauseLeading(ctx context.Context, pause bool) error {
	req := leadCtl{pause: pause, done: make(chan struct{})}
	select {
	case n.leadCtl <- req:
	case <-n.stop:
		return ErrClosed
	case <-ctx.Done():
		return &UnknownOutcomeError{Cause: ctx.Err()}
	}
	select {
	case <-req.done:
		return nil
	case <-n.stop:
		return ErrClosed
	}
}

// leadCtl asks the leadership loop to pause or resume the leader's duties.
type leadCtl struct {
	pause bool
	done  chan struct{}
}

// pristine reports whether the state has never granted a lease and holds no
// transaction: a fresh cluster, which any snapshot may replace.
func (f *FSM) pristine() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.txns.Len() == 0 && f.leases.MaxToken() == 0
}

// MaxToken is the highest fencing token the state has issued.
func (f *FSM) MaxToken() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.leases.MaxToken()
}
