package policy

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Reload reads and compiles the bundle again and, if it differs from the one in
// use, swaps it in for evaluations that start from now on; evaluations in flight
// finish on the version they started with. If the bundle fails to load, compile
// or pass the smoke query, the version in use stays, the failure is logged and
// counted (Stats.ReloadFailures), and the error (wrapping ErrBundle) is returned.
// Reloads are serialised.
func (e *Engine) Reload(ctx context.Context) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	return e.reloadLocked(ctx, "request")
}

func (e *Engine) reloadLocked(ctx context.Context, trigger string) error {
	old := e.cur.Load()
	c, fp, err := e.load(ctx)
	if err != nil {
		e.stats.reloadFailed(err)
		// Remember what failed so that the poller does not retry the same
		// files every tick; a SIGHUP or Reload call always retries.
		e.failedFingerprint = fp
		e.log.Error("policy reload failed; keeping the current policy",
			"bundle", e.source, "trigger", trigger, "revision", old.revision, "err", err)
		return err
	}
	e.stats.reloadOK()
	e.loadedFingerprint = c.fingerprint
	e.failedFingerprint = ""
	if c.hash == old.hash {
		e.log.Debug("policy unchanged", "bundle", e.source, "trigger", trigger, "revision", old.revision)
		return nil
	}
	e.cur.Store(c)
	e.log.Info("policy reloaded", "bundle", e.source, "trigger", trigger,
		"old_revision", old.revision, "revision", c.revision)
	return nil
}

// Watch reloads the bundle when its files change and on SIGHUP (or on every
// value from Config.Signals, if set) until ctx ends, then returns ctx.Err().
// Call it once, from its own goroutine.
//
// Files are polled every Config.PollInterval on the injected clock by their
// names, sizes and modification times, and, in a Kubernetes volume, by the
// target of its ..data link (no file is read unless one changed). A
// change is loaded once it has been stable for one poll interval, so a bundle
// caught half-written is not even tried; a version that failed to load is not
// retried until the files change again. The embedded default bundle never
// changes, so only signals reload it.
func (e *Engine) Watch(ctx context.Context) error {
	sig := e.cfg.Signals
	if sig == nil {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGHUP)
		defer signal.Stop(ch)
		sig = ch
	}
	var tick <-chan time.Time // nil: never fires
	if e.cfg.BundleDir != "" && e.cfg.PollInterval > 0 {
		t := e.clock.NewTicker(e.cfg.PollInterval)
		defer t.Stop()
		tick = t.C()
	}
	pending := "" // a changed fingerprint waiting to be seen stable
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case s := <-sig:
			e.reloadMu.Lock()
			_ = e.reloadLocked(ctx, "signal "+s.String()) // logged and counted inside
			e.reloadMu.Unlock()
			pending = ""
		case <-tick:
			pending = e.poll(ctx, pending)
			if testHookPolled != nil {
				testHookPolled()
			}
		}
	}
}

// testHookPolled, if set (by tests only), is called after every poll.
var testHookPolled func()

// poll compares the bundle's fingerprint with the loaded and the failed ones and
// reloads a change seen twice in a row. It returns the new pending fingerprint.
func (e *Engine) poll(ctx context.Context, pending string) string {
	fp, err := fingerprint(e.fsys)
	if err != nil {
		e.log.Warn("policy bundle unreadable; keeping the current policy", "bundle", e.source, "err", err)
		return ""
	}
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if fp == e.loadedFingerprint || fp == e.failedFingerprint {
		return ""
	}
	if fp != pending {
		return fp // changed: wait one interval for the writer to finish
	}
	_ = e.reloadLocked(ctx, "file change") // logged and counted inside
	return ""
}
