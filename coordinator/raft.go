package coordinator

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// raftStores is the durable storage of one node: a bbolt file for the log and stable
// store (fsync'd on every append), file snapshots beside it.
type raftStores struct {
	log   *BoltStore
	snaps *raft.FileSnapshotStore
}

func openStores(dir string, logOut io.Writer) (*raftStores, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("coordinator: data dir: %w", err)
	}
	log, err := OpenBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		return nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, raftLogger("snapshot", logOut))
	if err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("coordinator: open snapshots: %w", err)
	}
	return &raftStores{log: log, snaps: snaps}, nil
}

func (s *raftStores) close() error { return s.log.Close() }

func raftLogger(name string, out io.Writer) hclog.Logger {
	if out == nil {
		out = io.Discard
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: out, JSONFormat: true})
}

func (n *Node) raftConfig(notify chan bool) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(n.cfg.NodeID)
	c.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	c.ElectionTimeout = n.cfg.ElectionTimeout
	c.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	c.CommitTimeout = n.cfg.CommitTimeout
	c.SnapshotThreshold = n.cfg.SnapshotThreshold
	c.SnapshotInterval = n.cfg.SnapshotInterval
	c.TrailingLogs = n.cfg.TrailingLogs
	c.MaxAppendEntries = 256
	c.BatchApplyCh = true
	c.NotifyCh = notify
	c.Logger = raftLogger("raft", n.cfg.RaftLogOutput)
	return c
}

// HasExistingState reports whether dataDir holds Raft state (log entries, a vote or a
// snapshot): whether a node on it has been part of a cluster. It opens and closes the
// stores, so call it before New.
func HasExistingState(dataDir string) (bool, error) {
	s, err := openStores(dataDir, nil)
	if err != nil {
		return false, err
	}
	has, err := raft.HasExistingState(s.log, s.log, s.snaps)
	if cerr := s.close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("coordinator: inspect raft state: %w", err)
	}
	return has, nil
}
