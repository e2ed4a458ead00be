package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// `coordinator dev` must shut down everything it started. The exception is the one
// the coordinator's own tests make: hashicorp/raft never resolves an Apply future
// still queued when a node shuts down, so a batcher goroutine may outlive it.
//
// The binaries the multi-process tests built are removed on the way out.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*deferError).Error"),
		goleak.Cleanup(func(code int) {
			removeBuiltBinaries()
			os.Exit(code)
		}))
}
