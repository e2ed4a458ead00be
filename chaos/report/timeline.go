package report

import (
	"math"
	"slices"
	"time"

	"github.com/shardmatch/shardmatch/chaos/history"
)

// Sample is one bucket of the timeline: the proposals that returned in
// [At, At+bucket).
type Sample struct {
	At             time.Duration  `json:"at_ns"`
	Commits        int            `json:"commits"`
	Aborts         int            `json:"aborts"`
	Unknown        int            `json:"unknown,omitempty"`
	AbortsByReason map[string]int `json:"aborts_by_reason,omitempty"`
	// P50 and P99 are the latencies (Return − Invoke) of every propose that returned
	// in the bucket, whatever its result; 0 when none did.
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
}

// Timeline buckets the history's proposals by the time they returned. It covers
// [0, horizon) where horizon is the last invoke or return in the history; a bucket
// <= 0 means one second.
func Timeline(h *history.History, bucket time.Duration) []Sample {
	if bucket <= 0 {
		bucket = time.Second
	}
	if h == nil {
		return nil
	}
	horizon := historyHorizon(h)
	n := int((horizon + bucket - 1) / bucket)
	if n == 0 {
		return nil
	}
	out := make([]Sample, n)
	lat := make([][]time.Duration, n)
	for i := range out {
		out[i].At = time.Duration(i) * bucket
	}
	for _, op := range h.Ops {
		if op.Kind != history.OpPropose || !op.Returned {
			continue
		}
		i := min(int(op.Return/bucket), n-1)
		if i < 0 {
			continue
		}
		s := &out[i]
		switch op.Result {
		case history.ResultCommitted:
			s.Commits++
		case history.ResultAborted:
			s.Aborts++
			if s.AbortsByReason == nil {
				s.AbortsByReason = map[string]int{}
			}
			s.AbortsByReason[reasonName(op.Reason)]++
		default:
			s.Unknown++
		}
		lat[i] = append(lat[i], op.Return-op.Invoke)
	}
	for i := range out {
		out[i].P50, out[i].P99 = quantile(lat[i], 0.50), quantile(lat[i], 0.99)
	}
	return out
}

// historyHorizon is just past the latest time the history mentions in its ops and
// events.
// It is 0 for a history with no ops and no events.
func historyHorizon(h *history.History) time.Duration {
	if len(h.Ops)+len(h.ShardEvents)+len(h.LeaseEvents) == 0 {
		return 0
	}
	var end time.Duration
	for _, op := range h.Ops {
		end = max(end, op.Invoke, op.Return)
	}
	for _, ev := range h.ShardEvents {
		end = max(end, ev.At)
	}
	for _, ev := range h.LeaseEvents {
		end = max(end, ev.At)
	}
	return end + 1 // the last instant belongs to a bucket
}

// reasonName is an abort reason without the protobuf enum prefix; "" is "UNSPECIFIED".
func reasonName(r string) string {
	if len(r) > 7 && r[:7] == "REASON_" {
		r = r[7:]
	}
	if r == "" {
		return "UNSPECIFIED"
	}
	return r
}

// quantile is the nearest-rank q-quantile of ds (which it sorts); 0 for none.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}
