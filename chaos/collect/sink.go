package collect

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/shardmatch/shardmatch/chaos/history"
)

// Errors of this package.
var (
	// ErrBadNode: a node name is empty or would not make a plain file name.
	ErrBadNode = errors.New("collect: bad node name")
	// ErrClosed: an event was given to a Sink after Close.
	ErrClosed = errors.New("collect: sink closed")
	// ErrCorrupt: a history file holds a line that is not a record, other than the
	// torn last line a killed process may leave.
	ErrCorrupt = errors.New("collect: corrupt history file")
)

// FileExt ends the name of every history file.
const FileExt = ".jsonl"

// record is one line of a history file: exactly one of Lease and Shard is set.
type record struct {
	Lease *history.LeaseEvent `json:"lease,omitempty"`
	Shard *history.ShardEvent `json:"shard,omitempty"`
}

// Sink appends history events to a JSON-lines file of its own. It is safe for
// concurrent use. Every event is written with one write(2) and nothing is buffered, so
// a process killed with SIGKILL loses no event a Sink method has returned from (the
// page cache keeps it; only a machine crash could lose it, and the runner does not
// crash machines).
//
// Sink methods do not return errors, because their callers (the FSM's observer, a
// shard's handler) must not fail for the recording's sake: the first write error is
// kept and reported by Err.
type Sink struct {
	node  string
	epoch time.Time
	path  string

	mu  sync.Mutex // orders writes; one event is one write
	f   *os.File
	err error
}

// NewSink creates dir/<node>.<unix-nanos-now>.<pid>.jsonl (the directory must exist)
// and returns a Sink writing to it. Each event's At is time.Now().Sub(epoch) on the
// machine's real wall clock: the run's reference clock, shared by every process of
// the run through the kernel, and never the process's skewable clock (see the package
// documentation). A monotonic reading in epoch is dropped, so every process computes
// At alike from the same epoch.
func NewSink(dir, node string, epoch time.Time) (*Sink, error) {
	if err := validNode(node); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("%s.%d.%d%s", node, time.Now().UnixNano(), os.Getpid(), FileExt)
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("collect: create history file: %w", err)
	}
	return &Sink{node: node, epoch: epoch.Round(0), path: path, f: f}, nil
}

func validNode(node string) error {
	switch {
	case node == "":
		return fmt.Errorf("%w: empty", ErrBadNode)
	case strings.ContainsAny(node, `/\`+string(os.PathSeparator)), strings.HasPrefix(node, "."),
		strings.ContainsAny(node, " \t\n\r"):
		return fmt.Errorf("%w: %q", ErrBadNode, node)
	}
	return nil
}

// Path returns the file the Sink writes.
func (s *Sink) Path() string { return s.path }

// Node returns the node name the Sink was made for.
func (s *Sink) Node() string { return s.node }

// Lease records a lease change the node's FSM applied. It stamps At; an empty Node
// is set to the Sink's node.
func (s *Sink) Lease(ev history.LeaseEvent) {
	if ev.Node == "" {
		ev.Node = s.node
	}
	s.write(func(at time.Duration) record { ev.At = at; return record{Lease: &ev} })
}

// Shard records an effect a shard applied. It stamps At; Seq is left for ReadDir to
// assign from the file order, so callers must call Shard in apply order (under the
// lock that orders the effects, as RecordingHandler does).
func (s *Sink) Shard(ev history.ShardEvent) {
	ev.Seq = 0
	s.write(func(at time.Duration) record { ev.At = at; return record{Shard: &ev} })
}

// write stamps and writes one record under the lock, so the stamps in a file never
// go backwards.
func (s *Sink) write(mk func(at time.Duration) record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		s.setErr(ErrClosed)
		return
	}
	b, err := json.Marshal(mk(time.Now().Sub(s.epoch)))
	if err != nil {
		s.setErr(fmt.Errorf("collect: encode event: %w", err))
		return
	}
	if _, err := s.f.Write(append(b, '\n')); err != nil {
		s.setErr(fmt.Errorf("collect: write %s: %w", s.path, err))
	}
}

func (s *Sink) setErr(err error) {
	if s.err == nil {
		s.err = err
	}
}

// Err returns the first error the Sink met (encoding, writing, use after Close), or
// nil.
func (s *Sink) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close closes the file. Events given after Close are dropped and reported by Err.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("collect: close %s: %w", s.path, err)
	}
	return nil
}

// CloseLogged is how a process ends its recording: it logs the first error the Sink
// met (the history is then incomplete, which the run's report must not miss) at error
// level, closes the file, and logs a failure to close at warning level. Like the other
// Sink methods it returns nothing, so shutting down never fails for the recording's
// sake.
func (s *Sink) CloseLogged(log *slog.Logger) {
	if err := s.Err(); err != nil {
		log.Error("the chaos history is incomplete", "err", err)
	}
	if err := s.Close(); err != nil {
		log.Warn("history close", "err", err)
	}
}
