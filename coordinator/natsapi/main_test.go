package natsapi_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every server, connection and handler a test starts must be gone when it ends. The
// raft exception is explained in coordinator/main_test.go.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*deferError).Error"))
}
