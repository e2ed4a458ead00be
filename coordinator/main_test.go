package coordinator_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every node, driver, batcher and network goroutine must be gone when its cluster shuts
// down. One exception: hashicorp/raft never resolves an Apply future still queued in its
// apply channel when it shuts down (its ShutdownCh is only set once dispatched), so a
// batcher goroutine waiting on such a future outlives a killed node.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*deferError).Error"))
}
