package scenario

import "time"

// Scenario is one chaos experiment: the deployment to start, the load to drive through
// it, the faults to inject on schedule and what the run's verdict must be.
type Scenario struct {
	// Name identifies the scenario (a builtin's name is its file name); it names the
	// report directory, so it is lower-case letters, digits and dashes.
	Name string `yaml:"name" json:"name"`
	// Description says in one line what the scenario does and what it proves.
	Description string `yaml:"description" json:"description"`
	// Hidden marks a scenario that is not an experiment on the system but on the
	// checkers (the checker-bites runs): `chaos list` shows it apart.
	Hidden bool `yaml:"hidden,omitempty" json:"hidden,omitempty"`
	// Duration is the workload's running time; every fault lies inside it.
	Duration Duration `yaml:"duration" json:"duration"`
	// Settle is the time allowed, after the workload stops and every fault is healed,
	// for every transaction to terminate before the final state is read (default 15s).
	Settle Duration `yaml:"settle" json:"settle"`
	// Topology is the deployment.
	Topology Topology `yaml:"topology" json:"topology"`
	// Workload is the load driven through the deployment.
	Workload Workload `yaml:"workload" json:"workload"`
	// Faults is the fault schedule, on the workload's clock.
	Faults []Fault `yaml:"faults" json:"faults,omitempty"`
	// Checks are the invariants and liveness bounds the run is judged by.
	Checks Checks `yaml:"checks" json:"checks"`
	// Unsafe is "" or a coordinator unsafe mode (UnsafeDeliverBeforeLog,
	// UnsafeWallclockExpiry): a test-only break of the protocol that proves the
	// checkers bite. A scenario with Unsafe must Expect the violations it causes.
	Unsafe string `yaml:"unsafe,omitempty" json:"unsafe,omitempty"`
	// Expect is what the verdict must find (default: no violation at all).
	Expect Expect `yaml:"expect" json:"expect"`
}

// Bites reports whether the scenario runs a deliberately broken coordinator to show
// that a checker catches it.
func (s *Scenario) Bites() bool { return s.Unsafe != "" }

// Coordinator unsafe modes (Scenario.Unsafe). Both are test-only switches of the
// coordinator binary; no production configuration can set them.
const (
	// UnsafeDeliverBeforeLog sends decisions to the shards before the decision entry
	// is committed to Raft: a leader deposed in between leaves shards committed to a
	// txn its successor aborts (I1, I3).
	UnsafeDeliverBeforeLog = "deliver-before-log"
	// UnsafeWallclockExpiry measures lease expiry on the wall clock instead of the
	// monotonic one: a forward clock jump expires leases early (I7).
	UnsafeWallclockExpiry = "wallclock-expiry"
)

// UnsafeModes lists every valid Scenario.Unsafe value but "".
var UnsafeModes = []string{UnsafeDeliverBeforeLog, UnsafeWallclockExpiry}

// Topology is the deployment a scenario runs against.
type Topology struct {
	// Coordinators is the number of Raft coordinator nodes, c1..cN (default 3).
	Coordinators int `yaml:"coordinators" json:"coordinators"`
	// Shards is the number of shard servers, s1..sM (default 3).
	Shards int `yaml:"shards" json:"shards"`
	// PlayersPerShard is how many simulated players each shard owns (default 200).
	PlayersPerShard int `yaml:"players_per_shard" json:"players_per_shard"`
	// Rho is the clock rate error bound the coordinators tolerate (default 0.01).
	Rho float64 `yaml:"rho" json:"rho"`
	// PrepareTimeout is how long the leader waits for votes (default 2s).
	PrepareTimeout Duration `yaml:"prepare_timeout" json:"prepare_timeout"`
}

// Workload is the load a scenario drives: proposals from a recorded proposer, and
// match hosts that renew and release the committed matches.
type Workload struct {
	// Rate is the total proposals per second (default 40).
	Rate float64 `yaml:"rate" json:"rate"`
	// InFlight caps the proposals awaiting an answer (default 16).
	InFlight int `yaml:"in_flight" json:"in_flight"`
	// MatchSize is the players per match, as the default policy bundle's modes allow
	// them: 2 (duels), 10 (5v5) or any other size >= 3 (raids, one team). 0, the
	// default, is the reference mix: 90% duels, 10% 5v5. How many shards a match
	// spans follows from the mode's per-shard share (always at least two).
	MatchSize int `yaml:"match_size" json:"match_size"`
	// HotShare is the share of proposals that include a hot player, to force
	// PLAYER_LEASED contention (default 0).
	HotShare float64 `yaml:"hot_share" json:"hot_share"`
	// HotPlayers is how many hot players each shard has (default 8).
	HotPlayers int `yaml:"hot_players" json:"hot_players"`
	// MatchTTL is the lease TTL of a committed match (default 5s).
	MatchTTL Duration `yaml:"match_ttl" json:"match_ttl"`
	// RenewEvery is how often a host renews its match (default 1s; 0 = never).
	RenewEvery Duration `yaml:"renew_every" json:"renew_every"`
	// MatchLength is how long after commit a host releases its match (default 3s).
	MatchLength Duration `yaml:"match_length" json:"match_length"`
	// AbandonShare is the share of matches whose host neither renews nor releases, so
	// that their leases must expire (default 0.1).
	AbandonShare float64 `yaml:"abandon_share" json:"abandon_share"`
}

// FaultKind names a fault.
type FaultKind string

// Fault kinds.
const (
	FaultPartition   FaultKind = "partition"    // Groups cut off from each other
	FaultBridge      FaultKind = "bridge"       // Groups[0] and Groups[1] cut off; Bridge sees both
	FaultLoss        FaultKind = "loss"         // Percent of the packets on the Targets' links dropped
	FaultLatency     FaultKind = "latency"      // Latency ± Jitter on the Link between two selectors
	FaultClockSkew   FaultKind = "clock-skew"   // the Targets' clocks jump by Offset
	FaultClockDrift  FaultKind = "clock-drift"  // the Targets' clocks run at Rate
	FaultKill        FaultKind = "kill"         // kill -9 the Targets, restart them after For
	FaultPause       FaultKind = "pause"        // SIGSTOP the Targets, SIGCONT after For
	FaultDuplicate   FaultKind = "duplicate"    // the Targets' transport sends Percent of messages twice
	FaultReorder     FaultKind = "reorder"      // the Targets' transport delays Percent of messages past later ones
	FaultNATSRestart FaultKind = "nats-restart" // kill -9 the NATS server, restart it after For
)

// FaultKinds lists every kind.
var FaultKinds = []FaultKind{FaultPartition, FaultBridge, FaultLoss, FaultLatency, FaultClockSkew,
	FaultClockDrift, FaultKill, FaultPause, FaultDuplicate, FaultReorder, FaultNATSRestart}

// Fault is one entry of the fault schedule. Which fields a kind takes is fixed (see
// Validate); setting one a kind does not take is an error, so a typo cannot pass for a
// fault that silently does less.
//
// Selectors name nodes: "c1".."cN", "s1".."sM", "nats", and the dynamic "leader",
// "follower" (one follower, picked by the run's seed), "followers", "minority"
// (max(1, floor((N-1)/2)) coordinators including the leader),
// "majority-without-leader" (the other coordinators), "coordinators", "shards" and
// "all". The runner resolves the dynamic ones once per fault occurrence, when it
// starts, so that they agree with each other.
type Fault struct {
	Kind FaultKind `yaml:"kind" json:"kind"`
	// At is when the fault starts, from the workload's start.
	At Duration `yaml:"at" json:"at"`
	// For is how long until the fault is healed (restarted, resumed). Required but for
	// clock-skew and clock-drift, where 0 means until the workload ends.
	For Duration `yaml:"for,omitempty" json:"for,omitempty"`
	// Every and Count repeat the fault: Count occurrences, Every apart.
	Every Duration `yaml:"every,omitempty" json:"every,omitempty"`
	Count int      `yaml:"count,omitempty" json:"count,omitempty"`
	// Targets: the nodes of kill, pause, clock-*, duplicate, reorder, and loss (the
	// hosts whose links drop; "all" = every link).
	Targets []string `yaml:"targets,omitempty" json:"targets,omitempty"`
	// Groups: partition cuts each group off from every other group (nodes in no group
	// stay connected to all); bridge takes exactly two.
	Groups [][]string `yaml:"groups,omitempty" json:"groups,omitempty"`
	// Bridge: the node that sees both groups of a bridge fault.
	Bridge string `yaml:"bridge,omitempty" json:"bridge,omitempty"`
	// Percent: loss, duplicate, reorder (0 < Percent <= 100).
	Percent float64 `yaml:"percent,omitempty" json:"percent,omitempty"`
	// Offset: clock-skew's jump (may be negative, e.g. -2h).
	Offset Duration `yaml:"offset,omitempty" json:"offset,omitempty"`
	// Rate: clock-drift's clock rate, e.g. 1.005.
	Rate float64 `yaml:"rate,omitempty" json:"rate,omitempty"`
	// Latency and Jitter: latency on the Link, two selectors.
	Latency Duration `yaml:"latency,omitempty" json:"latency,omitempty"`
	Jitter  Duration `yaml:"jitter,omitempty" json:"jitter,omitempty"`
	Link    []string `yaml:"link,omitempty" json:"link,omitempty"`
}

// Occurrences is how many times the fault is injected: Count, at least 1.
func (f *Fault) Occurrences() int { return max(f.Count, 1) }

// Start is when occurrence k (0-based) starts, from the workload's start.
func (f *Fault) Start(k int) time.Duration {
	return time.Duration(f.At) + time.Duration(k)*time.Duration(f.Every)
}

// End is when the last occurrence is healed, given the workload's duration (a skew
// or drift with For 0 lasts until the workload ends).
func (f *Fault) End(workload time.Duration) time.Duration {
	if f.For <= 0 {
		return workload
	}
	return f.Start(f.Occurrences()-1) + time.Duration(f.For)
}

// Checks are the invariants and liveness bounds a run is judged by.
type Checks struct {
	// Invariants are the ids checked (default every id: LOG and I1..I7).
	Invariants []string `yaml:"invariants" json:"invariants"`
	// ResumeWithin bounds, after each heal of a fault, the time until commits resume
	// (default 3s; 0 disables).
	ResumeWithin Duration `yaml:"resume_within" json:"resume_within"`
	// TerminateWithin bounds the time after the last heal within which every txn
	// terminates (default 10s; 0 disables the bound, not the need to settle).
	TerminateWithin Duration `yaml:"terminate_within" json:"terminate_within"`
	// MinCommitRatio is the floor of committed / uncontended proposals, e.g. 0.99995
	// (0 disables).
	MinCommitRatio float64 `yaml:"min_commit_ratio" json:"min_commit_ratio"`
}

// Expect is what a run's verdict must find.
type Expect struct {
	// Violations are the invariants that MUST be reported, e.g. ["I1", "I3"]; an entry
	// "I1|I3" is satisfied by either, and "I5?" allows I5 without requiring it (see
	// Expectation). Empty means a clean run: no violation at all.
	Violations []string `yaml:"violations" json:"violations,omitempty"`
}
