package shardsvc

import (
	"math/bits"
	"time"
)

// Histogram records durations with a relative error under 1% (HDR-style: 64 linear
// sub-buckets per power of two, in microseconds) in a fixed array, so recording is
// O(1), quantiles are O(buckets), and two snapshots subtract into the histogram of
// the interval between them. The zero value is empty and ready. It is not safe for
// concurrent use.
type Histogram struct {
	counts [histBuckets]uint64
	total  uint64
	sum    time.Duration
	max    time.Duration
}

const (
	histSubBits = 7 // 2^7 exact values, then 2^6 sub-buckets per power of two
	histSub     = 1 << histSubBits
	histHalf    = histSub / 2
	histMaxExp  = 40 // up to 2^(40+7) µs: far beyond any timeout
	histBuckets = histSub + histMaxExp*histHalf
)

func histIndex(us uint64) int {
	if us < histSub {
		return int(us)
	}
	e := bits.Len64(us) - histSubBits // us>>e is in [histHalf, histSub)
	if e > histMaxExp {
		return histBuckets - 1
	}
	return e*histHalf + int(us>>e)
}

// histValue returns the middle of bucket i, in microseconds.
func histValue(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := (i - histHalf) / histHalf
	m := uint64(i - e*histHalf)
	return m<<e + (1<<e)/2
}

// Record adds one duration (negative counts as zero).
func (h *Histogram) Record(d time.Duration) {
	d = max(d, 0)
	h.counts[histIndex(uint64(d/time.Microsecond))]++
	h.total++
	h.sum += d
	h.max = max(h.max, d)
}

// Count is the number of durations recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Mean is the average duration, 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return h.sum / time.Duration(h.total)
}

// Max is the largest duration recorded (for a Sub result, the larger run's maximum).
func (h *Histogram) Max() time.Duration { return h.max }

// Quantile returns the duration below which a share q in [0, 1] of the recorded
// durations fall, 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(q*float64(h.total) + 0.5)
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			return min(time.Duration(histValue(i))*time.Microsecond, h.max)
		}
	}
	return h.max
}

// Sub returns h minus an earlier snapshot of the same histogram: the durations
// recorded in between.
func (h *Histogram) Sub(earlier *Histogram) *Histogram {
	out := *h
	if earlier == nil {
		return &out
	}
	for i := range out.counts {
		out.counts[i] -= earlier.counts[i]
	}
	out.total -= earlier.total
	out.sum -= earlier.sum
	return &out
}
