package natsapi

import (
	"container/list"
	"sync"
	"time"

	"github.com/shardmatch/shardmatch/clock"
)

// rateLimiter is a token bucket per proposer identity: each identity may take rate
// proposals a second on average and burst at once. The identity is the last token
// of the intake subject (natsutil.Subjects.ParsePropose); proposals on the plain
// Propose subject share the anonymous bucket "". It lives in the leader's memory
// only: a new leader starts every bucket full.
//
// At most max identities are tracked. Past that the least recently seen one is
// forgotten, so a flood of made-up identities costs bounded memory; a forgotten
// identity comes back with a full bucket. A bucket idle for burst/rate seconds is
// full anyway, so forgetting it loses nothing; forgetting a busier one lets that
// proposer burst again, which is why identities should be enforced by NATS
// permissions (a proposer may publish only on its own subject) where rate limits
// matter.
type rateLimiter struct {
	rate  float64 // tokens a second
	burst float64
	max   int
	clk   clock.Clock

	mu      sync.Mutex
	lru     *list.List               // of *bucket, most recently seen first
	buckets map[string]*list.Element // identity → its element in lru
}

type bucket struct {
	id     string
	tokens float64
	last   time.Duration // clock.Mono of the last refill
}

// newRateLimiter returns nil (no limit) if rate is 0.
func newRateLimiter(rate float64, burst, maxIDs int, clk clock.Clock) *rateLimiter {
	if rate <= 0 {
		return nil
	}
	return &rateLimiter{rate: rate, burst: float64(burst), max: maxIDs, clk: clk,
		lru: list.New(), buckets: make(map[string]*list.Element)}
}

// allow takes a token from id's bucket, reporting whether there was one. A nil
// limiter allows everything.
func (l *rateLimiter) allow(id string) bool {
	if l == nil {
		return true
	}
	now := l.clk.Mono()
	l.mu.Lock()
	defer l.mu.Unlock()
	var b *bucket
	if e, ok := l.buckets[id]; ok {
		l.lru.MoveToFront(e)
		b = e.Value.(*bucket)
		if el := now - b.last; el > 0 {
			b.tokens = min(l.burst, b.tokens+el.Seconds()*l.rate)
		}
		b.last = now
	} else {
		for l.lru.Len() >= l.max {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.buckets, old.Value.(*bucket).id)
		}
		b = &bucket{id: id, tokens: l.burst, last: now}
		l.buckets[id] = l.lru.PushFront(b)
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// tracked is how many identities the limiter remembers.
func (l *rateLimiter) tracked() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
