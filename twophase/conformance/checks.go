package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// check is one rule of docs/protocol.md, run against the shard.
type check struct {
	name, rule string
	fn         func(ctx context.Context, h *harness) error
}

// Players by check: each check uses its own, so no check's leftovers (a player in a
// match, a reservation) can change another's answer.
const (
	pCommit = iota
	pTombstone
	pRelease
	pStaleTerm
	pReserved
	pMalformed
	pConflict
	pRecover
)

func checks() []check {
	return []check{
		{"register", "a shard registers its own ShardInfo (protocol_version 1) on <p>.v1.shard.<shard>.register before it serves", checkRegister},
		{"prepare-yes", "a Prepare of free players is answered with Vote YES echoing txid, shard_id and term, on <p>.v1.coord.vote.<shard>", checkPrepareYes},
		{"prepare-duplicate", "a Prepare delivered again (a new stream message) is answered with the same vote", checkPrepareDuplicate},
		{"commit", "a Commit of a prepared txn is answered with Ack COMMITTED on <p>.v1.coord.ack.<shard>, and again for a duplicate", checkCommit},
		{"stale-token", "a Prepare with a fencing token lower than one already seen is a NO with code STALE_TOKEN", checkStaleToken},
		{"abort-before-prepare", "an Abort that arrives before its Prepare is acked ABORTED and leaves a tombstone: the Prepare is then a NO with code ABORTED", checkTombstone},
		{"abort-releases", "an Abort of a prepared txn is acked ABORTED and releases its players: a new txn may prepare them", checkRelease},
		{"reserved", "a player held by an undecided txn is not prepared for another: that Prepare is a NO", checkReserved},
		{"stale-term", "a Prepare from an older coordinator term than one already seen is a NO with code STALE_TERM", checkStaleTerm},
		{"malformed", "an undecodable command, or one for another shard, gets no reply and does not stop the shard", checkMalformed},
		{"conflicting-decision", "an Abort of a committed txn is refused: no ack", checkConflict},
		{"recovery", "after a restart, the shard asks <p>.v1.status for the outcome of its in-doubt txn and applies it", checkRecovery},
		{"reply-subjects", "every reply arrives on the subject of this shard and of its kind, and decodes", checkStray},
	}
}

func (h *harness) txid(name string) string { return "ct-" + h.run + "-" + name }

func (h *harness) player(i int, token uint64) *smv1.ShardPlayer {
	return &smv1.ShardPlayer{PlayerId: h.cfg.Players[i], FencingToken: token}
}

func (h *harness) prepare(ctx context.Context, txid string, term uint64, players ...*smv1.ShardPlayer) error {
	return h.send(ctx, &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Prepare{Prepare: &smv1.Prepare{
		Txid: txid, ShardId: h.cfg.ShardID, Players: players, Term: term, Mode: "conformance", MatchTtlMs: 60_000}}}, term)
}

func (h *harness) commit(ctx context.Context, txid string, players ...*smv1.ShardPlayer) error {
	return h.send(ctx, &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Commit{Commit: &smv1.Commit{
		Txid: txid, ShardId: h.cfg.ShardID, Players: players, Term: h.term, MatchTtlMs: 60_000}}}, h.term)
}

func (h *harness) abort(ctx context.Context, txid string, players ...*smv1.ShardPlayer) error {
	return h.send(ctx, &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Abort{Abort: &smv1.Abort{
		Txid: txid, ShardId: h.cfg.ShardID, Players: players, Term: h.term, Reason: smv1.Reason_REASON_OPERATOR_ABORT}}}, h.term)
}

// vote waits for the n-th vote (1-based) on txid and checks its echo of txid, shard
// and term.
func (h *harness) vote(ctx context.Context, txid string, n int, term uint64) (*smv1.Vote, error) {
	if !h.waitFor(ctx, h.cfg.ReplyTimeout, func() bool { return len(h.votes[txid]) >= n }) {
		return nil, fmt.Errorf("no vote for %s within %s", txid, h.cfg.ReplyTimeout)
	}
	h.mu.Lock()
	v := h.votes[txid][n-1]
	h.mu.Unlock()
	if v.GetShardId() != h.cfg.ShardID || v.GetTerm() != term {
		return v, fmt.Errorf("vote %v does not echo shard_id %q and term %d", v, h.cfg.ShardID, term)
	}
	return v, nil
}

// ack is vote for acks.
func (h *harness) ack(ctx context.Context, txid string, n int, want smv1.Outcome) error {
	if !h.waitFor(ctx, h.cfg.ReplyTimeout, func() bool { return len(h.acks[txid]) >= n }) {
		return fmt.Errorf("no ack for %s within %s", txid, h.cfg.ReplyTimeout)
	}
	h.mu.Lock()
	a := h.acks[txid][n-1]
	h.mu.Unlock()
	if a.GetShardId() != h.cfg.ShardID || a.GetTerm() != h.term || a.GetOutcome() != want {
		return fmt.Errorf("ack %v: want %s echoing shard_id %q and term %d", a, want, h.cfg.ShardID, h.term)
	}
	return nil
}

// silent reports an error if a reply of kind to txid beyond the first n arrives within
// the Silence window.
func (h *harness) silent(ctx context.Context, txid string, votes, acks int) error {
	if h.waitFor(ctx, h.cfg.Silence, func() bool { return len(h.votes[txid]) > votes || len(h.acks[txid]) > acks }) {
		h.mu.Lock()
		defer h.mu.Unlock()
		return fmt.Errorf("a reply came for %s: votes %v, acks %v", txid, h.votes[txid], h.acks[txid])
	}
	return nil
}

// wantYes checks a YES vote.
func wantYes(v *smv1.Vote, err error) error {
	if err != nil {
		return err
	}
	if v.GetVote() != smv1.VoteValue_VOTE_YES {
		return fmt.Errorf("voted %s (%s), want YES: are the players free for the whole run?", v.GetVote(), codes(v))
	}
	return nil
}

// wantNo returns a check of a NO vote carrying code (any code if code is "").
func wantNo(code string) func(*smv1.Vote, error) error {
	return func(v *smv1.Vote, err error) error { return isNo(v, err, code) }
}

func isNo(v *smv1.Vote, err error, code string) error {
	if err != nil {
		return err
	}
	switch {
	case v.GetVote() != smv1.VoteValue_VOTE_NO:
		return fmt.Errorf("voted %s, want NO %s", v.GetVote(), code)
	case len(v.GetRejections()) == 0:
		return errors.New("a NO vote with no rejection")
	case code != "" && !strings.Contains(" "+codes(v)+" ", " "+code+" "):
		return fmt.Errorf("NO with codes %q, want %s", codes(v), code)
	}
	return nil
}

func codes(v *smv1.Vote) string {
	var out []string
	for _, r := range v.GetRejections() {
		out = append(out, r.GetCode())
	}
	return strings.Join(out, " ")
}

func checkRegister(ctx context.Context, h *harness) error {
	if !h.waitFor(ctx, h.cfg.RegisterTimeout, func() bool { return len(h.registers) > 0 }) {
		return fmt.Errorf("the shard did not register within %s: start the harness first, then the shard", h.cfg.RegisterTimeout)
	}
	h.mu.Lock()
	info := h.registers[0]
	h.mu.Unlock()
	switch {
	case info.GetShardId() != h.cfg.ShardID:
		return fmt.Errorf("registered as %q", info.GetShardId())
	case info.GetProtocolVersion() > 1:
		return fmt.Errorf("protocol_version %d; this harness speaks 1", info.GetProtocolVersion())
	case info.GetCapacity() < 0:
		return fmt.Errorf("capacity %d < 0", info.GetCapacity())
	}
	return nil
}

func checkPrepareYes(ctx context.Context, h *harness) error {
	tx := h.txid("commit")
	if err := h.prepare(ctx, tx, h.term, h.player(pCommit, h.token+10)); err != nil {
		return err
	}
	return wantYes(h.vote(ctx, tx, 1, h.term))
}

func checkPrepareDuplicate(ctx context.Context, h *harness) error {
	tx := h.txid("commit")
	if err := h.prepare(ctx, tx, h.term, h.player(pCommit, h.token+10)); err != nil {
		return err
	}
	return wantYes(h.vote(ctx, tx, 2, h.term))
}

func checkCommit(ctx context.Context, h *harness) error {
	tx := h.txid("commit")
	for n := 1; n <= 2; n++ {
		if err := h.commit(ctx, tx, h.player(pCommit, h.token+10)); err != nil {
			return err
		}
		if err := h.ack(ctx, tx, n, smv1.Outcome_OUTCOME_COMMITTED); err != nil {
			if n == 2 {
				return fmt.Errorf("duplicate Commit: %w", err)
			}
			return err
		}
	}
	return nil
}

func checkStaleToken(ctx context.Context, h *harness) error {
	tx := h.txid("stale-token")
	if err := h.prepare(ctx, tx, h.term, h.player(pCommit, h.token+9)); err != nil {
		return err
	}
	return wantNo("STALE_TOKEN")(h.vote(ctx, tx, 1, h.term))
}

func checkTombstone(ctx context.Context, h *harness) error {
	tx := h.txid("tombstone")
	p := h.player(pTombstone, h.token+10)
	if err := h.abort(ctx, tx, p); err != nil {
		return err
	}
	if err := h.ack(ctx, tx, 1, smv1.Outcome_OUTCOME_ABORTED); err != nil {
		return err
	}
	if err := h.prepare(ctx, tx, h.term, p); err != nil {
		return err
	}
	return wantNo("ABORTED")(h.vote(ctx, tx, 1, h.term))
}

func checkRelease(ctx context.Context, h *harness) error {
	first, second := h.txid("release-1"), h.txid("release-2")
	if err := h.prepare(ctx, first, h.term, h.player(pRelease, h.token+10)); err != nil {
		return err
	}
	if err := wantYes(h.vote(ctx, first, 1, h.term)); err != nil {
		return err
	}
	if err := h.abort(ctx, first, h.player(pRelease, h.token+10)); err != nil {
		return err
	}
	if err := h.ack(ctx, first, 1, smv1.Outcome_OUTCOME_ABORTED); err != nil {
		return err
	}
	if err := h.prepare(ctx, second, h.term, h.player(pRelease, h.token+11)); err != nil {
		return err
	}
	if err := wantYes(h.vote(ctx, second, 1, h.term)); err != nil {
		return fmt.Errorf("the aborted txn's player was not released: %w", err)
	}
	if err := h.abort(ctx, second); err != nil {
		return err
	}
	return h.ack(ctx, second, 1, smv1.Outcome_OUTCOME_ABORTED)
}

func checkReserved(ctx context.Context, h *harness) error {
	holder, other := h.txid("reserved-1"), h.txid("reserved-2")
	if err := h.prepare(ctx, holder, h.term, h.player(pReserved, h.token+10)); err != nil {
		return err
	}
	if err := wantYes(h.vote(ctx, holder, 1, h.term)); err != nil {
		return err
	}
	if err := h.prepare(ctx, other, h.term, h.player(pReserved, h.token+11)); err != nil {
		return err
	}
	verdict := wantNo("")(h.vote(ctx, other, 1, h.term))
	for _, tx := range []string{holder, other} {
		if err := h.abort(ctx, tx); err != nil {
			return err
		}
		if err := h.ack(ctx, tx, 1, smv1.Outcome_OUTCOME_ABORTED); err != nil {
			return err
		}
	}
	return verdict
}

func checkStaleTerm(ctx context.Context, h *harness) error {
	tx := h.txid("stale-term")
	if err := h.prepare(ctx, tx, h.term-1, h.player(pStaleTerm, h.token+10)); err != nil {
		return err
	}
	return wantNo("STALE_TERM")(h.vote(ctx, tx, 1, h.term-1))
}

func checkMalformed(ctx context.Context, h *harness) error {
	other := h.txid("misaddressed")
	cmd := &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Prepare{Prepare: &smv1.Prepare{
		Txid: other, ShardId: h.cfg.ShardID + "-other", Players: []*smv1.ShardPlayer{h.player(pMalformed, h.token+10)}, Term: h.term}}}
	if err := h.send(ctx, cmd, h.term); err != nil {
		return err
	}
	if err := h.publish(ctx, []byte("\xff\xff not a ShardCommand"), h.term); err != nil {
		return err
	}
	if err := h.silent(ctx, other, 0, 0); err != nil {
		return fmt.Errorf("a Prepare for another shard was answered: %w", err)
	}
	// Still serving: the next command is answered.
	tx := h.txid("after-malformed")
	if err := h.prepare(ctx, tx, h.term, h.player(pMalformed, h.token+10)); err != nil {
		return err
	}
	if err := wantYes(h.vote(ctx, tx, 1, h.term)); err != nil {
		return fmt.Errorf("after the malformed commands: %w", err)
	}
	if err := h.abort(ctx, tx); err != nil {
		return err
	}
	return h.ack(ctx, tx, 1, smv1.Outcome_OUTCOME_ABORTED)
}

func checkConflict(ctx context.Context, h *harness) error {
	tx := h.txid("conflict")
	p := h.player(pConflict, h.token+10)
	if err := h.prepare(ctx, tx, h.term, p); err != nil {
		return err
	}
	if err := wantYes(h.vote(ctx, tx, 1, h.term)); err != nil {
		return err
	}
	if err := h.commit(ctx, tx, p); err != nil {
		return err
	}
	if err := h.ack(ctx, tx, 1, smv1.Outcome_OUTCOME_COMMITTED); err != nil {
		return err
	}
	if err := h.abort(ctx, tx, p); err != nil {
		return err
	}
	if err := h.silent(ctx, tx, 1, 1); err != nil {
		return fmt.Errorf("the Abort of a committed txn was acked: %w", err)
	}
	return nil
}

func checkRecovery(ctx context.Context, h *harness) error {
	if h.cfg.Restart == nil {
		return fmt.Errorf("%w: no way to restart the shard (--restart-cmd)", errSkip)
	}
	tx := h.txid("recovery")
	p := h.player(pRecover, h.token+10)
	if err := h.prepare(ctx, tx, h.term, p); err != nil {
		return err
	}
	if err := wantYes(h.vote(ctx, tx, 1, h.term)); err != nil {
		return err
	}
	h.mu.Lock()
	h.outcomes[tx] = &smv1.TxnRecord{Txid: tx, State: smv1.TxnState_TXN_STATE_COMMITTED,
		Decision: &smv1.Decision{Txid: tx, Outcome: smv1.Outcome_OUTCOME_COMMITTED}, Shards: []string{h.cfg.ShardID}}
	registered := len(h.registers)
	h.mu.Unlock()
	if err := h.cfg.Restart(ctx); err != nil {
		return fmt.Errorf("%w: restart: %v", errSkip, err)
	}
	if !h.waitFor(ctx, h.cfg.RegisterTimeout, func() bool { return len(h.registers) > registered }) {
		return errors.New("the restarted shard did not register again")
	}
	if !h.waitFor(ctx, h.cfg.RegisterTimeout, func() bool { return h.asked[tx] > 0 }) {
		return fmt.Errorf("the restarted shard never asked for the outcome of in-doubt %s", tx)
	}
	// Applied: a duplicate Commit is now acked as COMMITTED.
	if err := h.commit(ctx, tx, p); err != nil {
		return err
	}
	return h.ack(ctx, tx, 1, smv1.Outcome_OUTCOME_COMMITTED)
}

func checkStray(_ context.Context, h *harness) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.stray) > 0 {
		return fmt.Errorf("%d stray replies, first: %s", len(h.stray), h.stray[0])
	}
	return nil
}
