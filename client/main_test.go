package client_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every client, server, node and connection a test opens must be gone when it ends.
// hashicorp/raft leaves a goroutine waiting on an Apply future queued at shutdown (see
// coordinator/main_test.go).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*deferError).Error"))
}
