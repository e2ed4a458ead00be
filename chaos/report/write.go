package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Files Write creates in the report directory.
const (
	FileJSON     = "report.json"
	FileMarkdown = "report.md"
	FileSVG      = "timeline.svg"
	FileHistory  = "history.json"
)

// maxBuckets bounds the timeline's length; longer runs get wider buckets.
const maxBuckets = 120

// Document is the content of report.json.
type Document struct {
	Summary  Summary          `json:"summary"`
	BucketNS time.Duration    `json:"bucket_ns"`
	Timeline []Sample         `json:"timeline"`
	Stats    map[string]int   `json:"stats,omitempty"` // the history check's counts
	Liveness []LivenessResult `json:"liveness,omitempty"`
}

// BucketFor is the timeline bucket Write uses for a history spanning horizon: one
// second, or wider so that there are at most 120 buckets.
func BucketFor(horizon time.Duration) time.Duration {
	b := time.Second
	if horizon > maxBuckets*b {
		b = ((horizon/maxBuckets + time.Second - 1) / time.Second) * time.Second
	}
	return b
}

// Write summarizes r and writes report.json, report.md, timeline.svg and
// history.json into dir (created if missing). It returns the summary.
func Write(dir string, r *Run) (Summary, error) {
	if r == nil || r.History == nil {
		return Summary{}, ErrNoHistory
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Summary{}, fmt.Errorf("report: %w", err)
	}
	s := Summarize(r)
	bucket := BucketFor(historyHorizon(r.History))
	tl := Timeline(r.History, bucket)

	doc, err := json.MarshalIndent(Document{Summary: s, BucketNS: bucket, Timeline: tl, Stats: r.Check.Stats,
		Liveness: r.Liveness}, "", " ")
	if err != nil {
		return s, fmt.Errorf("report: encode %s: %w", FileJSON, err)
	}
	var hist bytes.Buffer
	if err := r.History.WriteJSON(&hist); err != nil {
		return s, fmt.Errorf("report: encode %s: %w", FileHistory, err)
	}
	title := fmt.Sprintf("%s, seed %d: %s", s.Scenario, s.Seed, s.Verdict)
	for name, data := range map[string][]byte{
		FileJSON:     append(doc, '\n'),
		FileMarkdown: []byte(Markdown(r, s)),
		FileSVG:      SVG(title, tl, bucket, r.Faults, r.History, s.Violations),
		FileHistory:  hist.Bytes(),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return s, fmt.Errorf("report: %w", err)
		}
	}
	return s, nil
}
