package natsapi

import (
	"fmt"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/clock"
)

func TestRateLimiterBucket(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	l := newRateLimiter(2, 3, 100, clk)
	take := func(id string) (n int) {
		for l.allow(id) {
			n++
			if n > 100 {
				t.Fatal("no limit")
			}
		}
		return n
	}
	if n := take("a"); n != 3 {
		t.Fatalf("burst: %d, want 3", n)
	}
	clk.Advance(500 * time.Millisecond) // 1 token at 2/s
	if n := take("a"); n != 1 {
		t.Fatalf("after 0.5s: %d, want 1", n)
	}
	clk.Advance(time.Hour) // capped at the burst
	if n := take("a"); n != 3 {
		t.Fatalf("after an hour: %d, want 3", n)
	}
	if n := take(""); n != 3 {
		t.Fatalf("anonymous: %d, want its own 3", n)
	}
	if newRateLimiter(0, 0, 10, clk) != nil || !(*rateLimiter)(nil).allow("x") {
		t.Fatal("rate 0 must be unlimited")
	}
}

// A flood of identities keeps at most max buckets; the least recently seen goes.
func TestRateLimiterBoundsIdentities(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	l := newRateLimiter(1, 1, 3, clk)
	l.allow("keep")
	for i := range 10000 {
		l.allow("keep") // seen again each time: never the least recent
		l.allow(fmt.Sprintf("flood-%d", i))
		if n := l.tracked(); n > 3 {
			t.Fatalf("tracking %d identities, max 3", n)
		}
	}
	if l.allow("keep") {
		t.Fatal("keep's bucket was forgotten and refilled")
	}
}
