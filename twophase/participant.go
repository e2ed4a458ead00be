package twophase

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardmatch/shardmatch/clock"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// ShardHandler is the game's own player state, implemented by the shard server. The
// Participant calls it with the transaction's lock held, so calls for one txid never
// overlap; calls for different txids may run concurrently.
type ShardHandler interface {
	// Prepare checks the shard's own truth (online, idle, not mid-transfer) and
	// reserves the players. It returns no rejections and no error to vote YES, or
	// rejections to vote NO; on NO it must not keep any reservation.
	//
	// An error means the shard cannot answer now (its database is unreachable, say):
	// it must then keep no reservation either. No vote is sent and nothing is
	// journaled, so the Prepare is delivered again (natstransport: after
	// NakDelay, doubling to NakDelayMax) and the answer can differ next time. The
	// coordinator waits for the vote until its prepare timeout (serve
	// --prepare-timeout, 5 s by default) and then aborts the match with
	// SHARD_TIMEOUT; an error for longer than that costs the match, never safety.
	//
	// The players Prepare sees carry fencing tokens no lower than any this shard has
	// seen: the Participant refuses stale ones (STALE_TOKEN) before asking.
	Prepare(ctx context.Context, txid string, players []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error)
	// Commit moves the reserved players into the match. players holds only those
	// whose fencing token is current: a player this shard has since seen with a higher
	// token (a newer holder) is left out, so Commit never needs a fence check of its
	// own. The Participant calls it at
	// most once per txid per journal, except after a crash (or journal write failure)
	// between Commit returning and the journal recording it: then it is called again,
	// so it must be safe to repeat. An error means nothing was applied; the Commit is
	// retried on the next delivery.
	Commit(ctx context.Context, txid string, players []*smv1.ShardPlayer) error
	// Abort releases the reservations of a txid this shard prepared with YES. The same
	// repeat rule as Commit applies.
	Abort(ctx context.Context, txid string, players []*smv1.ShardPlayer) error
}

// OutcomeQuerier asks the coordinator for a transaction's outcome (the linearizable
// sm.v1.status query). It answers OUTCOME_PENDING while the txn is undecided.
type OutcomeQuerier interface {
	Outcome(ctx context.Context, txid string) (smv1.Outcome, error)
}

// DefaultTombstoneRetention is how long decided records are kept when
// ParticipantConfig.TombstoneRetention is zero. It must outlast any delayed Prepare
// (JetStream redelivery included): a Prepare that arrives after its tombstone was
// dropped is answered as new.
const DefaultTombstoneRetention = 24 * time.Hour

// Rejection codes the participant itself produces, besides the handler's own.
const (
	// RejectAborted: the txid was aborted before its Prepare arrived.
	RejectAborted = "ABORTED"
	// RejectStaleToken: the player's fencing token is lower than one already seen.
	RejectStaleToken = "STALE_TOKEN"
	// RejectReserved: the player is held by another transaction this shard prepared
	// and has not yet learned the outcome of.
	RejectReserved = "RESERVED"
	// RejectRefused: a NO without a reason, given when a recorded NO has none.
	RejectRefused = "REFUSED"
	// RejectStaleTerm: the Prepare came from a coordinator term older than one this
	// shard has already heard from. A new leader aborts every transaction still
	// preparing when it takes over, so an older term's Prepare can only lose.
	RejectStaleTerm = "STALE_TERM"
)

// ParticipantConfig configures a Participant. ShardID, Handler and Journal are
// required.
type ParticipantConfig struct {
	// ShardID is this shard's id; commands for other shards are refused.
	ShardID string
	// Handler is the game's player state.
	Handler ShardHandler
	// Journal records votes and outcomes durably. The Participant does not close it.
	Journal Journal
	// Clock times tombstone retention (monotonic) and stamps records (wall, display).
	// Nil is the machine's clock.
	Clock clock.Clock
	// Logger receives protocol anomalies at error level. Nil discards.
	Logger *slog.Logger
	// TombstoneRetention is how long Compact keeps decided records. Zero means
	// DefaultTombstoneRetention.
	TombstoneRetention time.Duration
}

func (c *ParticipantConfig) validate() error {
	switch {
	case c.ShardID == "":
		return errors.New("twophase: ParticipantConfig.ShardID is empty")
	case c.Handler == nil:
		return errors.New("twophase: ParticipantConfig.Handler is nil")
	case c.Journal == nil:
		return errors.New("twophase: ParticipantConfig.Journal is nil")
	case c.TombstoneRetention < 0:
		return fmt.Errorf("twophase: ParticipantConfig.TombstoneRetention (%s) must be >= 0", c.TombstoneRetention)
	}
	return nil
}

// Participant is the shard side of two-phase commit: what a shard server embeds to
// answer Prepare, Commit and Abort. Every command is idempotent by txid and commands
// for one txid are serialised, so duplicates and reordering never apply an effect
// twice. It implements CommandHandler.
//
// Lock order: compactMu, then txid locks (ptLocks; only Compact holds more than one, and
// takes them in txid order), then mu or tokMu. mu and tokMu are leaves and are never
// held across a call to the Handler or the Journal.
type Participant struct {
	cfg       ParticipantConfig
	log       *slog.Logger
	bootMono  time.Duration
	locks     ptLocks
	compactMu sync.Mutex // one Compact at a time; it takes many txid locks, in order

	mu      sync.Mutex
	inDoubt map[string][]*smv1.ShardPlayer // PREPARED txids → their players
	held    map[string]string              // player → txid holding them PREPARED (or claiming)
	booted  map[string]struct{}            // txids whose record predates this Participant

	tokMu  sync.RWMutex
	tokens map[string]uint64 // highest fencing token seen per player
	// fenceMu makes a commit's check of its tokens and their durable raise one step
	// when the commit raises them (only a commit with no YES on record does).
	fenceMu sync.Mutex

	// term is the highest coordinator term heard from, in memory: a restarted shard
	// learns it again from the next command.
	term atomic.Uint64

	stats ptCounters
}

var _ CommandHandler = (*Participant)(nil)

// NewParticipant validates cfg and loads the journal: in-doubt transactions, the
// players they hold, and the highest tokens seen.
func NewParticipant(cfg ParticipantConfig) (*Participant, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.TombstoneRetention == 0 {
		cfg.TombstoneRetention = DefaultTombstoneRetention
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewReal()
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	p := &Participant{
		cfg:      cfg,
		log:      lg.With("shard", cfg.ShardID),
		bootMono: cfg.Clock.Mono(),
		inDoubt:  make(map[string][]*smv1.ShardPlayer),
		held:     make(map[string]string),
		booted:   make(map[string]struct{}),
	}
	entries, err := cfg.Journal.List()
	if err != nil {
		return nil, fmt.Errorf("twophase: load journal: %w", err)
	}
	for _, e := range entries {
		p.booted[e.TxID] = struct{}{}
		if e.State == JournalPrepared {
			p.inDoubt[e.TxID] = e.Players
			for _, pl := range e.Players {
				p.held[pl.GetPlayerId()] = e.TxID
			}
		}
	}
	if p.tokens, err = cfg.Journal.HighestTokens(); err != nil {
		return nil, fmt.Errorf("twophase: load journal tokens: %w", err)
	}
	if len(p.inDoubt) > 0 {
		p.log.Info("journal has in-doubt transactions; call Recover", "in_doubt", len(p.inDoubt))
	}
	return p, nil
}

// ShardID returns the shard this participant answers for.
func (p *Participant) ShardID() string { return p.cfg.ShardID }

// HandleCommand answers one Prepare, Commit or Abort. A nil reply with an error means
// nothing should be sent: the coordinator resends until it hears a reply.
func (p *Participant) HandleCommand(ctx context.Context, cmd *smv1.ShardCommand) (*smv1.ShardReply, error) {
	switch {
	case cmd.GetPrepare() != nil:
		return p.prepare(ctx, cmd.GetPrepare())
	case cmd.GetCommit() != nil:
		return p.commit(ctx, cmd.GetCommit(), "command")
	case cmd.GetAbort() != nil:
		return p.abort(ctx, cmd.GetAbort())
	}
	return nil, fmt.Errorf("%w: no prepare, commit or abort", ErrMalformedCommand)
}

func (p *Participant) checkAddress(op, txid, shard string) error {
	if txid == "" {
		return fmt.Errorf("%w: %s with empty txid", ErrMalformedCommand, op)
	}
	if shard != p.cfg.ShardID {
		return fmt.Errorf("%w: %s %s is for shard %q, this is %q", ErrWrongShard, op, txid, shard, p.cfg.ShardID)
	}
	return nil
}

func (p *Participant) prepare(ctx context.Context, m *smv1.Prepare) (*smv1.ShardReply, error) {
	txid := m.GetTxid()
	if err := p.checkAddress("prepare", txid, m.GetShardId()); err != nil {
		return nil, err
	}
	p.stats.prepares.Add(1)
	defer p.locks.lock(txid)()

	e, found, err := p.cfg.Journal.Get(txid)
	if err != nil {
		return nil, fmt.Errorf("twophase: prepare %s: read journal: %w", txid, err)
	}
	if found {
		switch e.State {
		case JournalAborted:
			// Abort overtook this Prepare: the coordinator has decided, so the only
			// useful answer is NO, and nothing is reserved.
			rej := make([]*smv1.PlayerRejection, 0, len(m.GetPlayers()))
			for _, pl := range m.GetPlayers() {
				rej = append(rej, &smv1.PlayerRejection{PlayerId: pl.GetPlayerId(), Code: RejectAborted, Message: "transaction aborted before its prepare arrived"})
			}
			return p.voteNo(m, rej, RejectAborted), nil
		case JournalVotedNo:
			p.stats.duplicates.Add(1)
			return p.voteNo(m, e.Rejections, RejectRefused), nil
		default: // PREPARED, or COMMITTED: a late duplicate the coordinator ignores.
			p.stats.duplicates.Add(1)
			return p.voteYes(m), nil
		}
	}

	players := m.GetPlayers()
	tokens := ptTokensOf(players)
	rej := p.staleRejections(players)
	if len(rej) > 0 {
		p.stats.staleTokens.Add(1)
		tokens = nil // the stale tokens say nothing new
	} else if highest := p.heardTerm(m.GetTerm()); m.GetTerm() < highest {
		p.stats.staleTerms.Add(1)
		rej = []*smv1.PlayerRejection{{Code: RejectStaleTerm,
			Message: fmt.Sprintf("prepare from coordinator term %d; term %d has taken over", m.GetTerm(), highest)}}
	} else if rej = p.claim(txid, players); len(rej) == 0 {
		var herr error
		rej, herr = p.cfg.Handler.Prepare(ctx, txid, players)
		if herr != nil {
			p.unclaim(txid, players)
			p.stats.deferred.Add(1)
			return nil, fmt.Errorf("%w: prepare %s: %w", ErrPrepareDeferred, txid, herr)
		}
		if len(rej) == 0 {
			err := p.record(JournalEntry{TxID: txid, State: JournalPrepared, Players: players, Term: m.GetTerm()}, tokens)
			if err != nil {
				// A YES without its record could be forgotten by a crash, so no vote
				// goes out; undo the game's reservation and let the coordinator resend.
				p.unclaim(txid, players)
				if aerr := p.cfg.Handler.Abort(ctx, txid, players); aerr != nil {
					p.log.Error("releasing reservation after journal failure", "txid", txid, "err", aerr)
				}
				return nil, fmt.Errorf("twophase: prepare %s: journal: %w", txid, err)
			}
			return p.voteYes(m), nil
		}
		p.unclaim(txid, players)
	}
	// Journal the NO so that a repeated Prepare repeats it. If that fails, NO is still
	// safe to send: this shard holds nothing for txid.
	if err := p.record(JournalEntry{TxID: txid, State: JournalVotedNo, Players: players, Rejections: rej, Term: m.GetTerm()}, tokens); err != nil {
		p.log.Warn("journal NO vote", "txid", txid, "err", err)
	}
	return p.voteNo(m, rej, RejectRefused), nil
}

func (p *Participant) voteYes(m *smv1.Prepare) *smv1.ShardReply {
	p.stats.votesYes.Add(1)
	return &smv1.ShardReply{Reply: &smv1.ShardReply_Vote{Vote: &smv1.Vote{
		Txid: m.GetTxid(), ShardId: p.cfg.ShardID, Vote: smv1.VoteValue_VOTE_YES, Term: m.GetTerm()}}}
}

// voteNo answers NO. An empty rej is given a shard-wide rejection (no player id) with
// code, so that a NO never reaches the coordinator without a reason.
func (p *Participant) voteNo(m *smv1.Prepare, rej []*smv1.PlayerRejection, code string) *smv1.ShardReply {
	if len(rej) == 0 {
		rej = []*smv1.PlayerRejection{{Code: code}}
	}
	p.stats.votesNo.Add(1)
	return &smv1.ShardReply{Reply: &smv1.ShardReply_Vote{Vote: &smv1.Vote{
		Txid: m.GetTxid(), ShardId: p.cfg.ShardID, Vote: smv1.VoteValue_VOTE_NO, Rejections: rej, Term: m.GetTerm()}}}
}

// commit applies a Commit; from names where it came from, for logs.
func (p *Participant) commit(ctx context.Context, m *smv1.Commit, from string) (*smv1.ShardReply, error) {
	txid := m.GetTxid()
	if err := p.checkAddress("commit", txid, m.GetShardId()); err != nil {
		return nil, err
	}
	defer p.locks.lock(txid)()

	e, found, err := p.cfg.Journal.Get(txid)
	if err != nil {
		return nil, fmt.Errorf("twophase: commit %s: read journal: %w", txid, err)
	}
	players := m.GetPlayers()
	switch {
	case found && e.State == JournalCommitted:
		p.stats.duplicates.Add(1)
		return p.ack(txid, smv1.Outcome_OUTCOME_COMMITTED, m.GetTerm()), nil
	case found && e.State == JournalAborted:
		p.stats.violations.Add(1)
		p.log.Error("protocol violation: commit of an aborted transaction; refusing", "txid", txid, "term", m.GetTerm(), "from", from)
		return nil, fmt.Errorf("%w: commit of %s, which this shard already aborted", ErrConflictingDecision, txid)
	case found && e.State == JournalPrepared:
		// Commit exactly what the game reserved.
		players = e.Players
	default:
		// Unknown (journal lost, or compacted) or NO-voted: the coordinator cannot
		// have decided COMMIT without this shard's YES, so something is wrong, but the
		// decision in its log is authoritative (I3): apply it and make noise.
		p.stats.anomalies.Add(1)
		state := "unknown"
		if found {
			state = e.State.String()
		}
		p.log.Error("protocol anomaly: commit without a YES vote on record; applying the coordinator's decision",
			"txid", txid, "journal_state", state, "term", m.GetTerm(), "from", from)
	}
	p.heardTerm(m.GetTerm())
	current, err := p.fenceCommit(txid, players)
	if err != nil {
		return nil, fmt.Errorf("twophase: commit %s: %w", txid, err)
	}
	if err := p.cfg.Handler.Commit(ctx, txid, current); err != nil {
		return nil, fmt.Errorf("twophase: commit %s: handler: %w", txid, err)
	}
	if err := p.record(JournalEntry{TxID: txid, State: JournalCommitted, Players: players, Term: m.GetTerm()}, ptTokensOf(players)); err != nil {
		return nil, fmt.Errorf("twophase: commit %s: journal: %w", txid, err)
	}
	p.stats.commits.Add(1)
	return p.ack(txid, smv1.Outcome_OUTCOME_COMMITTED, m.GetTerm()), nil
}

func (p *Participant) abort(ctx context.Context, m *smv1.Abort) (*smv1.ShardReply, error) {
	txid := m.GetTxid()
	if err := p.checkAddress("abort", txid, m.GetShardId()); err != nil {
		return nil, err
	}
	defer p.locks.lock(txid)()

	e, found, err := p.cfg.Journal.Get(txid)
	if err != nil {
		return nil, fmt.Errorf("twophase: abort %s: read journal: %w", txid, err)
	}
	players := m.GetPlayers()
	p.heardTerm(m.GetTerm())
	switch {
	case found && e.State == JournalAborted:
		p.stats.duplicates.Add(1)
		return p.ack(txid, smv1.Outcome_OUTCOME_ABORTED, m.GetTerm()), nil
	case found && e.State == JournalCommitted:
		p.stats.violations.Add(1)
		p.log.Error("protocol violation: abort of a committed transaction; refusing", "txid", txid, "term", m.GetTerm())
		return nil, fmt.Errorf("%w: abort of %s, which this shard already committed", ErrConflictingDecision, txid)
	case found && e.State == JournalPrepared:
		players = e.Players
		if err := p.cfg.Handler.Abort(ctx, txid, players); err != nil {
			return nil, fmt.Errorf("twophase: abort %s: handler: %w", txid, err)
		}
	}
	// Unknown or NO-voted txids get a tombstone and no handler call: nothing is
	// reserved, and the tombstone makes a Prepare still in flight vote NO.
	if err := p.record(JournalEntry{TxID: txid, State: JournalAborted, Players: players, Term: m.GetTerm()}, nil); err != nil {
		return nil, fmt.Errorf("twophase: abort %s: journal: %w", txid, err)
	}
	p.stats.aborts.Add(1)
	return p.ack(txid, smv1.Outcome_OUTCOME_ABORTED, m.GetTerm()), nil
}

func (p *Participant) ack(txid string, o smv1.Outcome, term uint64) *smv1.ShardReply {
	return &smv1.ShardReply{Reply: &smv1.ShardReply_Ack{Ack: &smv1.Ack{Txid: txid, ShardId: p.cfg.ShardID, Outcome: o, Term: term}}}
}

// record writes e durably, then updates the in-memory views of it. Called with e's
// txid lock held.
func (p *Participant) record(e JournalEntry, tokens map[string]uint64) error {
	e.RecordedAt = p.cfg.Clock.Now()
	e.RecordedMono = p.cfg.Clock.Mono()
	if err := p.cfg.Journal.Put(e, tokens); err != nil {
		return err
	}
	p.raiseTokens(tokens)
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.booted, e.TxID)
	if e.State == JournalPrepared {
		p.inDoubt[e.TxID] = e.Players
		return nil
	}
	if held, ok := p.inDoubt[e.TxID]; ok {
		delete(p.inDoubt, e.TxID)
		p.releaseLocked(e.TxID, held)
	}
	return nil
}

// claim reserves players for txid in the participant's own table, or returns a
// RESERVED rejection for each player another undecided txn holds. It is what keeps a
// player out of two prepared transactions even when the game forgot its reservations
// in a restart: the table is rebuilt from the journal.
func (p *Participant) claim(txid string, players []*smv1.ShardPlayer) []*smv1.PlayerRejection {
	p.mu.Lock()
	defer p.mu.Unlock()
	var rej []*smv1.PlayerRejection
	for _, pl := range players {
		if other, ok := p.held[pl.GetPlayerId()]; ok && other != txid {
			rej = append(rej, &smv1.PlayerRejection{PlayerId: pl.GetPlayerId(), Code: RejectReserved, Message: "held by undecided transaction " + other})
		}
	}
	if len(rej) > 0 {
		return rej
	}
	for _, pl := range players {
		p.held[pl.GetPlayerId()] = txid
	}
	return nil
}

func (p *Participant) unclaim(txid string, players []*smv1.ShardPlayer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.releaseLocked(txid, players)
}

func (p *Participant) releaseLocked(txid string, players []*smv1.ShardPlayer) {
	for _, pl := range players {
		if p.held[pl.GetPlayerId()] == txid {
			delete(p.held, pl.GetPlayerId())
		}
	}
}
