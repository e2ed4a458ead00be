package shardsvc

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram should answer 0")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var xs []time.Duration
	for i := 0; i < 20000; i++ {
		// log-uniform from 10µs to 10s
		d := time.Duration(float64(10*time.Microsecond) * math.Pow(10, rng.Float64()*6))
		xs = append(xs, d)
		h.Record(d)
	}
	slices.Sort(xs)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		want := xs[max(int(q*float64(len(xs))+0.5)-1, 0)]
		got := h.Quantile(q)
		// 1% relative error, and durations are kept in whole microseconds.
		if diff := float64(got - want); diff > 0.01*float64(want)+float64(time.Microsecond) || -diff > 0.01*float64(want)+float64(time.Microsecond) {
			t.Errorf("q%.3f: got %s, want %s", q, got, want)
		}
	}
	if h.Count() != 20000 || h.Max() != xs[len(xs)-1] {
		t.Errorf("count %d, max %s", h.Count(), h.Max())
	}
}

func TestHistogramSub(t *testing.T) {
	var h Histogram
	for i := 0; i < 100; i++ {
		h.Record(time.Millisecond)
	}
	before := h
	for i := 0; i < 100; i++ {
		h.Record(50 * time.Millisecond)
	}
	d := h.Sub(&before)
	if d.Count() != 100 || d.Quantile(0.01) < 49*time.Millisecond {
		t.Fatalf("interval: %d samples, p1 %s", d.Count(), d.Quantile(0.01))
	}
	if h.Sub(nil).Count() != 200 {
		t.Fatal("Sub(nil) should copy")
	}
	h.Record(-time.Second)
	if h.Quantile(0) != 0 {
		t.Fatal("a negative duration should count as zero")
	}
}
