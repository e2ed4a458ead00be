package natsutil_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every server, connection and subscription a test opens must be gone when it ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
