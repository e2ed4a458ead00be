package twophase

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// OpenJournal opens the journal file at path, creating a LogJournal if there is
// none. A file a release before LogJournal wrote, a bbolt BoltJournal, is recognised
// and opened as one, so that upgrading a shard never loses its votes; a new shard, or
// one whose BoltJournal was deleted after every record was decided, gets the faster
// LogJournal. The caller closes the returned journal.
func OpenJournal(path string) (Journal, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return OpenLogJournal(path)
	}
	if err != nil {
		return nil, fmt.Errorf("twophase: open journal %s: %w", path, err)
	}
	head := make([]byte, 32)
	n, err := io.ReadFull(f, head)
	_ = f.Close()
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("twophase: open journal %s: %w", path, err)
	}
	if isBoltFile(head[:n]) {
		return OpenBoltJournal(path)
	}
	return OpenLogJournal(path)
}

// isBoltFile reports whether head, a file's first bytes, is a bbolt file: its first
// page's header (16 bytes) is followed by the meta page's magic, 0xED0CDAED in the
// machine's (little-endian) order.
func isBoltFile(head []byte) bool {
	return len(head) >= 20 && bytes.Equal(head[16:20], []byte{0xED, 0xDA, 0x0C, 0xED})
}
