package twophase

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/clock"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// InmemAny stands for every peer in Partition and Heal: Partition(x, InmemAny) cuts x
// off from everyone (that is what Isolate does) and Heal(x, InmemAny) undoes it.
const InmemAny = "*"

// DefaultInmemQueueLen is the per-link queue bound when InmemConfig.QueueLen is zero.
const DefaultInmemQueueLen = 1 << 16

// InmemFaults are the random faults an InmemNetwork applies to every message, command
// and reply alike.
type InmemFaults struct {
	// DropRate is the probability in [0, 1] that a message is lost.
	DropRate float64
	// DuplicateRate is the probability in [0, 1] that a message is delivered twice.
	DuplicateRate float64
	// MinDelay and MaxDelay bound a delay drawn uniformly per message copy. Because
	// each copy waits on its own timer, any MaxDelay > 0 reorders messages.
	MinDelay, MaxDelay time.Duration
}

func (f InmemFaults) validate() error {
	switch {
	case !(f.DropRate >= 0 && f.DropRate <= 1):
		return fmt.Errorf("twophase: InmemFaults.DropRate (%v) must be in [0, 1]", f.DropRate)
	case !(f.DuplicateRate >= 0 && f.DuplicateRate <= 1):
		return fmt.Errorf("twophase: InmemFaults.DuplicateRate (%v) must be in [0, 1]", f.DuplicateRate)
	case f.MinDelay < 0:
		return fmt.Errorf("twophase: InmemFaults.MinDelay (%s) must be >= 0", f.MinDelay)
	case f.MaxDelay < f.MinDelay:
		return fmt.Errorf("twophase: InmemFaults.MaxDelay (%s) must be >= MinDelay (%s)", f.MaxDelay, f.MinDelay)
	}
	return nil
}

func (f InmemFaults) delay(r *rand.Rand) time.Duration {
	if f.MaxDelay <= 0 {
		return 0
	}
	return f.MinDelay + time.Duration(r.Int64N(int64(f.MaxDelay-f.MinDelay)+1))
}

// InmemConfig configures an InmemNetwork.
type InmemConfig struct {
	// Seed seeds the fault draws, so that a run with the same seed and the same
	// message order replays the same faults. Draws happen as messages are sent, so
	// concurrent senders replay only as far as their interleaving does.
	Seed int64
	// Clock times delays. Nil means the machine's clock.
	Clock clock.Clock
	// Faults are the initial faults; SetFaults changes them. New panics if invalid.
	Faults InmemFaults
	// QueueLen bounds each link's queue: Send never blocks, so a link whose receiver
	// is stuck drops (and counts) what does not fit, as a real network would.
	QueueLen int
}

// InmemHook sees every message before it is sent (from a coordinator node to a shard,
// or back) and returns false to drop it. It may be called concurrently and may call
// the network's fault controls.
type InmemHook func(from, to string, msg proto.Message) (deliver bool)

// InmemStats are an InmemNetwork's counters. Every message copy ends Delivered or
// Dropped (Overflowed is part of Dropped), unless the network was closed first.
type InmemStats struct {
	Sent          uint64 // messages handed to the network, commands and replies
	Delivered     uint64 // copies handed to a handler
	Dropped       uint64 // copies lost: hook, partition, drop rate, no receiver, overflow
	Duplicated    uint64 // messages sent twice
	Overflowed    uint64 // copies dropped because a link queue was full
	HandlerErrors uint64 // commands whose handler returned an error (no reply sent)
}

// InmemNetwork connects coordinator nodes and shard participants in one process, with
// partitions, loss, duplication, delay and reordering under test control. It is the
// transport of in-process clusters and chaos tests, not a mock: it honours the
// Transport contract exactly as an unreliable network would.
//
// Every ordered pair (sender, receiver) is a link with a FIFO queue and one delivery
// goroutine, so without delay faults each link preserves order, and a slow shard
// never holds up the others. Lock order: mu, then a link's mu; rngMu is a leaf.
type InmemNetwork struct {
	clk      clock.Clock
	queueLen int
	ctx      context.Context // cancelled by Close; handlers get it
	cancel   context.CancelFunc
	wg       sync.WaitGroup // link workers and delay timers

	mu     sync.Mutex
	closed bool
	coords map[string]ReplyHandler
	shards map[string]CommandHandler
	links  map[[2]string]*inmemLink
	cuts   map[[2]string]struct{} // unordered pairs, stored sorted
	faults InmemFaults
	hook   InmemHook

	rngMu sync.Mutex
	rng   *rand.Rand

	inflight atomic.Int64 // copies neither delivered nor dropped yet

	sent, delivered, dropped, duplicated, overflowed, handlerErrors atomic.Uint64
}

type inmemLink struct {
	from, to string
	toShard  bool // commands travel node → shard, replies shard → node
	wake     chan struct{}

	mu sync.Mutex
	q  []proto.Message
}

// NewInmemNetwork returns a network with no nodes and cfg.Faults applied.
func NewInmemNetwork(cfg InmemConfig) *InmemNetwork {
	if err := cfg.Faults.validate(); err != nil {
		panic(err)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewReal()
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultInmemQueueLen
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &InmemNetwork{
		clk:      cfg.Clock,
		queueLen: cfg.QueueLen,
		ctx:      ctx,
		cancel:   cancel,
		coords:   make(map[string]ReplyHandler),
		shards:   make(map[string]CommandHandler),
		links:    make(map[[2]string]*inmemLink),
		cuts:     make(map[[2]string]struct{}),
		faults:   cfg.Faults,
		rng:      rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5348_4152_444d_4154)),
	}
}

// Coordinator attaches coordinator node nodeID, whose replies go to h, and returns the
// Transport it sends with. Attaching the same node again replaces h (a restart).
func (n *InmemNetwork) Coordinator(nodeID string, h ReplyHandler) Transport {
	n.mu.Lock()
	n.coords[nodeID] = h
	n.mu.Unlock()
	return &inmemTransport{n: n, node: nodeID}
}

// RemoveCoordinator detaches a node: replies to it are dropped from now on.
func (n *InmemNetwork) RemoveCoordinator(nodeID string) {
	n.mu.Lock()
	delete(n.coords, nodeID)
	n.mu.Unlock()
}

// AddShard attaches a shard, replacing any handler it had (a restart).
func (n *InmemNetwork) AddShard(shardID string, h CommandHandler) {
	n.mu.Lock()
	n.shards[shardID] = h
	n.mu.Unlock()
}

// RemoveShard detaches a shard, as if killed: commands to it are dropped, including
// those already in flight.
func (n *InmemNetwork) RemoveShard(shardID string) {
	n.mu.Lock()
	delete(n.shards, shardID)
	n.mu.Unlock()
}

func inmemPair(a, b string) [2]string {
	if b < a {
		a, b = b, a
	}
	return [2]string{a, b}
}

// Partition drops every message between a and b, both ways, including those already
// in flight. Either may be InmemAny.
func (n *InmemNetwork) Partition(a, b string) {
	n.mu.Lock()
	n.cuts[inmemPair(a, b)] = struct{}{}
	n.mu.Unlock()
}

// Isolate cuts name off from every peer: Partition(name, InmemAny).
func (n *InmemNetwork) Isolate(name string) { n.Partition(name, InmemAny) }

// Heal removes the partition between a and b made by Partition(a, b) (or Isolate when
// b is InmemAny). Other partitions stay.
func (n *InmemNetwork) Heal(a, b string) {
	n.mu.Lock()
	delete(n.cuts, inmemPair(a, b))
	n.mu.Unlock()
}

// HealAll removes every partition and isolation.
func (n *InmemNetwork) HealAll() {
	n.mu.Lock()
	clear(n.cuts)
	n.mu.Unlock()
}

func (n *InmemNetwork) cutLocked(a, b string) bool {
	if len(n.cuts) == 0 {
		return false
	}
	for _, k := range [][2]string{inmemPair(a, b), inmemPair(a, InmemAny), inmemPair(b, InmemAny)} {
		if _, ok := n.cuts[k]; ok {
			return true
		}
	}
	return false
}

// SetFaults replaces the random faults, for messages sent from now on.
func (n *InmemNetwork) SetFaults(f InmemFaults) error {
	if err := f.validate(); err != nil {
		return err
	}
	n.mu.Lock()
	n.faults = f
	n.mu.Unlock()
	return nil
}

// SetHook installs h (nil removes it).
func (n *InmemNetwork) SetHook(h InmemHook) {
	n.mu.Lock()
	n.hook = h
	n.mu.Unlock()
}

// Stats returns a snapshot of the counters.
func (n *InmemNetwork) Stats() InmemStats {
	return InmemStats{
		Sent:          n.sent.Load(),
		Delivered:     n.delivered.Load(),
		Dropped:       n.dropped.Load(),
		Duplicated:    n.duplicated.Load(),
		Overflowed:    n.overflowed.Load(),
		HandlerErrors: n.handlerErrors.Load(),
	}
}

// InFlight counts message copies sent but neither delivered nor dropped yet; a
// delivery counts until its handler returned and its reply was sent, so zero means
// the network is quiet.
func (n *InmemNetwork) InFlight() int { return int(n.inflight.Load()) }

// Close stops every delivery goroutine and timer and waits for handlers in progress,
// whose context it cancels. Later sends fail with ErrNetworkClosed.
func (n *InmemNetwork) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	n.cancel()
	n.wg.Wait()
	return nil
}

type inmemTransport struct {
	n    *InmemNetwork
	node string
}

var _ Transport = (*inmemTransport)(nil)

// Send hands cmd to the network and returns at once. The command is copied, so the
// caller may reuse it.
func (t *inmemTransport) Send(ctx context.Context, shardID string, cmd *smv1.ShardCommand) error {
	if cmd == nil {
		return fmt.Errorf("%w: nil command", ErrMalformedCommand)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	t.n.mu.Lock()
	closed := t.n.closed
	t.n.mu.Unlock()
	if closed {
		return ErrNetworkClosed
	}
	t.n.post(t.node, shardID, true, cmd)
	return nil
}

// post applies the faults to one message and queues its surviving copies.
func (n *InmemNetwork) post(from, to string, toShard bool, msg proto.Message) {
	n.sent.Add(1)
	n.mu.Lock()
	closed, hook, faults, cut := n.closed, n.hook, n.faults, n.cutLocked(from, to)
	n.mu.Unlock()
	if closed || cut || (hook != nil && !hook(from, to, msg)) {
		n.dropped.Add(1)
		return
	}
	var delays [2]time.Duration
	copies := 1
	n.rngMu.Lock()
	lost := faults.DropRate > 0 && n.rng.Float64() < faults.DropRate
	if !lost && faults.DuplicateRate > 0 && n.rng.Float64() < faults.DuplicateRate {
		copies = 2
	}
	for i := range copies {
		delays[i] = faults.delay(n.rng)
	}
	n.rngMu.Unlock()
	if lost {
		n.dropped.Add(1)
		return
	}
	if copies == 2 {
		n.duplicated.Add(1)
	}
	for i := range copies {
		// A copy per delivery, as a wire would make: no handler shares memory with
		// the sender or with another copy.
		c := proto.Clone(msg)
		n.inflight.Add(1)
		if delays[i] == 0 {
			n.enqueue(from, to, toShard, c)
		} else {
			n.delayed(from, to, toShard, c, delays[i])
		}
	}
}

// lose ends a copy's flight as dropped.
func (n *InmemNetwork) lose() {
	n.dropped.Add(1)
	n.inflight.Add(-1)
}

func (n *InmemNetwork) delayed(from, to string, toShard bool, msg proto.Message, d time.Duration) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		n.lose()
		return
	}
	n.wg.Add(1)
	n.mu.Unlock()
	// The timer exists before post returns, so a test on a Fake clock can advance
	// right after Send.
	t := n.clk.NewTimer(d)
	go func() {
		defer n.wg.Done()
		defer t.Stop()
		select {
		case <-t.C():
			n.enqueue(from, to, toShard, msg)
		case <-n.ctx.Done():
			n.lose()
		}
	}()
}

func (n *InmemNetwork) enqueue(from, to string, toShard bool, msg proto.Message) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		n.lose()
		return
	}
	key := [2]string{from, to}
	l := n.links[key]
	if l == nil {
		l = &inmemLink{from: from, to: to, toShard: toShard, wake: make(chan struct{}, 1)}
		n.links[key] = l
		n.wg.Add(1)
		go n.work(l)
	}
	n.mu.Unlock()

	l.mu.Lock()
	if len(l.q) >= n.queueLen {
		l.mu.Unlock()
		n.overflowed.Add(1)
		n.lose()
		return
	}
	l.q = append(l.q, msg)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default: // the worker is already due to look
	}
}

// work delivers one link's messages in order until Close.
func (n *InmemNetwork) work(l *inmemLink) {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-l.wake:
		}
		for {
			l.mu.Lock()
			if len(l.q) == 0 {
				l.mu.Unlock()
				break
			}
			msg := l.q[0]
			l.q[0] = nil
			l.q = l.q[1:]
			l.mu.Unlock()
			if n.ctx.Err() != nil {
				return
			}
			n.deliver(l, msg)
		}
	}
}

func (n *InmemNetwork) deliver(l *inmemLink, msg proto.Message) {
	n.mu.Lock()
	cut := n.cutLocked(l.from, l.to)
	sh, rh := n.shards[l.to], n.coords[l.to]
	n.mu.Unlock()
	if cut || (l.toShard && sh == nil) || (!l.toShard && rh == nil) {
		n.lose()
		return
	}
	// The copy stays in flight until its reply is posted, so InFlight never reads
	// zero between a command and its reply.
	defer n.inflight.Add(-1)
	n.delivered.Add(1)
	if !l.toShard {
		rh(msg.(*smv1.ShardReply))
		return
	}
	reply, err := sh.HandleCommand(n.ctx, msg.(*smv1.ShardCommand))
	if err != nil {
		n.handlerErrors.Add(1)
		return
	}
	if reply != nil {
		n.post(l.to, l.from, false, reply)
	}
}
