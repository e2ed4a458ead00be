package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/shardmatch/shardmatch/internal/telemetry/telemetrytest"
)

// BenchmarkMatchTimeline runs b.N matches one at a time with every span recorded and
// logs where a match's time goes: for each span name, the median offset of its start
// and end from the start of the match, and its median duration. It is the tool for the
// latency-at-1-in-flight target (run with -test.v to see the table).
func BenchmarkMatchTimeline(b *testing.B) {
	rec := telemetrytest.Record(b)
	st, err := startBenchStack(context.Background(), benchOptions{nodes: 3, shards: 3, log: "off", policy: true}, false)
	if err != nil {
		b.Fatal(err)
	}
	defer st.close()
	tr := otel.Tracer("bench")
	for range 20 { // warm up before the timer
		if err := st.proposeFresh(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	type root struct {
		id    trace.TraceID
		start time.Time
	}
	var roots []root
	b.ResetTimer()
	for range b.N {
		ctx, span := tr.Start(context.Background(), "bench.match")
		start := time.Now()
		if err := st.proposeFresh(ctx); err != nil {
			b.Fatal(err)
		}
		span.End()
		roots = append(roots, root{span.SpanContext().TraceID(), start})
	}
	b.StopTimer()
	time.Sleep(200 * time.Millisecond) // let acks and late spans end; reporting only
	byTrace := map[trace.TraceID][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		byTrace[s.SpanContext().TraceID()] = append(byTrace[s.SpanContext().TraceID()], s)
	}
	type acc struct{ starts, ends, durs []time.Duration }
	names := map[string]*acc{}
	for _, r := range roots {
		seen := map[string]bool{}
		for _, s := range byTrace[r.id] {
			n := s.Name()
			if seen[n] { // the first of a name per match (resends, the second shard)
				continue
			}
			seen[n] = true
			a := names[n]
			if a == nil {
				a = &acc{}
				names[n] = a
			}
			a.starts = append(a.starts, s.StartTime().Sub(r.start))
			a.ends = append(a.ends, s.EndTime().Sub(r.start))
			a.durs = append(a.durs, s.EndTime().Sub(s.StartTime()))
		}
	}
	med := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}
	type row struct {
		name            string
		n               int
		start, end, dur time.Duration
	}
	var rows []row
	for n, a := range names {
		rows = append(rows, row{n, len(a.starts), med(a.starts), med(a.ends), med(a.durs)})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].start < rows[j].start })
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%-44s %6s %10s %10s %10s\n", "span (first of its name per match)", "n", "start", "end", "duration")
	for _, r := range rows {
		fmt.Fprintf(&sb, "%-44s %6d %10s %10s %10s\n", r.name, r.n, r.start.Round(time.Microsecond),
			r.end.Round(time.Microsecond), r.dur.Round(time.Microsecond))
	}
	b.Log(sb.String())
}
