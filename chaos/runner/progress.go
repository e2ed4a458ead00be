package runner

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/shardmatch/shardmatch/shardsvc"
)

// progress prints a status line every second until the returned stop is called:
// elapsed time, commits and aborts so far, the last second's p99, the leader and the
// faults in force.
func (d *deployment) progress(ctx context.Context, w io.Writer, drv *shardsvc.LoadGen, in *injector, start time.Duration) (stop func()) {
	if w == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var prev shardsvc.Stats
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			s := drv.Stats()
			p99 := time.Duration(0)
			if s.Latency != nil {
				h := s.Latency
				if prev.Latency != nil {
					h = h.Sub(prev.Latency)
				}
				p99 = h.Quantile(0.99)
			}
			leader := "none"
			if l, _ := d.readyLeader(ctx); l != nil {
				leader = l.name
			}
			rej := ""
			if len(s.Rejections) > 0 {
				rej = " rejections" + reasons(s.Rejections)
			}
			fmt.Fprintf(w, "[%5.1fs/%s] committed %d aborted %d%s%s unknown %d | p99 %s | leader %s | faults: %s\n",
				(in.now() - start).Seconds(), time.Duration(d.sc.Duration), s.Committed, s.AbortedTotal(),
				reasons(s.Aborted), rej, s.Errors, p99.Round(time.Millisecond), leader, in.activeDesc())
			prev = s
		}
	}()
	return func() { cancel(); <-done }
}

func reasons(m map[string]uint64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return " (" + strings.Join(parts, " ") + ")"
}

// activeDesc describes the faults in force.
func (in *injector) activeDesc() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var parts []string
	for i := range in.active {
		parts = append(parts, in.windows[i].Kind+" "+in.windows[i].Targets)
	}
	if len(parts) == 0 {
		return "none"
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}
