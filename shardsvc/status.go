package shardsvc

import (
	"fmt"
	"io"
	"time"
)

// StatusLine is the one-line live status: totals, and the rate and latency since
// prev (an earlier Stats of the same driver).
func StatusLine(cur, prev Stats, leader string) string {
	dt := (cur.Elapsed - prev.Elapsed).Seconds()
	rate := 0.0
	if dt > 0 {
		rate = float64(cur.Proposed-prev.Proposed) / dt
	}
	lat := "p50 -  p99 -"
	if cur.Latency != nil {
		if h := cur.Latency.Sub(prev.Latency); h.Count() > 0 {
			lat = fmt.Sprintf("p50 %.1fms  p99 %.1fms", ms(h.Quantile(0.5)), ms(h.Quantile(0.99)))
		}
	}
	if leader == "" {
		leader = "none"
	}
	return fmt.Sprintf("%5.0fs  committed %d  aborted %d%s  unknown %d  %.0f/s  %s  leader %s  in-flight %d  hosting %d",
		cur.Elapsed.Seconds(), cur.Committed, cur.AbortedTotal(), bracket(cur.Aborted), cur.Errors, rate, lat, leader,
		cur.InFlight, cur.Hosting)
}

// ShowStatus writes the driver's StatusLine to w every interval of the driver's clock
// until the returned function is called: rewritten in place if inPlace (w is a
// terminal), one line per interval otherwise. leader names the leading coordinator.
func ShowStatus(w io.Writer, d *LoadGen, every time.Duration, inPlace bool, leader func() string) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := d.cfg.Clock.NewTicker(every)
		defer t.Stop()
		prev, printed := d.Stats(), false
		for {
			select {
			case <-quit:
				if inPlace && printed {
					fmt.Fprintln(w)
				}
				return
			case <-t.C():
			}
			cur := d.Stats()
			line := StatusLine(cur, prev, leader())
			if inPlace {
				fmt.Fprintf(w, "\r%s\x1b[K", line)
			} else {
				fmt.Fprintln(w, line)
			}
			prev, printed = cur, true
		}
	}()
	return func() { close(quit); <-done }
}
