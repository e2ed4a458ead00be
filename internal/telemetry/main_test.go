package telemetry_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Setup's batch processor and exporter must be gone once shutdown returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
