package admin

import (
	"testing"

	"go.uber.org/goleak"
)

// Every server, cluster and client goroutine must be gone at the end. hashicorp/raft
// never resolves an Apply future still queued when it shuts down (see
// coordinator/main_test.go), so a batcher goroutine may outlive a killed node.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*deferError).Error"))
}
