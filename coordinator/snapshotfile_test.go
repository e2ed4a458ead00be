package coordinator_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/shardmatch/shardmatch/coordinator"
)

// TestSnapshotFileDefects: a whole file reads back; every shorter prefix is truncated;
// every single flipped bit and any trailing byte is refused, always as a
// *SnapshotError matching ErrInvalid.
func TestSnapshotFileDefects(t *testing.T) {
	file := snapshotFile(t, inFlightState(), 60)
	sum, _, err := coordinator.InspectSnapshot(bytes.NewReader(file), 0)
	if err != nil || sum.Index != 60 || sum.Term != 3 || sum.Txns != 2 || sum.Leases != 4 || sum.Preparing != 1 {
		t.Fatalf("round trip: %+v %v", sum, err)
	}
	refused := func(what string, b []byte, want coordinator.SnapshotProblem) {
		t.Helper()
		_, err := coordinator.ReadSnapshot(bytes.NewReader(b), io.Discard, 0)
		var se *coordinator.SnapshotError
		if !errors.As(err, &se) || !errors.Is(err, coordinator.ErrInvalid) || want != "" && se.Problem != want {
			t.Fatalf("%s: %v, want a %q SnapshotError", what, err, want)
		}
	}
	for n := range len(file) {
		refused("prefix", file[:n], coordinator.SnapshotTruncated)
	}
	for i := range file {
		for bit := range 8 {
			b := bytes.Clone(file)
			b[i] ^= 1 << bit
			refused("flipped bit", b, "")
		}
	}
	refused("trailing byte", append(bytes.Clone(file), 0), coordinator.SnapshotTrailing)
	if _, err := coordinator.ReadSnapshot(bytes.NewReader(file), io.Discard, 10); err == nil {
		t.Fatal("bound ignored")
	}
}
