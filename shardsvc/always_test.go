package shardsvc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/clock"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Under AlwaysAvailable no player is ever offline or busy, nobody declines (even at
// RefuseRate 1), players return to idle after a match, and the load driver still
// finds non-regular players to pick. The same world without it refuses.
func TestAlwaysAvailable(t *testing.T) {
	refusals := func(always bool) (int, *World, *clock.Fake) {
		fake := clock.NewFake(epoch)
		w := newTestWorld(t, fake, func(c *WorldConfig) { c.RefuseRate, c.AlwaysAvailable = 1, always })
		n := 0
		for step := range 20 {
			fake.Advance(7 * time.Minute)
			for i := range 9 {
				id := fmt.Sprintf("s1-p%05d", 10+step*9+i)
				if rej, _ := w.Prepare(context.Background(), fmt.Sprintf("t%d-%d", step, i), []*smv1.ShardPlayer{sp(id, 1)}); len(rej) > 0 {
					n++
				}
			}
		}
		return n, w, fake
	}
	if n, _, _ := refusals(false); n == 0 {
		t.Fatal("the control world never refused: the test proves nothing")
	}
	n, w, fake := refusals(true)
	if n != 0 {
		t.Fatalf("%d refusals from an always-available world", n)
	}
	for _, p := range w.Snapshot().Players {
		if p.State != StateIdle && p.State != StateReserved {
			t.Fatalf("player %s is %s", p.ID, p.State)
		}
	}
	ctx := context.Background()
	if err := w.Commit(ctx, "t0-0", []*smv1.ShardPlayer{sp("s1-p00010", 1)}); err != nil {
		t.Fatal(err)
	}
	if !w.EndMatch("t0-0") {
		t.Fatal("match t0-0 not live")
	}
	fake.Advance(time.Hour)
	if got := stateOf(w, "s1-p00010").State; got != StateIdle {
		t.Fatalf("after the match the player is %s", got)
	}
	if got := w.PickIdle(rand.New(rand.NewPCG(1, 2)), 3, nil); len(got) != 3 {
		t.Fatalf("PickIdle found %d players", len(got))
	}
}
