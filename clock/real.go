package clock

import "time"

// Real is the machine's clock.
type Real struct{ epoch time.Time }

// NewReal returns the machine's clock.
func NewReal() *Real { return &Real{epoch: time.Now()} }

var _ Clock = (*Real)(nil)

// Now returns time.Now().
func (r *Real) Now() time.Time { return time.Now() }

// Mono returns the monotonic time since the clock was made.
func (r *Real) Mono() time.Duration { return time.Since(r.epoch) }

// NewTimer wraps time.NewTimer.
func (r *Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

// NewTicker wraps time.NewTicker.
func (r *Real) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.t.C }
func (t realTicker) Stop()               { t.t.Stop() }
