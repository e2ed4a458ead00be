package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/shardmatch/shardmatch/chaos/history"
)

// Chart geometry, in SVG user units.
const (
	svgWidth      = 960
	svgPlotTop    = 64
	svgPlotHeight = 280
	svgLeft       = 64
	svgRight      = svgWidth - 72
	svgLineHeight = 16
	svgListLimit  = 10 // violations without a time listed under the chart
)

// Colours of the series.
const (
	colCommits = "#2a9d8f"
	colAborts  = "#e76f51"
	colP99     = "#264653"
	colFault   = "#f4a261"
	colViol    = "#d62828"
)

// SVG draws the timeline: commits/s and aborts/s on the left axis, p99 latency on
// the right axis, fault windows shaded and labelled, and violations as red ticks at
// the time of their transaction's last shard effect (or the time its proposal
// returned); violations with no transaction to place them by are listed below.
func SVG(title string, tl []Sample, bucket time.Duration, faults []FaultWindow, h *history.History, vs []history.Violation) []byte {
	if bucket <= 0 {
		bucket = time.Second
	}
	horizon := time.Duration(len(tl)) * bucket
	for _, w := range faults {
		horizon = max(horizon, w.Start, w.End)
	}
	horizon = max(horizon, time.Second)
	placed, unplaced := placeViolations(h, vs)

	var rateMax, latMax float64
	for _, s := range tl {
		rateMax = max(rateMax, float64(s.Commits)/bucket.Seconds(), float64(s.Aborts)/bucket.Seconds())
		latMax = max(latMax, float64(s.P99)/float64(time.Millisecond))
	}
	rateMax, latMax = niceCeil(max(rateMax, 1)), niceCeil(max(latMax, 1))

	listed := min(len(unplaced), svgListLimit)
	extra := listed
	if len(unplaced) > listed {
		extra++
	}
	height := svgPlotTop + svgPlotHeight + 64 + extra*svgLineHeight
	bottom := float64(svgPlotTop + svgPlotHeight)
	x := func(t time.Duration) float64 {
		return svgLeft + float64(t)/float64(horizon)*float64(svgRight-svgLeft)
	}
	yRate := func(v float64) float64 { return bottom - v/rateMax*svgPlotHeight }
	yLat := func(v float64) float64 { return bottom - v/latMax*svgPlotHeight }

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", svgWidth, height)
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="14" font-weight="bold">%s</text>`+"\n", svgLeft, esc(title))

	// Fault windows, shaded, with labels staggered over three rows above the plot.
	b.WriteString(`<g class="faults">` + "\n")
	for i, w := range faults {
		x0, x1 := x(w.Start), x(w.end(horizon))
		label := w.Kind
		if w.Targets != "" {
			label += " " + w.Targets
		}
		fmt.Fprintf(&b, `<rect class="fault" x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" fill-opacity="0.25"><title>%s</title></rect>`+"\n",
			x0, svgPlotTop, max(x1-x0, 1), svgPlotHeight, colFault, esc(fmt.Sprintf("%s: %s to %s", label, secs(w.Start), secs(w.end(horizon)))))
		fmt.Fprintf(&b, `<text class="fault-label" x="%.1f" y="%d" fill="#9c4a1a">%s</text>`+"\n", x0+2, 30+(i%3)*11, esc(truncate(label, 40)))
	}
	b.WriteString("</g>\n")

	// Axes, grid and ticks.
	fmt.Fprintf(&b, `<g stroke="#ccc" stroke-width="0.5">`)
	for i := 0; i <= 5; i++ {
		y := bottom - float64(i)/5*svgPlotHeight
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`, svgLeft, y, svgRight, y)
	}
	b.WriteString("</g>\n")
	fmt.Fprintf(&b, `<g stroke="black"><line x1="%d" y1="%d" x2="%d" y2="%.0f"/><line x1="%d" y1="%.0f" x2="%d" y2="%.0f"/><line x1="%d" y1="%d" x2="%d" y2="%.0f"/></g>`+"\n",
		svgLeft, svgPlotTop, svgLeft, bottom, svgLeft, bottom, svgRight, bottom, svgRight, svgPlotTop, svgRight, bottom)
	for i := 0; i <= 5; i++ {
		y := bottom - float64(i)/5*svgPlotHeight
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`, svgLeft-4, y+4, num(rateMax*float64(i)/5))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f">%s</text>`, svgRight+4, y+4, num(latMax*float64(i)/5))
	}
	step := niceCeil(horizon.Seconds() / 10)
	for t := 0.0; t <= horizon.Seconds()+1e-9; t += step {
		xx := x(time.Duration(t * float64(time.Second)))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="black"/><text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`,
			xx, bottom, xx, bottom+4, xx, bottom+16, num(t)+"s")
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, `<text x="14" y="%.0f" transform="rotate(-90 14 %.0f)" text-anchor="middle">matches/s</text>`+"\n",
		bottom-svgPlotHeight/2, bottom-svgPlotHeight/2)
	fmt.Fprintf(&b, `<text x="%d" y="%.0f" transform="rotate(90 %d %.0f)" text-anchor="middle">p99 latency (ms)</text>`+"\n",
		svgWidth-14, bottom-svgPlotHeight/2, svgWidth-14, bottom-svgPlotHeight/2)

	// Series: each sample at its bucket's middle.
	series := func(class, colour, dash string, y func(Sample) float64) {
		if len(tl) == 0 {
			return
		}
		pts := make([]string, len(tl))
		for i, s := range tl {
			pts[i] = fmt.Sprintf("%.1f,%.1f", x(s.At+bucket/2), y(s))
		}
		fmt.Fprintf(&b, `<polyline class="%s" fill="none" stroke="%s" stroke-width="1.5"%s points="%s"/>`+"\n",
			class, colour, dash, strings.Join(pts, " "))
	}
	series("commits", colCommits, "", func(s Sample) float64 { return yRate(float64(s.Commits) / bucket.Seconds()) })
	series("aborts", colAborts, "", func(s Sample) float64 { return yRate(float64(s.Aborts) / bucket.Seconds()) })
	series("p99", colP99, ` stroke-dasharray="4 3"`, func(s Sample) float64 { return yLat(float64(s.P99) / float64(time.Millisecond)) })

	// Violations placed in time.
	b.WriteString(`<g class="violations">` + "\n")
	for _, p := range placed {
		xx := x(min(p.at, horizon))
		fmt.Fprintf(&b, `<line class="violation" x1="%.1f" y1="%d" x2="%.1f" y2="%.0f" stroke="%s" stroke-width="1.5" stroke-opacity="0.7"><title>%s</title></line>`+"\n",
			xx, svgPlotTop-6, xx, bottom, colViol, esc(fmt.Sprintf("≈%s %s", secs(p.at), p.v.String())))
	}
	b.WriteString("</g>\n")

	// Legend and the violations that have no time.
	ly := int(bottom) + 34
	legend := []struct{ colour, dash, label string }{{colCommits, "", "commits/s"}, {colAborts, "", "aborts/s"},
		{colP99, "4 3", "p99 latency (right axis)"}, {colFault, "", "fault window"}, {colViol, "", "violation"}}
	lx := svgLeft
	for _, l := range legend {
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3" stroke-dasharray="%s"/><text x="%d" y="%d">%s</text>`,
			lx, ly-4, lx+18, ly-4, l.colour, l.dash, lx+22, ly, esc(l.label))
		lx += 30 + 7*len(l.label)
	}
	b.WriteString("\n")
	for i := 0; i < listed; i++ {
		fmt.Fprintf(&b, `<text class="violation-listed" x="%d" y="%d" fill="%s">%s</text>`+"\n",
			svgLeft, ly+(i+1)*svgLineHeight, colViol, esc(truncate(unplaced[i].String(), 140)))
	}
	if len(unplaced) > listed {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">… and %d more violations without a time (see report.md)</text>`+"\n",
			svgLeft, ly+(listed+1)*svgLineHeight, colViol, len(unplaced)-listed)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

type placedViolation struct {
	v  history.Violation
	at time.Duration
}

// placeViolations gives each violation with a TxID the time of that txn's last shard
// effect, or else the time its proposal returned; the others cannot be placed.
func placeViolations(h *history.History, vs []history.Violation) (placed []placedViolation, unplaced []history.Violation) {
	at := map[string]time.Duration{}
	if h != nil {
		for _, op := range h.Ops {
			if op.TxID != "" && op.Kind == history.OpPropose && op.Returned {
				at[op.TxID] = max(at[op.TxID], op.Return)
			}
		}
		shard := map[string]time.Duration{}
		for _, ev := range h.ShardEvents {
			shard[ev.TxID] = max(shard[ev.TxID], ev.At)
		}
		for tx, t := range shard {
			at[tx] = t
		}
	}
	for _, v := range vs {
		if t, ok := at[v.TxID]; ok && v.TxID != "" {
			placed = append(placed, placedViolation{v: v, at: t})
		} else {
			unplaced = append(unplaced, v)
		}
	}
	return placed, unplaced
}

// niceCeil rounds v > 0 up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// num renders an axis value without needless decimals.
func num(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2g", v)
}

// esc escapes text for XML.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
