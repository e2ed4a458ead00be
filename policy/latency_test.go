package policy

import (
	"testing"
	"time"
)

func TestLatencyHistogram(t *testing.T) {
	var l latency
	if len(l.counts) != len(LatencyBounds)+1 {
		t.Fatalf("latency has %d buckets for %d bounds", len(l.counts), len(LatencyBounds))
	}
	for _, d := range []time.Duration{5 * time.Microsecond, 10 * time.Microsecond, 30 * time.Microsecond,
		30 * time.Microsecond, 99 * time.Microsecond, 120 * time.Microsecond, time.Second} {
		l.observe(d)
	}
	h := l.snapshot()
	if h.Count != 7 || h.Counts[0] != 2 || h.Counts[2] != 2 || h.Counts[4] != 1 || h.Counts[5] != 1 || h.Counts[len(h.Counts)-1] != 1 {
		t.Fatalf("buckets %v (count %d)", h.Counts, h.Count)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.25, 10 * time.Microsecond}, {0.5, 50 * time.Microsecond}, {0.7, 100 * time.Microsecond},
		{0.8, 150 * time.Microsecond}, {1, 500 * time.Millisecond}} {
		if got := h.Quantile(c.q); got != c.want {
			t.Errorf("Quantile(%v) = %s, want %s", c.q, got, c.want)
		}
	}
	if (Histogram{}).Quantile(0.99) != 0 {
		t.Error("an empty histogram has no quantile")
	}
}
