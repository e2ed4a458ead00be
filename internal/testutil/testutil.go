package testutil

import (
	"errors"
	"testing"
	"time"
)

// The poll interval starts at firstPoll, so a condition that is nearly true is seen
// at once, and doubles up to maxPoll, so a long wait (a process starting, a leader
// being elected) does not spin.
const (
	firstPoll = 5 * time.Millisecond
	maxPoll   = 100 * time.Millisecond
)

// errNotYet is what WaitUntil's condition amounts to while it is false.
var errNotYet = errors.New("testutil: condition not met")

// WaitFor calls fn until it returns nil. If timeout passes first, it fails tb with
// Fatalf, saying what was awaited and fn's last error. fn is called at least once, and
// once more at the deadline. Call it from the test's goroutine, as Fatalf requires.
func WaitFor(tb testing.TB, timeout time.Duration, what string, fn func() error) {
	tb.Helper()
	if err := poll(timeout, fn); err != nil {
		tb.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
	}
}

// WaitUntil calls cond until it reports true. If timeout passes first, it fails tb
// with Fatalf, saying what was awaited. It is WaitFor for a condition with nothing to
// say about why it does not hold yet.
func WaitUntil(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if err := poll(timeout, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}); err != nil {
		tb.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// WaitUntilEvery is WaitUntil at a fixed interval, with no back-off. It is for a
// condition that drives the test forward as it checks (advances a fake clock by a
// step, say): how far the test gets by the timeout depends on how often the
// condition is called, so it must be called at a steady rate.
func WaitUntilEvery(tb testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	tb.Helper()
	if err := pollEvery(timeout, interval, interval, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}); err != nil {
		tb.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// poll calls fn, firstPoll apart and backing off to maxPoll, until it returns nil
// (then poll returns nil) or timeout passes (then poll returns fn's last error). The
// last call is made at the deadline.
func poll(timeout time.Duration, fn func() error) error {
	return pollEvery(timeout, firstPoll, maxPoll, fn)
}

// pollEvery is poll with the first interval and the longest one given.
func pollEvery(timeout, first, longest time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	interval := first
	for {
		err := fn()
		if err == nil {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		time.Sleep(min(interval, left))
		interval = min(2*interval, longest)
	}
}
