package clock

import (
	"fmt"
	"sync"
	"time"
)

// Skewed is another clock seen through a wall-clock offset and a rate error, both
// changeable while running. It models what really goes wrong with a machine's clocks:
// the wall clock is stepped (by NTP, an operator, a VM migration) and the oscillator
// runs fast or slow. A step moves only the wall clock; a rate error moves both, because
// a fast oscillator makes the monotonic clock fast too.
type Skewed struct {
	base Clock

	mu       sync.Mutex
	offset   time.Duration // added to the wall clock
	rate     float64       // this clock's seconds per base second
	baseMono time.Duration // base.Mono() when rate last changed
	ownMono  time.Duration // our Mono() when rate last changed
}

// NewSkewed returns base with no skew.
func NewSkewed(base Clock) *Skewed {
	return &Skewed{base: base, rate: 1, baseMono: base.Mono()}
}

var _ Clock = (*Skewed)(nil)

// SetOffset steps the wall clock to base + d.
func (s *Skewed) SetOffset(d time.Duration) {
	s.mu.Lock()
	s.offset = d
	s.mu.Unlock()
}

// SetRate makes this clock run at rate seconds per real second (1.01 = 1% fast).
func (s *Skewed) SetRate(rate float64) error {
	if rate <= 0 || rate > 100 {
		return fmt.Errorf("clock: rate %v out of range (0, 100]", rate)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.base.Mono()
	s.ownMono = s.monoLocked(b)
	s.baseMono = b
	s.rate = rate
	return nil
}

// Skew reports the current offset and rate.
func (s *Skewed) Skew() (offset time.Duration, rate float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offset, s.rate
}

func (s *Skewed) monoLocked(b time.Duration) time.Duration {
	return s.ownMono + time.Duration(float64(b-s.baseMono)*s.rate)
}

// Mono is the base's monotonic clock scaled by the rate.
func (s *Skewed) Mono() time.Duration {
	b := s.base.Mono()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.monoLocked(b)
}

// Now is the base's wall clock plus the offset plus the drift accumulated so far.
func (s *Skewed) Now() time.Time {
	b := s.base.Mono()
	w := s.base.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	drift := s.monoLocked(b) - b
	return w.Add(s.offset + drift)
}

func (s *Skewed) scale(d time.Duration) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Duration(float64(d) / s.rate)
}

// NewTimer fires after d of this clock's time. A rate change does not re-scale a
// pending timer.
func (s *Skewed) NewTimer(d time.Duration) Timer {
	return &skewedTimer{s: s, t: s.base.NewTimer(s.scale(d))}
}

// NewTicker ticks every d of this clock's time.
func (s *Skewed) NewTicker(d time.Duration) Ticker { return s.base.NewTicker(s.scale(d)) }

type skewedTimer struct {
	s *Skewed
	t Timer
}

func (t *skewedTimer) C() <-chan time.Time        { return t.t.C() }
func (t *skewedTimer) Stop() bool                 { return t.t.Stop() }
func (t *skewedTimer) Reset(d time.Duration) bool { return t.t.Reset(t.s.scale(d)) }
