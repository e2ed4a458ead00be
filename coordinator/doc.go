// Package coordinator is the shardmatch service: the Raft-replicated state machine that
// holds transactions, leases and the shard registry; the leader loop that drives
// two-phase commit, presumes abort after failover, redelivers decisions and expires
// leases; and the API proposers and match hosts call (Propose, Status, Renew, Release).
//
// Raft is the only source of truth. The FSM (fsm.go) is deterministic: it never reads a
// clock, never does I/O, and iterates nothing in map order, so every replica reaches the
// same state from the same log. Everything that needs time or the network (prepare
// deadlines, resends, lease expiry) runs on the leader and enters the log as a command.
//
// Lock order: Node.mu before FSM.mu; the FSM calls its observer and decision hook with
// FSM.mu held, so those must not call back into the FSM or take Node.mu.
package coordinator
