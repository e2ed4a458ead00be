package twophase

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// InDoubt returns the txids this shard voted YES for and has not learned the outcome
// of, sorted. Their players stay reserved until Recover or a Commit/Abort settles them.
func (p *Participant) InDoubt() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Sorted(maps.Keys(p.inDoubt))
}

// Recover asks q for the outcome of every in-doubt txid and applies COMMITTED or
// ABORTED exactly as a Commit or Abort command would. PENDING, an unknown answer or a
// query error leave the txid in doubt: a shard that voted YES never aborts on its own.
// It returns the query and apply errors joined; a txid still PENDING is not an error,
// so callers loop on len(InDoubt()) > 0 with backoff.
func (p *Participant) Recover(ctx context.Context, q OutcomeQuerier) error {
	var errs []error
	for _, txid := range p.InDoubt() {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		p.mu.Lock()
		players, ok := p.inDoubt[txid]
		p.mu.Unlock()
		if !ok {
			continue // settled by a command meanwhile
		}
		out, err := q.Outcome(ctx, txid)
		if err != nil {
			errs = append(errs, fmt.Errorf("twophase: recover %s: query outcome: %w", txid, err))
			continue
		}
		switch out {
		case smv1.Outcome_OUTCOME_COMMITTED:
			_, err = p.commit(ctx, &smv1.Commit{Txid: txid, ShardId: p.cfg.ShardID, Players: players}, "recover")
		case smv1.Outcome_OUTCOME_ABORTED:
			_, err = p.abort(ctx, &smv1.Abort{Txid: txid, ShardId: p.cfg.ShardID, Players: players})
		default:
			p.log.Info("transaction still undecided; staying in doubt", "txid", txid, "outcome", out)
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("twophase: recover %s: %w", txid, err))
		}
	}
	return errors.Join(errs...)
}

// Compact drops decided records (VOTED_NO, COMMITTED, ABORTED) older than
// TombstoneRetention on the monotonic clock, and reports how many it dropped. PREPARED
// records are never dropped. Records found in the journal at start-up count as written
// at start-up, because their monotonic stamps came from another process's clock:
// erring long only keeps a tombstone longer.
func (p *Participant) Compact() (int, error) {
	p.compactMu.Lock()
	defer p.compactMu.Unlock()
	entries, err := p.cfg.Journal.List()
	if err != nil {
		return 0, fmt.Errorf("twophase: compact: %w", err)
	}
	now := p.cfg.Clock.Mono()
	var cands []string
	for _, e := range entries {
		if p.expired(e, now) {
			cands = append(cands, e.TxID) // sorted, as List is
		}
	}
	if len(cands) == 0 {
		return 0, nil
	}
	// Hold every candidate's lock across the re-check and the delete, so a command
	// for one of them cannot rewrite it in between. Locks are taken in txid order and
	// no other code holds more than one, so this cannot deadlock.
	var drop []string
	for _, id := range cands {
		defer p.locks.lock(id)()
		e, found, err := p.cfg.Journal.Get(id)
		if err != nil {
			return 0, fmt.Errorf("twophase: compact: %w", err)
		}
		if found && p.expired(e, now) {
			drop = append(drop, id)
		}
	}
	if err := p.cfg.Journal.Delete(drop...); err != nil {
		return 0, fmt.Errorf("twophase: compact: %w", err)
	}
	p.mu.Lock()
	for _, id := range drop {
		delete(p.booted, id)
	}
	p.mu.Unlock()
	return len(drop), nil
}

func (p *Participant) expired(e JournalEntry, now time.Duration) bool {
	if e.State == JournalPrepared {
		return false
	}
	at := e.RecordedMono
	p.mu.Lock()
	if _, ok := p.booted[e.TxID]; ok {
		at = p.bootMono
	}
	p.mu.Unlock()
	return now-at >= p.cfg.TombstoneRetention
}
