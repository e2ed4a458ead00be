// Package collect turns what real processes apply into chaos/history records, across
// processes, and reads the final state of every node and shard back for the checkers.
//
// A chaos run starts `coordinator serve` and `shardsvc` as separate processes, so the
// in-memory history.Recorder of the in-process tests cannot reach them. Instead every
// process started with --history-dir appends its events to a JSON-lines file of its
// own (a Sink): a coordinator records every lease change its FSM applies (Observer), a
// shard every effect its ShardHandler applies (RecordingHandler). After the run the
// runner merges the files with ReadDir and fetches each process's final state over its
// admin API (FetchNodeFinal, FetchShardFinal).
//
// # Time
//
// Every event is stamped with At = time.Now().Sub(epoch), where epoch is the run's
// start passed to every process (--history-epoch, Unix nanoseconds). That is the
// machine's real wall clock, NOT the process's clock: processes run on a skewable
// clock (clock.Skewed) that fault injection moves, but all processes of a run
// share one kernel clock, which no fault touches. That kernel clock is the run's
// reference clock, the one the runner stamps client calls with too. (A step of the
// machine's own clock during a run would distort every stamp alike; chaos runs never
// step it.)
//
// # Files
//
// A Sink writes dir/<node>.<start-unix-nanos>.<pid>.jsonl, one JSON object per line,
// each with one write(2) and no buffering, so a kill -9 loses nothing a Sink method
// has returned from. A restarted process opens a new file (a new incarnation); ReadDir
// orders a node's files by their start time, assigns ShardEvent.Seq per shard in
// that order, and skips the torn last line a killed process may leave.
//
// What it must never do: influence the system it records. A Sink write error is kept
// (Sink.Err) and logged by the caller, never returned into the FSM or the protocol,
// and the recording wrappers change no result of the calls they wrap.
package collect
