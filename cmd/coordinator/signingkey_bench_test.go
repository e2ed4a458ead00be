package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/internal/testutil"
)

// The stack `bench --command-signing` measures really signs and verifies: matches
// commit with every shard requiring signatures, and once the coordinators stop
// signing (the negative control) the shards refuse their commands.
func TestBenchStackSigning(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev stack")
	}
	ctx := context.Background()
	st, err := startBenchStack(ctx, benchOptions{nodes: 1, shards: 2, log: "off"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if err := signBenchStack(st); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := st.proposeFresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, sh := range st.shards {
		if s := sh.srv.Stats(); s.Handled == 0 || s.SignatureRejected() != 0 {
			t.Errorf("%s: %+v", sh.id, s)
		}
	}
	for _, sl := range st.nats.slots {
		sl.tr.SetSigner(nil)
	}
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	_ = st.proposeFresh(pctx)
	testutil.WaitFor(t, 10*time.Second, "unsigned commands to be refused", func() error {
		var n uint64
		for _, sh := range st.shards {
			n += sh.srv.Stats().Unsigned
		}
		if n == 0 {
			return fmt.Errorf("no shard refused an unsigned command")
		}
		return nil
	})
}
