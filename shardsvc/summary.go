package shardsvc

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Summary is the report of a load run: what the driver saw and what the audit found.
// Its JSON form is what `coordinator dev --summary-json` writes.
type Summary struct {
	// DurationS is how long load was offered, in seconds.
	DurationS  float64 `json:"duration_s"`
	TargetRate float64 `json:"target_rate"`
	// Rate is the proposals sent per second; CommitRate the matches committed per second.
	Rate       float64 `json:"rate"`
	CommitRate float64 `json:"commit_rate"`
	Proposed   uint64  `json:"proposed"`
	Committed  uint64  `json:"committed"`
	// Aborted counts aborted proposals by reason; ShardRejections the players'
	// rejection codes in SHARD_REJECTED decisions.
	Aborted         map[string]uint64 `json:"aborted"`
	ShardRejections map[string]uint64 `json:"shard_rejections"`
	Errors          uint64            `json:"errors"`
	Shed            uint64            `json:"shed"`
	Starved         uint64            `json:"starved"`
	Renewed         uint64            `json:"renewed"`
	Released        uint64            `json:"released"`
	// Propose latency, in milliseconds.
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
	MeanMs float64 `json:"mean_ms"`
	// Leader is the coordinator node leading at the end; LeaderKills counts the
	// leaders killed on purpose during the run.
	Leader      string `json:"leader"`
	LeaderKills int    `json:"leader_kills"`
	// Settled is false if the run ended before every transaction finished.
	Settled bool `json:"settled"`
	AuditReport
	Clean     bool   `json:"clean"`
	LastError string `json:"last_error,omitempty"`
}

// NewSummary assembles a Summary from the driver's final stats and the audit.
func NewSummary(s Stats, targetRate float64, audit AuditReport, leader string, leaderKills int, settled bool) Summary {
	sum := Summary{DurationS: s.Elapsed.Seconds(), TargetRate: targetRate, Proposed: s.Proposed, Committed: s.Committed,
		Aborted: s.Aborted, ShardRejections: s.Rejections, Errors: s.Errors, Shed: s.Shed, Starved: s.Starved,
		Renewed: s.Renewed, Released: s.Released, Leader: leader, LeaderKills: leaderKills, Settled: settled,
		AuditReport: audit, Clean: audit.Clean(), LastError: s.LastError}
	if sum.Aborted == nil {
		sum.Aborted = map[string]uint64{}
	}
	if sum.ShardRejections == nil {
		sum.ShardRejections = map[string]uint64{}
	}
	if s.Elapsed > 0 {
		sum.Rate = round2(float64(s.Proposed) / s.Elapsed.Seconds())
		sum.CommitRate = round2(float64(s.Committed) / s.Elapsed.Seconds())
	}
	if h := s.Latency; h != nil {
		sum.P50Ms, sum.P90Ms, sum.P99Ms = ms(h.Quantile(0.5)), ms(h.Quantile(0.9)), ms(h.Quantile(0.99))
		sum.MaxMs, sum.MeanMs = ms(h.Max()), ms(h.Mean())
	}
	sum.DurationS = round2(sum.DurationS)
	return sum
}

func ms(d time.Duration) float64 { return round2(float64(d) / float64(time.Millisecond)) }

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// WriteText prints the summary for people.
func (s Summary) WriteText(w io.Writer) {
	fmt.Fprintf(w, "load:     %.1fs at %.1f proposals/s (target %g), %d proposed\n", s.DurationS, s.Rate, s.TargetRate, s.Proposed)
	fmt.Fprintf(w, "outcomes: %d committed (%.1f/s), %d aborted%s, %d unknown\n", s.Committed, s.CommitRate,
		sumCounts(s.Aborted), bracket(s.Aborted), s.Errors)
	if len(s.ShardRejections) > 0 {
		fmt.Fprintf(w, "          shard rejections by player:%s\n", bracket(s.ShardRejections))
	}
	if s.Shed+s.Starved > 0 {
		fmt.Fprintf(w, "          not sent: %d shed (in-flight limit), %d starved (no idle players)\n", s.Shed, s.Starved)
	}
	fmt.Fprintf(w, "latency:  p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms\n", s.P50Ms, s.P90Ms, s.P99Ms, s.MaxMs)
	fmt.Fprintf(w, "hosting:  %d renewals, %d releases\n", s.Renewed, s.Released)
	fmt.Fprintf(w, "leader:   %s (%d killed on purpose)\n", s.Leader, s.LeaderKills)
	verdict := "CLEAN"
	if !s.Clean {
		verdict = "VIOLATIONS FOUND"
	}
	settled := ""
	if !s.Settled {
		settled = " (did not settle in time)"
	}
	fmt.Fprintf(w, "audit:    %d shards, %d nodes, %d txns: atomicity_violations %d, double_booked %d, in_doubt %d: %s%s\n",
		s.AuditReport.Shards, s.Nodes, s.Txns, s.AtomicityViolations, s.DoubleBooked, s.InDoubt, verdict, settled)
	for _, p := range s.Problems {
		fmt.Fprintf(w, "          %s\n", p)
	}
	if s.LastError != "" && (s.Errors > 0 || !s.Clean) {
		fmt.Fprintf(w, "last error: %s\n", s.LastError)
	}
}

func sumCounts(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// bracket formats counts as " (A 3, B 1)", largest first; "" when empty.
func bracket(m map[string]uint64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
