package coordinator

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Memory and recovery at scale (issue 13): the FSM must hold 1,000,000 active leases
// (500,000 two-player matches) in at most 512 MiB RSS, and a snapshot of that state
// must persist and restore within 2 s. BenchmarkFSMMemory measures the first half,
// BenchmarkSnapshotPersist and BenchmarkSnapshotRestore (snapshot_bench_test.go) the
// second, BenchmarkFSMMemoryFinished what retained finished transactions cost. They
// build the state the way Raft applies it, so run them once, each memory benchmark in
// a process of its own (RSS is the process's):
//
//	go test -c -o fsm.test ./coordinator/ && cd coordinator
//	../fsm.test -test.run '^$' -test.bench 'FSMMemory$' -test.benchtime 1x
//	../fsm.test -test.run '^$' -test.bench 'FSMMemoryFinished$' -test.benchtime 1x
//	../fsm.test -test.run '^$' -test.bench 'SnapshotPersist$|SnapshotRestore$' -test.benchtime 1x
//
// SHARDMATCH_MEM_MATCHES sets how many matches they build (default 500000);
// SHARDMATCH_MEM_PROFILE=file makes the memory benchmarks write a heap profile of the
// built FSM there (with -test.memprofilerate=1 for every allocation).

// memMatches is the number of active matches the scale benchmarks build.
func memMatches(tb testing.TB) int {
	if s := os.Getenv("SHARDMATCH_MEM_MATCHES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			tb.Fatalf("SHARDMATCH_MEM_MATCHES=%q", s)
		}
		return n
	}
	return 500_000
}

// memEntryCmds is how many commands one built log entry carries (Config.MaxBatch).
const memEntryCmds = 512

// memShards are the two shards every built match spans.
var memShards = []string{"shard-eu-0", "shard-eu-1"}

// memProposal is match k as cmd/coordinator's bench proposes it: a 1v1 between fresh
// players of two shards, 12-character proposal id, 8-character player ids, player
// attributes and a region in the metadata.
func memProposal(k int) *smv1.Proposal {
	id := strconv.FormatUint(uint64(k)+36*36*36*36*36, 36) // 6 characters
	team := func(side string, shard int) *smv1.Team {
		return &smv1.Team{Players: []*smv1.Player{{PlayerId: "p" + id + side, ShardId: memShards[shard],
			Attributes: &smv1.PlayerAttributes{Mmr: 1500, Region: "eu-west"}}}}
	}
	return &smv1.Proposal{ProposalId: "bench-" + id, Mode: "1v1", MatchTtlMs: time.Hour.Milliseconds(),
		Metadata: map[string]string{"region": "eu-west"}, Teams: []*smv1.Team{team("a", 0), team("b", 1)}}
}

// memBuilder applies log entries to an FSM as Raft does (ApplyBatch, many entries at
// a time), so the FSM's memory is what a node's would be.
type memBuilder struct {
	tb    testing.TB
	f     *FSM
	index uint64
	logs  []*raft.Log
}

func (m *memBuilder) entry(cmds []*smv1.Command) uint64 {
	data, err := EncodeBatch(cmds)
	if err != nil {
		m.tb.Fatal(err)
	}
	m.index++
	m.logs = append(m.logs, &raft.Log{Index: m.index, Term: 1, Type: raft.LogCommand, Data: data})
	return m.index
}

// flush applies the pending entries in one ApplyBatch and fails on any error.
func (m *memBuilder) flush() {
	for _, out := range m.f.ApplyBatch(m.logs) {
		res, ok := out.([]CommandResult)
		if !ok {
			m.tb.Fatalf("apply: %v", out)
		}
		for _, r := range res {
			if r.Err != nil {
				m.tb.Fatal(r.Err)
			}
		}
	}
	m.logs = m.logs[:0]
}

// buildMemFSM returns an FSM holding n committed, acknowledged, live 1v1 matches: 2n
// ACTIVE leases and n DONE transactions. Entries are generated as they are applied,
// so little garbage accumulates beside the FSM.
func buildMemFSM(tb testing.TB, n int) *FSM { return buildMemFSMEnded(tb, n, false) }

// buildMemFSMEnded is buildMemFSM, and with ended the matches are then released: n
// finished transactions, retained until Forget, and no lease.
func buildMemFSMEnded(tb testing.TB, n int, ended bool) *FSM {
	m := &memBuilder{tb: tb, f: NewFSM(nil, nil)}
	var regs []*smv1.Command
	for _, s := range memShards {
		regs = append(regs, &smv1.Command{Op: &smv1.Command_RegisterShard{RegisterShard: &smv1.RegisterShard{
			Shard: &smv1.ShardInfo{ShardId: s, Region: "eu-west", Capacity: 100_000, ProtocolVersion: 1}}}})
	}
	m.entry(regs)
	m.flush()
	wall := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for k := 0; k < n; k += memEntryCmds {
		c := min(memEntryCmds, n-k)
		cmds := make([]*smv1.Command, c)
		for j := range cmds {
			cmds[j] = &smv1.Command{Op: &smv1.Command_Begin{Begin: &smv1.Begin{Proposal: memProposal(k + j),
				Verdict: &smv1.PolicyVerdict{Allow: true}, WallUnixMs: wall + int64(k+j)}}}
		}
		idx := m.entry(cmds)
		txids := make([]string, c)
		for j := range txids {
			txids[j] = TxID(idx, j)
			cmds[j] = &smv1.Command{Op: &smv1.Command_Decide{Decide: &smv1.Decide{Txid: txids[j],
				Outcome: smv1.Outcome_OUTCOME_COMMITTED, WallUnixMs: wall + int64(k+j) + 40}}}
		}
		m.entry(cmds)
		for half := range 2 {
			acks := make([]*smv1.Command, 0, c)
			for _, id := range txids {
				acks = append(acks, &smv1.Command{Op: &smv1.Command_Acked{Acked: &smv1.Acked{Txid: id, ShardId: memShards[half]}}})
			}
			m.entry(acks)
		}
		if ended {
			for j, id := range txids {
				cmds[j] = &smv1.Command{Op: &smv1.Command_Release{Release: &smv1.Release{Txid: id}}}
			}
			m.entry(cmds)
		}
		if len(m.logs) >= 64 {
			m.flush()
		}
	}
	m.flush()
	leases := 2 * n
	if ended {
		leases = 0
	}
	if c := m.f.Counts(); c.Txns != n || c.Leases != leases {
		tb.Fatalf("built %+v, want %d txns and %d leases", c, n, leases)
	}
	return m.f
}

// BenchmarkFSMMemory builds the FSM of memMatches active matches and reports what it
// holds: heap-B/lease is the live heap after a full GC divided by the leases (the
// number to keep ≤ 512 MiB / 1 M), heap-MiB the live heap, rss-MiB the process RSS
// after the garbage is returned to the OS and peak-rss-MiB the high-water mark while
// building (the binary, the test framework and the entries being applied included).
func BenchmarkFSMMemory(b *testing.B) { benchFSMMemory(b, false) }

// BenchmarkFSMMemoryFinished is BenchmarkFSMMemory with every match then released:
// heap-B/txn is what one finished transaction costs while Config.Retention keeps it.
func BenchmarkFSMMemoryFinished(b *testing.B) { benchFSMMemory(b, true) }

func benchFSMMemory(b *testing.B, ended bool) {
	n := memMatches(b)
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		f := buildMemFSMEnded(b, n, ended)
		b.StopTimer()
		debug.FreeOSMemory()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		live := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		if ended {
			b.ReportMetric(live/float64(n), "heap-B/txn")
		} else {
			b.ReportMetric(live/float64(2*n), "heap-B/lease")
		}
		b.ReportMetric(live/(1<<20), "heap-MiB")
		b.ReportMetric(float64(procStatusKB(b, "VmRSS"))/1024, "rss-MiB")
		b.ReportMetric(float64(procStatusKB(b, "VmHWM"))/1024, "peak-rss-MiB")
		if path := os.Getenv("SHARDMATCH_MEM_PROFILE"); path != "" {
			out, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.WriteHeapProfile(out); err != nil {
				b.Fatal(err)
			}
			_ = out.Close()
		}
		runtime.KeepAlive(f)
		b.StartTimer()
	}
}

// procStatusKB reads a "kB" field of /proc/self/status (0 where there is none).
func procStatusKB(tb testing.TB, field string) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok || string(k) != field {
			continue
		}
		v = bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			tb.Fatalf("/proc/self/status %s: %q", field, v)
		}
		return n
	}
	return 0
}

// memFSM builds the FSM of memMatches matches once for the snapshot benchmarks (again
// if one dropped it).
func memFSM(tb testing.TB) *FSM {
	memMu.Lock()
	defer memMu.Unlock()
	if memShared == nil {
		memShared = buildMemFSM(tb, memMatches(tb))
	}
	return memShared
}

var (
	memMu     sync.Mutex
	memShared *FSM
)
