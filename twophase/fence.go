package twophase

import (
	"fmt"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// StaleTokenError is the error Participant.Fence returns for a stale token. It matches
// ErrStaleToken under errors.Is.
type StaleTokenError struct {
	Player  string
	Token   uint64 // the token presented
	Highest uint64 // the highest token this shard has seen for Player
}

// Error describes the stale write.
func (e *StaleTokenError) Error() string {
	return fmt.Sprintf("twophase: stale fencing token for player %q: %d < highest seen %d", e.Player, e.Token, e.Highest)
}

// Is makes errors.Is(err, ErrStaleToken) hold.
func (e *StaleTokenError) Is(target error) bool { return target == ErrStaleToken }

// Fence guards a write to player state made on behalf of a match (I4): it returns a
// *StaleTokenError if token is lower than the highest token this shard has seen for
// player, whose holder was therefore superseded. Otherwise it records token as the
// highest, durably, before returning nil, so a restart cannot let an older holder back
// in. Call it under the game's own lock for the player, so the check and the write it
// guards are one step.
func (p *Participant) Fence(player string, token uint64) error {
	p.tokMu.RLock()
	highest := p.tokens[player]
	p.tokMu.RUnlock()
	if token < highest {
		return &StaleTokenError{Player: player, Token: token, Highest: highest}
	}
	if token == highest || player == "" {
		return nil
	}
	up := map[string]uint64{player: token}
	if err := p.cfg.Journal.RaiseTokens(up); err != nil {
		return fmt.Errorf("twophase: fence %q: journal: %w", player, err)
	}
	p.raiseTokens(up)
	return nil
}

// HighestToken returns the highest fencing token this shard has seen for player, 0 if
// none.
func (p *Participant) HighestToken(player string) uint64 {
	p.tokMu.RLock()
	defer p.tokMu.RUnlock()
	return p.tokens[player]
}

// raiseTokens max-merges tokens into the in-memory table, after they were journaled:
// a token is only enforced once it would survive a restart.
func (p *Participant) raiseTokens(tokens map[string]uint64) {
	if len(tokens) == 0 {
		return
	}
	p.tokMu.Lock()
	journalRaise(p.tokens, tokens)
	p.tokMu.Unlock()
}

// staleRejections returns a STALE_TOKEN rejection for each player whose token is lower
// than the highest seen.
func (p *Participant) staleRejections(players []*smv1.ShardPlayer) []*smv1.PlayerRejection {
	p.tokMu.RLock()
	defer p.tokMu.RUnlock()
	var rej []*smv1.PlayerRejection
	for _, pl := range players {
		if h := p.tokens[pl.GetPlayerId()]; pl.GetFencingToken() < h {
			rej = append(rej, &smv1.PlayerRejection{
				PlayerId: pl.GetPlayerId(),
				Code:     RejectStaleToken,
				Message:  fmt.Sprintf("fencing token %d < highest seen %d", pl.GetFencingToken(), h),
			})
		}
	}
	return rej
}

// ptTokensOf returns the highest token per player of a command.
func ptTokensOf(players []*smv1.ShardPlayer) map[string]uint64 {
	if len(players) == 0 {
		return nil
	}
	m := make(map[string]uint64, len(players))
	for _, pl := range players {
		if t := pl.GetFencingToken(); t > m[pl.GetPlayerId()] {
			m[pl.GetPlayerId()] = t
		}
	}
	return m
}

// fenceCommit returns the players of a Commit whose tokens are current, leaving out
// (and counting) any this shard has seen with a higher token: their holder was
// superseded, and the game must not move them. Tokens above the highest seen (a
// Commit with no YES on record: normally its Prepare raised them already) are raised
// durably first, so a restart cannot let an older holder back in.
func (p *Participant) fenceCommit(txid string, players []*smv1.ShardPlayer) ([]*smv1.ShardPlayer, error) {
	p.tokMu.RLock()
	var stale, raise bool
	for _, pl := range players {
		switch h := p.tokens[pl.GetPlayerId()]; {
		case pl.GetFencingToken() < h:
			stale = true
		case pl.GetFencingToken() > h && pl.GetPlayerId() != "":
			raise = true
		}
	}
	p.tokMu.RUnlock()
	if !stale && !raise {
		return players, nil
	}
	if raise {
		p.fenceMu.Lock()
		defer p.fenceMu.Unlock()
	}
	current := make([]*smv1.ShardPlayer, 0, len(players))
	up := map[string]uint64{}
	p.tokMu.RLock()
	for _, pl := range players {
		id, tok := pl.GetPlayerId(), pl.GetFencingToken()
		if h := p.tokens[id]; tok < h {
			p.stats.fenced.Add(1)
			p.log.Warn("commit leaves out a player superseded by a newer token", "txid", txid, "player", id, "token", tok, "highest", h)
			continue
		} else if tok > h && id != "" {
			up[id] = max(up[id], tok)
		}
		current = append(current, pl)
	}
	p.tokMu.RUnlock()
	if len(up) > 0 {
		if err := p.cfg.Journal.RaiseTokens(up); err != nil {
			return nil, fmt.Errorf("journal tokens: %w", err)
		}
		p.raiseTokens(up)
	}
	return current, nil
}

// heardTerm raises the highest coordinator term heard from to term, and returns it.
func (p *Participant) heardTerm(term uint64) uint64 {
	for {
		cur := p.term.Load()
		if term <= cur || p.term.CompareAndSwap(cur, term) {
			return max(cur, term)
		}
	}
}
