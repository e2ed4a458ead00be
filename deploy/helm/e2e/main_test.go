package e2e

import (
	"os"
	"testing"
)

// TestMain turns a re-exec of this test binary into a pod's init (see
// RunPodInitIfAsked) before any test runs.
func TestMain(m *testing.M) {
	RunPodInitIfAsked()
	os.Exit(m.Run())
}
