package natstransport

import (
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// HeaderTerm carries the sending coordinator's Raft term (decimal) on every command,
// so that tooling and non-Go shards can see it without decoding the payload.
const HeaderTerm = "Sm-Term"

// Phase names, as they appear in Nats-Msg-Id.
const (
	PhasePrepare = "prepare" // a Prepare
	PhaseCommit  = "commit"  // a Commit
	PhaseAbort   = "abort"   // an Abort
)

// MsgID is the JetStream dedupe id of a command: <txid>/<phase>/<shard>.
func MsgID(txid, phase, shard string) string { return txid + "/" + phase + "/" + shard }

// cmdInfo is what the transports need to know of a command without caring which kind
// it is. phase is "" for a command with none of Prepare, Commit, Abort.
type cmdInfo struct {
	txid, shard, phase string
	term               uint64
}

func describe(cmd *smv1.ShardCommand) cmdInfo {
	switch {
	case cmd.GetPrepare() != nil:
		m := cmd.GetPrepare()
		return cmdInfo{m.GetTxid(), m.GetShardId(), PhasePrepare, m.GetTerm()}
	case cmd.GetCommit() != nil:
		m := cmd.GetCommit()
		return cmdInfo{m.GetTxid(), m.GetShardId(), PhaseCommit, m.GetTerm()}
	case cmd.GetAbort() != nil:
		m := cmd.GetAbort()
		return cmdInfo{m.GetTxid(), m.GetShardId(), PhaseAbort, m.GetTerm()}
	}
	return cmdInfo{}
}
