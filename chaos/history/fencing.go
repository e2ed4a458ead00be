package history

// i4 checks fencing (I4): grants raise each player's token, the tokens told to
// proposers and applied at shards are the granted ones, and no shard applies a commit
// with a lower token for a player than one it already applied. Token 0 is "not
// recorded" and is skipped.
func (a *analysis) i4() []Violation {
	g := newViolator(I4)
	if len(a.h.LeaseEvents) > 0 {
		a.grantOrder(g)
		for _, op := range a.h.Ops {
			if op.Kind != OpPropose || op.Result != ResultCommitted || op.TxID == "" {
				continue
			}
			for _, p := range sortedKeys(op.Tokens) {
				if want, ok := a.grantToken(op.TxID, p); ok && op.Tokens[p] != 0 && op.Tokens[p] != want {
					g.addf(op.TxID, p, "", "", "proposer %s was told token %d for %s, but the log granted %d", op.Process, op.Tokens[p], p, want)
				}
			}
		}
		for _, s := range a.shards {
			for _, ev := range a.shardLog[s] {
				if ev.Kind != ShardCommitted && ev.Kind != ShardPrepared {
					continue
				}
				for _, pt := range ev.Players {
					if want, ok := a.grantToken(ev.TxID, pt.Player); ok && pt.Token != 0 && pt.Token != want {
						g.addf(ev.TxID, pt.Player, s, "", "shard %s %s %s with token %d, but the log granted %d", s, ev.Kind, pt.Player, pt.Token, want)
					}
				}
			}
		}
	}
	a.shardFences(g)
	return g.violations()
}

// grantOrder: in the canonical log, each grant's token for a player is above every
// earlier grant's token for that player.
func (a *analysis) grantOrder(g *violator) {
	type grant struct {
		tx    string
		token uint64
		index uint64
	}
	last := make(map[string]grant)
	for _, ev := range a.leaseLog().events {
		if ev.Kind != LeaseGranted {
			continue
		}
		for _, pt := range ev.Players {
			if pt.Token == 0 {
				continue
			}
			if prev, ok := last[pt.Player]; ok && pt.Token <= prev.token {
				g.addf(ev.TxID, pt.Player, "", "", "index %d granted %s token %d, not above token %d granted to %s at index %d",
					ev.Index, pt.Player, pt.Token, prev.token, prev.tx, prev.index)
			}
			last[pt.Player] = grant{ev.TxID, pt.Token, ev.Index}
		}
	}
}

// shardFences: per shard, in Seq order, committed tokens per player never go down, and
// one token never commits two txns.
func (a *analysis) shardFences(g *violator) {
	type applied struct {
		tx    string
		token uint64
	}
	for _, s := range a.shards {
		high := make(map[string]applied)
		for _, ev := range a.shardLog[s] {
			if ev.Kind != ShardCommitted {
				continue
			}
			for _, pt := range ev.Players {
				if pt.Token == 0 {
					continue
				}
				prev, ok := high[pt.Player]
				switch {
				case !ok || pt.Token > prev.token:
					high[pt.Player] = applied{ev.TxID, pt.Token}
				case pt.Token < prev.token:
					g.addf(ev.TxID, pt.Player, s, "", "shard %s applied token %d for %s after token %d (%s)", s, pt.Token, pt.Player, prev.token, prev.tx)
				case ev.TxID != prev.tx:
					g.addf(ev.TxID, pt.Player, s, "", "shard %s applied token %d for %s for both %s and %s", s, pt.Token, pt.Player, prev.tx, ev.TxID)
				}
			}
		}
	}
}
