package coordinator

// Sabotage breaks the protocol on purpose, so that a test or a chaos run can prove
// the invariant checkers catch what they claim to. It is not part of Config: a node
// gets it only through the WithSabotage option, which `coordinator serve` passes only
// with --enable-fault-injection and --unsafe. Never in production.
type Sabotage struct {
	// DeliverBeforeLog sends decisions to the shards before the decision entry is
	// committed (I3's checker must catch it).
	DeliverBeforeLog bool
	// WallClockExpiry makes the leader measure lease TTLs on the wall clock
	// (Clock.Now) instead of the monotonic clock, so a forward wall-clock jump expires
	// leases early (I7's checker must catch it).
	WallClockExpiry bool
}

// Option adjusts a Node beyond its Config.
type Option func(*Node)

// WithSabotage builds the node with s (see Sabotage).
func WithSabotage(s Sabotage) Option { return func(n *Node) { n.sabotage = s } }
