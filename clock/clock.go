package clock

import (
	"context"
	"time"
)

// Clock reads time and makes timers.
type Clock interface {
	// Now is the wall clock. Display only: it may jump in either direction.
	Now() time.Time
	// Mono is a monotonic reading since an arbitrary epoch. It never goes backwards.
	Mono() time.Duration
	// NewTimer fires once after d of monotonic time.
	NewTimer(d time.Duration) Timer
	// NewTicker fires every d of monotonic time until stopped.
	NewTicker(d time.Duration) Ticker
}

// Timer is a one-shot timer, like time.Timer.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was still pending.
	Stop() bool
	// Reset re-arms the timer to fire after d; it reports whether it was pending.
	Reset(d time.Duration) bool
}

// Ticker fires repeatedly, like time.Ticker.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Sleep waits for d on c, or until ctx is done, whichever is first. It returns
// ctx.Err() if the context ended the wait.
func Sleep(ctx context.Context, c Clock, d time.Duration) error {
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
