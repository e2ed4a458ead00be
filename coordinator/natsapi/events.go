package natsapi

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Event subjects' outcome tokens: <p>.v1.events.match.committed | .aborted.
const (
	OutcomeCommitted = "committed"
	OutcomeAborted   = "aborted"
)

// event is one decision waiting to be published.
type event struct {
	d  *smv1.Decision
	tp string
	at time.Duration // when this replica saw it (monotonic)
}

// eventQueue holds the decisions to publish while leading, and on every replica a
// ring of the recent ones for replay at takeover.
type eventQueue struct {
	window   time.Duration
	maxQueue int

	mu      sync.Mutex
	clk     clock.Clock
	leading bool
	ring    []event // recent decisions, oldest at head
	head, n int
	queue   []event
	wake    chan struct{}

	replayed, dropped, abandoned uint64 // under mu
}

func (q *eventQueue) init(cfg Config) {
	q.window, q.maxQueue, q.clk = cfg.ReplayWindow, cfg.MaxEventQueue, cfg.Clock
	q.ring = make([]event, cfg.MaxReplay)
	q.wake = make(chan struct{}, 1)
}

// Decided takes a decision applied on this node; the node calls it once the Server
// is passed to its Listen. It is called on every replica with the FSM lock held,
// so it only queues. The decision is published if and while this node leads; every
// replica also keeps it for ReplayWindow so that it can publish it after a takeover.
func (s *Server) Decided(d *smv1.Decision) {
	if d == nil || d.GetTxid() == "" {
		return
	}
	var tp string
	if pid := d.GetProposalId(); pid != "" {
		s.traceMu.Lock()
		tp = s.traces[pid]
		s.traceMu.Unlock()
	}
	s.stats.decisions.Add(1)
	s.events.add(event{d: d, tp: tp})
}

func (q *eventQueue) add(e event) {
	q.mu.Lock()
	e.at = q.clk.Mono()
	q.trim(e.at)
	if len(q.ring) > 0 {
		if q.n == len(q.ring) { // full: forget the oldest
			q.head = (q.head + 1) % len(q.ring)
			q.n--
		}
		q.ring[(q.head+q.n)%len(q.ring)] = e
		q.n++
	}
	leading := q.leading
	if leading {
		q.push(e)
	}
	q.mu.Unlock()
	if leading {
		q.signal()
	}
}

// trim forgets ring entries older than the window. mu is held.
func (q *eventQueue) trim(now time.Duration) {
	for q.n > 0 && now-q.ring[q.head].at > q.window {
		q.ring[q.head] = event{}
		q.head = (q.head + 1) % len(q.ring)
		q.n--
	}
}

// push queues e, dropping the oldest queued event past maxQueue. mu is held.
func (q *eventQueue) push(e event) {
	if len(q.queue) >= q.maxQueue {
		q.queue = q.queue[1:]
		q.dropped++
	}
	q.queue = append(q.queue, e)
}

func (q *eventQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// setLeading starts or stops publishing. On start it queues every decision seen within
// the replay window: decisions the previous leader may have applied and not published.
// Decisions older than the window by their own wall-clock stamp are left out too, so a
// node that replayed its whole log at start does not republish history (the wall clock
// only trims a best-effort replay here; it decides nothing).
func (q *eventQueue) setLeading(leading bool, clk clock.Clock) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.leading == leading {
		return
	}
	q.leading = leading
	if !leading {
		q.abandoned += uint64(len(q.queue))
		q.queue = nil
		return
	}
	now := q.clk.Mono()
	q.trim(now)
	wallFloor := clk.Now().Add(-q.window).UnixMilli()
	for i := 0; i < q.n; i++ {
		e := q.ring[(q.head+i)%len(q.ring)]
		if ms := e.d.GetDecidedUnixMs(); ms != 0 && ms < wallFloor {
			continue
		}
		q.push(e)
		q.replayed++
	}
	if len(q.queue) > 0 {
		q.signal()
	}
}

// take removes up to max queued events; none while not leading.
func (q *eventQueue) take(max int) []event {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.leading || len(q.queue) == 0 {
		return nil
	}
	n := min(max, len(q.queue))
	out := make([]event, n)
	copy(out, q.queue)
	q.queue = q.queue[n:]
	if len(q.queue) == 0 {
		q.queue = nil
	}
	return out
}

// requeue puts events that failed back at the front, if still leading.
func (q *eventQueue) requeue(evs []event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.leading {
		q.abandoned += uint64(len(evs))
		return
	}
	q.queue = append(append([]event(nil), evs...), q.queue...)
	for len(q.queue) > q.maxQueue {
		q.queue = q.queue[1:]
		q.dropped++
	}
}

// publishLoop publishes queued events in batches, asynchronously within a batch, and
// retries what JetStream did not confirm while this node leads.
func (s *Server) publishLoop() {
	defer s.wg.Done()
	ctx := s.life
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-s.events.wake:
		case <-ctx.Done():
			return
		}
		for ctx.Err() == nil {
			batch := s.events.take(256)
			if len(batch) == 0 {
				break
			}
			if failed := s.publishBatch(ctx, batch); len(failed) > 0 {
				s.events.requeue(failed)
				if clock.Sleep(ctx, s.cfg.Clock, backoff) != nil {
					return
				}
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
			backoff = 50 * time.Millisecond
		}
	}
}

// publishBatch publishes evs and waits for their PubAcks; it returns those that failed.
func (s *Server) publishBatch(ctx context.Context, evs []event) (failed []event) {
	type inflight struct {
		e   event
		fut jetstream.PubAckFuture
	}
	var pending []inflight
	for _, e := range evs {
		msg, err := s.eventMsg(e)
		if err != nil {
			s.stats.eventErrors.Add(1)
			s.log.Error("cannot publish decision", "txid", e.d.GetTxid(), "err", err)
			continue // a decision that cannot be encoded never will be
		}
		fut, err := s.pub.PublishMsgAsync(msg)
		if err != nil {
			s.stats.eventErrors.Add(1)
			failed = append(failed, e)
			continue
		}
		pending = append(pending, inflight{e, fut})
	}
	for _, p := range pending {
		select {
		case ack := <-p.fut.Ok():
			if ack.Duplicate {
				s.stats.eventsDeduplicated.Add(1)
			} else {
				s.stats.eventsPublished.Add(1)
			}
		case err := <-p.fut.Err():
			s.stats.eventErrors.Add(1)
			s.log.Debug("decision event not confirmed; retrying", "txid", p.e.d.GetTxid(), "err", err)
			failed = append(failed, p.e)
		case <-ctx.Done():
			return failed // closing: the next leader replays them
		}
	}
	return failed
}

func (s *Server) eventMsg(e event) (*nats.Msg, error) {
	tok := OutcomeAborted
	if e.d.GetOutcome() == smv1.Outcome_OUTCOME_COMMITTED {
		tok = OutcomeCommitted
	}
	subject, err := s.subj.EventsMatch(tok)
	if err != nil {
		return nil, err
	}
	data, err := proto.Marshal(e.d)
	if err != nil {
		return nil, err
	}
	h := nats.Header{
		jetstream.MsgIDHeader:          {e.d.GetTxid()},
		jetstream.ExpectedStreamHeader: {s.evStream},
	}
	if e.tp != "" {
		h.Set(natsutil.TraceParentHeader, e.tp)
	}
	return &nats.Msg{Subject: subject, Data: data, Header: h}, nil
}
