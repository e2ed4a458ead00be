package natstransport

import (
	"context"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/twophase"
)

// Recoverer is what a Handler implements to have its in-doubt transactions settled by
// outcome queries when a ShardServer starts. *twophase.Participant implements it.
type Recoverer interface {
	InDoubt() []string
	Recover(ctx context.Context, q twophase.OutcomeQuerier) error
}

var _ Recoverer = (*twophase.Participant)(nil)

// recoverLoop asks for the outcome of every in-doubt txid until none is left, with
// backoff, if the config asks for it. A txid the coordinator reports PENDING stays in
// doubt: a shard that voted YES never aborts on its own.
func (s *ShardServer) recoverLoop(ctx context.Context) {
	defer close(s.recovered)
	r := s.cfg.Recoverer
	if r == nil || s.cfg.Querier == nil {
		return
	}
	if len(r.InDoubt()) == 0 {
		return
	}
	wait := s.cfg.RecoverInterval
	for {
		if err := r.Recover(ctx, s.cfg.Querier); err != nil && ctx.Err() == nil {
			s.log.Warn("recovering in-doubt transactions", "in_doubt", len(r.InDoubt()), "err", err)
		}
		if len(r.InDoubt()) == 0 {
			s.log.Info("no in-doubt transactions left")
			return
		}
		if clock.Sleep(ctx, s.cfg.Clock, wait) != nil {
			return
		}
		wait = min(2*wait, s.cfg.RecoverIntervalMax)
	}
}
