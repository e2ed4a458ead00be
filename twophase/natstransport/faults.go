package natstransport

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrBadPercent is returned by Faults.SetPercent for a share outside [0, 100].
var ErrBadPercent = errors.New("natstransport: fault percentage must be in [0, 100]")

// Hold-back bounds of a reordered message.
const (
	ReorderMinHold = 5 * time.Millisecond
	ReorderMaxHold = 50 * time.Millisecond
)

// DuplicateIDSuffix ends the Nats-Msg-Id of a command's injected duplicate, so that
// JetStream stores it as a second message instead of deduplicating it.
const DuplicateIDSuffix = "/dup"

// Faults is the transport fault hook of chaos runs (docs/chaos.md): it duplicates and
// reorders the messages a Coordinator (commands) and a ShardServer (votes and acks)
// publish, so that the protocol's idempotency and ordering rules are exercised by real
// processes. It is consulted on every outbound publish of the transports it is given
// to (CoordinatorConfig.Faults, ParticipantConfig.Faults); a nil *Faults costs one nil
// check and changes nothing. It is only ever wired when a binary runs with
// --enable-fault-injection.
//
//   - duplicate: the message is published twice. A command's copy carries the
//     Nats-Msg-Id with DuplicateIDSuffix appended, or JetStream would drop it.
//   - reorder: the message (and its copy) is held back for a random
//     ReorderMinHold–ReorderMaxHold of real time in a timer, so later messages
//     overtake it. A held message's publish error is dropped: to the protocol it is a
//     lost message, which resends recover.
//
// The percentages are atomics, changeable while running; the draws come from one
// seeded source, so a run's choices replay given the same sequence of publishes.
// Safe for concurrent use.
type Faults struct {
	dup, reorder atomic.Uint64 // math.Float64bits of the percentages

	mu  sync.Mutex
	rng *rand.Rand

	held sync.WaitGroup // reordered messages not yet published
}

// NewFaults returns a hook with both percentages zero, drawing from seed.
func NewFaults(seed int64) *Faults {
	return &Faults{rng: rand.New(rand.NewSource(seed))}
}

// SetPercent sets the share of messages duplicated and reordered, each in [0, 100].
// On error nothing changes.
func (f *Faults) SetPercent(duplicate, reorder float64) error {
	if f == nil {
		return errors.New("natstransport: no fault hook")
	}
	for _, p := range []float64{duplicate, reorder} {
		if !(p >= 0 && p <= 100) { // also refuses NaN
			return fmt.Errorf("%w: got %v", ErrBadPercent, p)
		}
	}
	f.dup.Store(math.Float64bits(duplicate))
	f.reorder.Store(math.Float64bits(reorder))
	return nil
}

// Percent returns the shares of messages duplicated and reordered.
func (f *Faults) Percent() (duplicate, reorder float64) {
	if f == nil {
		return 0, 0
	}
	return math.Float64frombits(f.dup.Load()), math.Float64frombits(f.reorder.Load())
}

// Wait blocks until every held-back message has been published (or dropped).
func (f *Faults) Wait() {
	if f != nil {
		f.held.Wait()
	}
}

// decide draws the fate of one message.
func (f *Faults) decide() (dup bool, hold time.Duration) {
	dp, rp := f.Percent()
	if dp <= 0 && rp <= 0 {
		return false, 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	dup = dp > 0 && f.rng.Float64()*100 < dp
	if rp > 0 && f.rng.Float64()*100 < rp {
		hold = ReorderMinHold + time.Duration(f.rng.Int63n(int64(ReorderMaxHold-ReorderMinHold)+1))
	}
	return dup, hold
}

// apply publishes m through the hook. now publishes at once and its error is the
// caller's; later publishes a held-back message; dupOf makes m's duplicate.
func (f *Faults) apply(m *nats.Msg, now func(*nats.Msg) error, later func(*nats.Msg), dupOf func(*nats.Msg) *nats.Msg) error {
	dup, hold := f.decide()
	msgs := []*nats.Msg{m}
	if dup {
		msgs = append(msgs, dupOf(m))
	}
	if hold > 0 {
		f.held.Add(1)
		time.AfterFunc(hold, func() {
			defer f.held.Done()
			for _, x := range msgs {
				later(x)
			}
		})
		return nil
	}
	if err := now(m); err != nil {
		return err
	}
	if dup {
		_ = now(msgs[1]) // a lost duplicate is only a fault not injected
	}
	return nil
}

// copyMsg returns a copy of m with its own header map.
func copyMsg(m *nats.Msg) *nats.Msg {
	c := &nats.Msg{Subject: m.Subject, Reply: m.Reply, Data: m.Data}
	if m.Header != nil {
		c.Header = make(nats.Header, len(m.Header))
		for k, v := range m.Header {
			c.Header[k] = append([]string(nil), v...)
		}
	}
	return c
}

// duplicateCmd copies a command with a Nats-Msg-Id JetStream will store again.
func duplicateCmd(m *nats.Msg) *nats.Msg {
	c := copyMsg(m)
	if id := c.Header.Get(jetstream.MsgIDHeader); id != "" {
		c.Header.Set(jetstream.MsgIDHeader, id+DuplicateIDSuffix)
	}
	return c
}

// publishCmd hands a command to JetStream through the fault hook. c.mu is held
// shared by the caller; a held-back command takes it again when its time comes and
// is dropped if the Coordinator closed meanwhile.
func (c *Coordinator) publishCmd(m *nats.Msg) error {
	pub := func(m *nats.Msg) error {
		_, err := c.pub.PublishMsgAsync(m)
		return err
	}
	f := c.cfg.Faults
	if f == nil {
		return pub(m)
	}
	late := func(m *nats.Msg) {
		c.mu.RLock()
		defer c.mu.RUnlock()
		if c.closed {
			return
		}
		if err := pub(m); err != nil {
			c.log.Debug("held-back command not published", "subject", m.Subject, "err", err)
		}
	}
	return f.apply(m, pub, late, duplicateCmd)
}

// publishReply publishes a vote or ack through the fault hook.
func (s *ShardServer) publishReply(m *nats.Msg) error {
	f := s.cfg.Faults
	if f == nil {
		return s.cfg.Conn.PublishMsg(m)
	}
	late := func(m *nats.Msg) {
		if err := s.cfg.Conn.PublishMsg(m); err != nil {
			s.log.Debug("held-back reply not published", "subject", m.Subject, "err", err)
		}
	}
	return f.apply(m, s.cfg.Conn.PublishMsg, late, copyMsg)
}
