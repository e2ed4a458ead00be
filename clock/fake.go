package clock

import (
	"sort"
	"sync"
	"time"
)

// Fake is a clock that only moves when told to. Timers fire synchronously inside
// Advance, in deadline order, so tests are deterministic.
type Fake struct {
	mu      sync.Mutex
	wall    time.Time
	mono    time.Duration
	waiters []*fakeTimer
	changed chan struct{} // closed and replaced whenever a timer is added
}

// NewFake returns a fake clock whose wall clock starts at start.
func NewFake(start time.Time) *Fake {
	return &Fake{wall: start, changed: make(chan struct{})}
}

var _ Clock = (*Fake)(nil)

// Now returns the fake wall clock.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wall
}

// Mono returns the fake monotonic clock.
func (f *Fake) Mono() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mono
}

// Advance moves both clocks forward by d and fires every timer that falls due.
func (f *Fake) Advance(d time.Duration) {
	if d < 0 {
		panic("clock: Fake.Advance with negative duration; use JumpWall to move the wall clock back")
	}
	f.mu.Lock()
	target := f.mono + d
	for {
		sort.Slice(f.waiters, func(i, j int) bool { return f.waiters[i].at < f.waiters[j].at })
		if len(f.waiters) == 0 || f.waiters[0].at > target {
			break
		}
		w := f.waiters[0]
		f.waiters = f.waiters[1:]
		f.wall = f.wall.Add(w.at - f.mono)
		f.mono = w.at
		w.fire(f)
	}
	f.wall = f.wall.Add(target - f.mono)
	f.mono = target
	f.mu.Unlock()
}

// JumpWall moves only the wall clock, forward or back, as `date -s` or an NTP step
// would. Monotonic time and timers are unaffected.
func (f *Fake) JumpWall(d time.Duration) {
	f.mu.Lock()
	f.wall = f.wall.Add(d)
	f.mu.Unlock()
}

// Timers reports how many timers and tickers are pending.
func (f *Fake) Timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// WaitForTimers blocks until at least n timers are pending, so a test can advance the
// clock only once the code under test is waiting on it.
func (f *Fake) WaitForTimers(n int) {
	for {
		f.mu.Lock()
		if len(f.waiters) >= n {
			f.mu.Unlock()
			return
		}
		ch := f.changed
		f.mu.Unlock()
		<-ch
	}
}

func (f *Fake) add(w *fakeTimer) {
	f.waiters = append(f.waiters, w)
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *Fake) remove(w *fakeTimer) bool {
	for i, x := range f.waiters {
		if x == w {
			f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// NewTimer returns a timer that fires when the fake clock passes d from now.
func (f *Fake) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{c: make(chan time.Time, 1), at: f.mono + d}
	f.add(t)
	return &fakeTimerHandle{f: f, t: t}
}

// NewTicker returns a ticker on the fake clock.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive ticker interval")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{c: make(chan time.Time, 1), at: f.mono + d, period: d}
	f.add(t)
	return &fakeTickerHandle{f: f, t: t}
}

type fakeTimer struct {
	c      chan time.Time
	at     time.Duration
	period time.Duration
}

// fire is called with f.mu held.
func (w *fakeTimer) fire(f *Fake) {
	select {
	case w.c <- f.wall:
	default: // like time.Ticker, drop ticks nobody read
	}
	if w.period > 0 {
		w.at += w.period
		f.waiters = append(f.waiters, w)
	}
}

type fakeTimerHandle struct {
	f *Fake
	t *fakeTimer
}

func (h *fakeTimerHandle) C() <-chan time.Time { return h.t.c }

func (h *fakeTimerHandle) Stop() bool {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	return h.f.remove(h.t)
}

func (h *fakeTimerHandle) Reset(d time.Duration) bool {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	was := h.f.remove(h.t)
	select { // drain a stale tick, as time.Timer does since Go 1.23
	case <-h.t.c:
	default:
	}
	h.t.at = h.f.mono + d
	h.f.add(h.t)
	return was
}

type fakeTickerHandle struct {
	f *Fake
	t *fakeTimer
}

func (h *fakeTickerHandle) C() <-chan time.Time { return h.t.c }

func (h *fakeTickerHandle) Stop() {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	h.f.remove(h.t)
}
