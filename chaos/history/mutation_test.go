package history

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"
)

// A mutation breaks a clean generated history the way a buggy coordinator or shard
// would, and names the invariant that must catch it. It reports false if the history
// offers no place to apply it.
type mutation struct {
	name  string
	want  string
	apply func(h *History, rng *rand.Rand) bool
}

var mutations = []mutation{
	{"commit here, abort there", I1, mutCommitAbort},
	{"shard left in doubt", I1, mutInDoubt},
	{"commit never delivered", I1, mutCommitLost},
	{"grant to a leased player", I2, mutDoubleGrant},
	{"shard commits an ungranted txn", I2, mutCommitUngranted},
	{"final lease table invents a holder", I2, mutFinalLease},
	{"decision flipped on a node", I3, mutFlipDecision},
	{"proposal id gets a second txid", I3, mutSecondTxID},
	{"told aborted, leases activated", I3, mutAbortedActivated},
	{"grant token not increasing", I4, mutGrantToken},
	{"shard applies a lower token", I4, mutShardToken},
	{"txn left PREPARING", I5, mutLeftPreparing},
	{"op never returns", I5, mutNeverReturned},
	{"unknown proposal never decided", I5, mutUnknownUndecided},
	{"duplicate commit", I6, mutDuplicate(ShardCommitted)},
	{"duplicate prepare", I6, mutDuplicate(ShardPrepared)},
	{"shard changes its vote", I6, mutVoteFlip},
	{"expiry 10ms early", I7, mutEarlyExpiry},
	{"renew after expiry", I7, mutRenewAfterExpiry},
	{"node applies a different entry", LOG, mutDivergent},
	{"node skips an entry", LOG, mutSkip},
}

func TestMutationsAreCaught(t *testing.T) {
	for seed := int64(1); seed <= 3; seed++ {
		clean := generate(defaultGen(seed, 1500))
		if r := Check(clean); !r.OK() {
			t.Fatalf("seed %d: clean history flagged:\n%s", seed, r)
		}
		for _, m := range mutations {
			t.Run(fmt.Sprintf("seed%d/%s", seed, m.name), func(t *testing.T) {
				h := clean.Clone()
				if !m.apply(h, rand.New(rand.NewSource(seed))) {
					t.Fatal("mutation found nothing to break")
				}
				r := Check(h)
				if !r.Has(m.want) {
					t.Fatalf("%s not caught as %s:\n%s", m.name, m.want, r)
				}
				if !slices.ContainsFunc(checkers[m.want](h), func(v Violation) bool { return v.Invariant == m.want }) {
					t.Fatalf("Check%s alone missed it", m.want)
				}
			})
		}
	}
}

// pick returns a random element satisfying ok, and whether there was one.
func pick[T any](rng *rand.Rand, xs []T, ok func(T) bool) (T, bool) {
	var cands []T
	for _, x := range xs {
		if ok(x) {
			cands = append(cands, x)
		}
	}
	if len(cands) == 0 {
		var zero T
		return zero, false
	}
	return cands[rng.Intn(len(cands))], true
}

// multiShardCommit picks a txn committed at two or more shards and still in the finals.
func multiShardCommit(h *History, rng *rand.Rand) (TxnFinal, bool) {
	return pick(rng, h.Final.Nodes["n1"].Txns, func(t TxnFinal) bool { return t.Outcome == OutcomeCommitted && len(t.Shards) > 1 })
}

func editJournal(h *History, s string, edit func(*ShardFinal)) {
	sf := h.Final.Shards[s]
	edit(&sf)
	h.Final.Shards[s] = sf
}

func remove(xs []string, x string) []string {
	return slices.DeleteFunc(slices.Clone(xs), func(y string) bool { return y == x })
}
