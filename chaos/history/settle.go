package history

import "math"

// Converged says whether a complete poll shows a settled run: every txn DONE on
// every node, no shard holding a txn prepared, and the replicas caught up:
// either all at one applied index, or every node at or past the highest index
// of the previous poll (prevMax). The second form is for a log that keeps
// moving after the workload stops: the leader forgets finished txns as they
// age past the retention, one command per scan, and a poll of a large state
// takes longer than that, so the nodes are rarely read at one index. It
// returns the highest applied index of this poll, for the next. The chaos runner
// and the chart's end-to-end test settle their runs with it.
func Converged(f Final, prevMax uint64) (maxIndex uint64, ok bool) {
	minIndex := uint64(math.MaxUint64)
	ok = true
	for _, nf := range f.Nodes {
		minIndex, maxIndex = min(minIndex, nf.AppliedIndex), max(maxIndex, nf.AppliedIndex)
		for _, t := range nf.Txns {
			if t.State != StateDone {
				ok = false
			}
		}
	}
	for _, sf := range f.Shards {
		if len(sf.Prepared) > 0 {
			ok = false
		}
	}
	caughtUp := minIndex == maxIndex || (prevMax > 0 && minIndex >= prevMax)
	return maxIndex, ok && len(f.Nodes) > 0 && caughtUp
}
