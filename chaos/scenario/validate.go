package scenario

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/shardmatch/shardmatch/chaos/history"
)

// Problem is one broken rule, at a field path such as "faults[2].groups".
type Problem struct {
	Field string `json:"field"`
	Msg   string `json:"msg"`
}

// String is "field: message".
func (p Problem) String() string { return p.Field + ": " + p.Msg }

// ValidationError lists every problem Validate found. It matches ErrInvalid.
type ValidationError struct {
	Scenario string
	Problems []Problem
}

// Error names the scenario and lists one problem a line.
func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %s: %d problem(s)", ErrInvalid, e.Scenario, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Has reports whether some problem is at field (exact path) — for tests and tools.
func (e *ValidationError) Has(field string) bool {
	return slices.ContainsFunc(e.Problems, func(p Problem) bool { return p.Field == field })
}

type validator struct{ problems []Problem }

func (v *validator) add(field, format string, args ...any) {
	v.problems = append(v.problems, Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,48}[a-z0-9])?$`)

// Validate checks every rule and returns a *ValidationError listing every problem,
// or nil. It does not fill in defaults (Parse does, via New).
func (s *Scenario) Validate() error {
	v := &validator{}
	if !nameRE.MatchString(s.Name) {
		v.add("name", "%q must be 1-50 lower-case letters, digits and inner dashes (it names report dirs and Kubernetes objects)", s.Name)
	}
	if s.Duration <= 0 {
		v.add("duration", "must be > 0 (the workload's running time), got %s", s.Duration)
	}
	if s.Settle < 0 {
		v.add("settle", "must be >= 0, got %s", s.Settle)
	}
	v.topology(&s.Topology)
	v.workload(&s.Workload, &s.Topology)
	v.checks(s)
	if s.Unsafe != "" && !slices.Contains(UnsafeModes, s.Unsafe) {
		v.add("unsafe", "%q is not an unsafe mode (%s)", s.Unsafe, strings.Join(UnsafeModes, ", "))
	}
	if s.Unsafe != "" && len(s.Expect.Violations) == 0 {
		v.add("expect.violations", "a scenario with unsafe: %s must expect the violations it causes, or it proves nothing", s.Unsafe)
	}
	if s.Topology.Coordinators >= 1 && s.Topology.Coordinators <= maxCoordinators && s.Topology.Shards >= 1 {
		worlds := s.Topology.Worlds()
		for i := range s.Faults {
			v.fault(s, i, worlds)
		}
	}
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Scenario: s.Name, Problems: v.problems}
}

func (v *validator) topology(t *Topology) {
	if t.Coordinators < 1 || t.Coordinators > maxCoordinators {
		v.add("topology.coordinators", "must be 1..%d, got %d", maxCoordinators, t.Coordinators)
	}
	if t.Shards < 1 {
		v.add("topology.shards", "must be >= 1, got %d", t.Shards)
	}
	if t.PlayersPerShard < 1 {
		v.add("topology.players_per_shard", "must be >= 1, got %d", t.PlayersPerShard)
	}
	if t.Rho < 0 || t.Rho >= 0.5 || math.IsNaN(t.Rho) {
		v.add("topology.rho", "must be in [0, 0.5), got %g", t.Rho)
	}
	if t.PrepareTimeout <= 0 {
		v.add("topology.prepare_timeout", "must be > 0, got %s", t.PrepareTimeout)
	}
}

func (v *validator) workload(w *Workload, t *Topology) {
	if !(w.Rate > 0) || math.IsInf(w.Rate, 0) {
		v.add("workload.rate", "must be > 0 proposals/s, got %g", w.Rate)
	}
	if w.InFlight < 1 {
		v.add("workload.in_flight", "must be >= 1, got %d", w.InFlight)
	}
	if w.MatchSize < 0 || w.MatchSize == 1 {
		v.add("workload.match_size", "must be 0 (the reference mix) or >= 2 players, got %d", w.MatchSize)
	}
	if t.PlayersPerShard >= 1 && t.Shards >= 1 && w.MatchSize > t.PlayersPerShard*t.Shards {
		v.add("workload.match_size", "%d players cannot come from %d shard(s) of %d players", w.MatchSize, t.Shards, t.PlayersPerShard)
	}
	share := func(field string, x float64) {
		if !(x >= 0 && x <= 1) {
			v.add(field, "must be a share in [0, 1], got %g", x)
		}
	}
	share("workload.hot_share", w.HotShare)
	share("workload.abandon_share", w.AbandonShare)
	if w.HotShare > 0 && (w.HotPlayers < 1 || w.HotPlayers > t.PlayersPerShard) {
		v.add("workload.hot_players", "must be 1..players_per_shard (%d) when hot_share > 0, got %d", t.PlayersPerShard, w.HotPlayers)
	}
	if w.MatchTTL <= 0 {
		v.add("workload.match_ttl", "must be > 0, got %s", w.MatchTTL)
	}
	if w.RenewEvery < 0 {
		v.add("workload.renew_every", "must be >= 0 (0 = never renew), got %s", w.RenewEvery)
	}
	if limit := time.Duration(float64(w.MatchTTL) * (1 - t.Rho)); w.RenewEvery > 0 && w.MatchTTL > 0 && w.RenewEvery.D() >= limit {
		v.add("workload.renew_every", "%s must be shorter than match_ttl·(1−rho) = %s, or leases may expire between renewals",
			w.RenewEvery, limit.Round(time.Millisecond))
	}
	if w.MatchLength < 0 {
		v.add("workload.match_length", "must be >= 0, got %s", w.MatchLength)
	}
}

func (v *validator) checks(s *Scenario) {
	c := &s.Checks
	if len(c.Invariants) == 0 {
		v.add("checks.invariants", "must name at least one invariant (%s)", strings.Join(history.Invariants, ", "))
	}
	for i, id := range c.Invariants {
		if !slices.Contains(history.Invariants, id) {
			v.add(fmt.Sprintf("checks.invariants[%d]", i), "%q is not an invariant (%s)", id, strings.Join(history.Invariants, ", "))
		} else if slices.Index(c.Invariants, id) != i {
			v.add(fmt.Sprintf("checks.invariants[%d]", i), "%s is listed twice", id)
		}
	}
	if c.ResumeWithin < 0 {
		v.add("checks.resume_within", "must be >= 0 (0 disables), got %s", c.ResumeWithin)
	}
	if c.TerminateWithin < 0 {
		v.add("checks.terminate_within", "must be >= 0 (0 disables), got %s", c.TerminateWithin)
	}
	if c.TerminateWithin > 0 && s.Settle >= 0 && s.Settle < c.TerminateWithin {
		v.add("settle", "%s is shorter than checks.terminate_within %s: the run would stop waiting before the bound it checks",
			s.Settle, c.TerminateWithin)
	}
	if !(c.MinCommitRatio >= 0 && c.MinCommitRatio <= 1) {
		v.add("checks.min_commit_ratio", "must be in [0, 1] (0 disables), got %g", c.MinCommitRatio)
	}
	required := false
	for i, entry := range s.Expect.Violations {
		field := fmt.Sprintf("expect.violations[%d]", i)
		e, err := ParseExpectation(entry)
		if err != nil {
			v.add(field, "%v", err)
			continue
		}
		required = required || !e.Optional
		for _, id := range e.AnyOf {
			if len(c.Invariants) > 0 && !slices.Contains(c.Invariants, id) {
				v.add(field, "%s is expected but not in checks.invariants", id)
			}
		}
	}
	if len(s.Expect.Violations) > 0 && !required {
		v.add("expect.violations", "every entry is optional: require at least one, or expect none")
	}
}

// field kinds a Fault may set, for the per-kind allowed sets.
const (
	fTargets = "targets"
	fGroups  = "groups"
	fBridge  = "bridge"
	fPercent = "percent"
	fOffset  = "offset"
	fRate    = "rate"
	fLatency = "latency"
	fJitter  = "jitter"
	fLink    = "link"
)

// kindRule is what one fault kind takes.
type kindRule struct {
	fields      []string
	forOptional bool // clock faults: for 0 = until the workload ends
}

var kindRules = map[FaultKind]kindRule{
	FaultPartition:   {fields: []string{fGroups}},
	FaultBridge:      {fields: []string{fGroups, fBridge}},
	FaultLoss:        {fields: []string{fTargets, fPercent}},
	FaultLatency:     {fields: []string{fLink, fLatency, fJitter}},
	FaultClockSkew:   {fields: []string{fTargets, fOffset}, forOptional: true},
	FaultClockDrift:  {fields: []string{fTargets, fRate}, forOptional: true},
	FaultKill:        {fields: []string{fTargets}},
	FaultPause:       {fields: []string{fTargets}},
	FaultDuplicate:   {fields: []string{fTargets, fPercent}},
	FaultReorder:     {fields: []string{fTargets, fPercent}},
	FaultNATSRestart: {},
}

// setFields lists the kind-specific fields f sets.
func (f *Fault) setFields() []string {
	var out []string
	for _, x := range []struct {
		name string
		set  bool
	}{{fTargets, len(f.Targets) > 0}, {fGroups, len(f.Groups) > 0}, {fBridge, f.Bridge != ""},
		{fPercent, f.Percent != 0}, {fOffset, f.Offset != 0}, {fRate, f.Rate != 0},
		{fLatency, f.Latency != 0}, {fJitter, f.Jitter != 0}, {fLink, len(f.Link) > 0}} {
		if x.set {
			out = append(out, x.name)
		}
	}
	return out
}

func (v *validator) fault(s *Scenario, i int, worlds []World) {
	f := &s.Faults[i]
	p := fmt.Sprintf("faults[%d]", i)
	rule, ok := kindRules[f.Kind]
	if !ok {
		kinds := make([]string, len(FaultKinds))
		for k, fk := range FaultKinds {
			kinds[k] = string(fk)
		}
		v.add(p+".kind", "%q is not a fault kind (%s)", f.Kind, strings.Join(kinds, ", "))
		return
	}
	for _, name := range f.setFields() {
		if !slices.Contains(rule.fields, name) {
			v.add(p+"."+name, "a %s fault does not take %s (it takes %s)", f.Kind, name, takes(rule))
		}
	}
	v.timing(s, f, p, rule)
	top := &s.Topology
	switch f.Kind {
	case FaultPartition, FaultBridge:
		v.groups(top, f, p, worlds)
	case FaultLatency:
		if f.Latency <= 0 {
			v.add(p+".latency", "must be > 0, got %s", f.Latency)
		}
		if f.Jitter < 0 || (f.Latency > 0 && f.Jitter > f.Latency) {
			v.add(p+".jitter", "must be in [0, latency], got %s", f.Jitter)
		}
		if len(f.Link) != 2 {
			v.add(p+".link", "must name exactly two selectors (the link's ends), got %d", len(f.Link))
			return
		}
		a, b := v.selectors(top, p+".link[0]", f.Link[:1], worlds), v.selectors(top, p+".link[1]", f.Link[1:], worlds)
		if a && b {
			v.disjoint(top, p+".link", "link ends", f.Link[:1], f.Link[1:], worlds)
		}
	case FaultNATSRestart:
		// Always the NATS server: nothing to select.
	default:
		if len(f.Targets) == 0 {
			v.add(p+".targets", "a %s fault needs targets", f.Kind)
			break
		}
		if v.selectors(top, p+".targets", f.Targets, worlds) && (f.Kind == FaultClockSkew || f.Kind == FaultClockDrift) {
			for _, w := range worlds {
				if slices.Contains(top.Resolve(f.Targets, w), SelNATS) {
					v.add(p+".targets", "the NATS server has no injectable clock; name coordinators and shards")
					break
				}
			}
		}
	}
	switch f.Kind {
	case FaultLoss, FaultDuplicate, FaultReorder:
		if !(f.Percent > 0 && f.Percent <= 100) {
			v.add(p+".percent", "must be in (0, 100], got %g", f.Percent)
		} else if f.Kind == FaultLoss && f.Percent != math.Trunc(f.Percent) {
			v.add(p+".percent", "loss is injected in whole percent (nftables numgen); got %g", f.Percent)
		}
	case FaultClockSkew:
		if f.Offset == 0 {
			v.add(p+".offset", "a clock-skew needs a non-zero offset, e.g. 2h or -2h")
		}
	case FaultClockDrift:
		switch {
		case !(f.Rate > 0) || math.IsInf(f.Rate, 0):
			v.add(p+".rate", "must be > 0, e.g. 1.005, got %g", f.Rate)
		case f.Rate == 1:
			v.add(p+".rate", "1 is no drift")
		case math.Abs(f.Rate-1) > s.Topology.Rho && !s.expects(history.I7):
			v.add(p+".rate", "%g drifts by more than rho %g, which the coordinators do not claim to tolerate: stay within rho or expect I7",
				f.Rate, s.Topology.Rho)
		}
	}
}

func takes(r kindRule) string {
	if len(r.fields) == 0 {
		return "only kind, at, for, every, count"
	}
	return strings.Join(r.fields, ", ")
}

// timing checks At, For, Every and Count against the workload's duration.
func (v *validator) timing(s *Scenario, f *Fault, p string, rule kindRule) {
	if f.At < 0 {
		v.add(p+".at", "must be >= 0, got %s", f.At)
	}
	if s.Duration > 0 && f.At >= s.Duration {
		v.add(p+".at", "%s is not inside the workload's %s", f.At, s.Duration)
	}
	switch {
	case f.For < 0:
		v.add(p+".for", "must be >= 0, got %s", f.For)
	case f.For == 0 && !rule.forOptional:
		v.add(p+".for", "a %s fault needs for: how long until it is healed", f.Kind)
	}
	switch {
	case f.Count < 0:
		v.add(p+".count", "must be >= 0, got %d", f.Count)
	case f.Count > 1 && f.Every <= 0:
		v.add(p+".every", "count %d repeats the fault: every must be > 0", f.Count)
	case f.Every != 0 && f.Count < 2:
		v.add(p+".count", "every %s repeats the fault: count must be >= 2", f.Every)
	case f.Count > 1 && f.For <= 0:
		v.add(p+".for", "a repeated fault needs for, or its occurrences never end")
	case f.Count > 1 && f.For >= f.Every:
		v.add(p+".for", "%s must be shorter than every %s: occurrences of one fault must not overlap", f.For, f.Every)
	}
	if s.Duration > 0 && f.At >= 0 && f.For >= 0 && f.Every >= 0 {
		if end := f.End(s.Duration.D()); end > s.Duration.D() {
			v.add(p, "ends at %s, after the workload's %s: every fault must heal inside the workload", end, s.Duration)
		}
	}
}

// selectors checks each selector's syntax and that the list names at least one node
// in every world. It reports whether the list is usable.
func (v *validator) selectors(t *Topology, field string, sels []string, worlds []World) bool {
	ok := true
	for i, sel := range sels {
		if err := t.CheckSelector(sel); err != nil {
			v.add(fmt.Sprintf("%s[%d]", field, i), "%v", err)
			ok = false
		}
	}
	if !ok {
		return false
	}
	for _, w := range worlds {
		if len(t.Resolve(sels, w)) == 0 {
			v.add(field, "[%s] names no node with %d coordinator(s)", strings.Join(sels, ", "), t.Coordinators)
			return false
		}
	}
	return true
}

// disjoint reports a problem if a and b can name a common node in some world.
func (v *validator) disjoint(t *Topology, field, what string, a, b []string, worlds []World) {
	for _, w := range worlds {
		if both := intersect(t.Resolve(a, w), t.Resolve(b, w)); len(both) > 0 {
			v.add(field, "%s [%s] and [%s] can overlap: both name %s when %s",
				what, strings.Join(a, ", "), strings.Join(b, ", "), strings.Join(both, ","), w)
			return
		}
	}
}

func (v *validator) groups(t *Topology, f *Fault, p string, worlds []World) {
	switch {
	case f.Kind == FaultBridge && len(f.Groups) != 2:
		v.add(p+".groups", "a bridge takes exactly two groups, got %d", len(f.Groups))
		return
	case len(f.Groups) < 2:
		v.add(p+".groups", "a partition needs at least two groups to cut apart, got %d", len(f.Groups))
		return
	}
	ok := true
	for g, sels := range f.Groups {
		field := fmt.Sprintf("%s.groups[%d]", p, g)
		if len(sels) == 0 {
			v.add(field, "is empty")
			ok = false
			continue
		}
		ok = v.selectors(t, field, sels, worlds) && ok
	}
	if !ok {
		return
	}
	for a := range f.Groups {
		for b := a + 1; b < len(f.Groups); b++ {
			v.disjoint(t, p+".groups", fmt.Sprintf("groups %d and %d", a, b), f.Groups[a], f.Groups[b], worlds)
		}
	}
	if f.Kind != FaultBridge {
		return
	}
	if f.Bridge == "" {
		v.add(p+".bridge", "a bridge fault needs the bridge node")
		return
	}
	if err := t.CheckSelector(f.Bridge); err != nil {
		v.add(p+".bridge", "%v", err)
		return
	}
	for _, w := range worlds {
		if n := t.Resolve([]string{f.Bridge}, w); len(n) != 1 {
			v.add(p+".bridge", "%q must name exactly one node, names %d when %s", f.Bridge, len(n), w)
			return
		}
	}
	for g := range f.Groups {
		v.disjoint(t, p+".bridge", fmt.Sprintf("bridge and group %d", g), []string{f.Bridge}, f.Groups[g], worlds)
	}
}

// expects reports whether the scenario expects a violation of invariant id.
func (s *Scenario) expects(id string) bool {
	for _, entry := range s.Expect.Violations {
		if e, err := ParseExpectation(entry); err == nil && slices.Contains(e.AnyOf, id) {
			return true
		}
	}
	return false
}
