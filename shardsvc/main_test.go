package shardsvc

import (
	"testing"

	"go.uber.org/goleak"
)

// Drivers, status printers and Worlds must leave no goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
