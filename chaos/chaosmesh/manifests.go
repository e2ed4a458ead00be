package chaosmesh

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shardmatch/shardmatch/chaos/scenario"
)

// Errors.
var (
	// ErrUnsafe: the scenario runs a test-only unsafe coordinator mode (a checker-bites
	// run), which no Kubernetes install enables.
	ErrUnsafe = errors.New("chaosmesh: checker-bites scenarios need a test-only coordinator mode and have no manifests")
)

// Labels the selectors use. The chart labels every pod with the release (instance) and
// its component; StatefulSet pods carry their own name as a label.
const (
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelPodName   = "statefulset.kubernetes.io/pod-name"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelScenario  = "shardmatch.io/scenario"
	// AnnotationStartAfter is when the scenario starts the fault, from the workload's
	// start (standalone objects start when applied).
	AnnotationStartAfter = "shardmatch.io/start-after"
	// AnnotationFault names the scenario fault an object renders, e.g. "faults[2]".
	AnnotationFault = "shardmatch.io/fault"
)

// Components: the values of LabelComponent, and the StatefulSet name suffixes.
const (
	ComponentCoordinator = "coordinator"
	ComponentShard       = "shard"
	ComponentNATS        = "nats"
)

// DefaultRelease is the Helm release name assumed when Options.Release is empty.
const DefaultRelease = "shardmatch"

// ChartName is the Helm chart's name (deploy/helm/shardmatch), part of its object names.
const ChartName = "shardmatch"

// Options say where the system under test runs.
type Options struct {
	// Namespace is the experiments' namespace and the pods' ("": the namespace
	// `kubectl apply` uses, and Chaos Mesh then selects pods in that namespace).
	Namespace string
	// Release is the Helm release (default "shardmatch"): the pods' instance label.
	Release string
	// Fullname is the chart's full name, which starts every object name (default:
	// Fullname(Release)): pods are <fullname>-coordinator-<i>, <fullname>-shard-<i>
	// and <fullname>-nats-0.
	Fullname string
}

// Fullname is the chart's default full name for a release: the release itself when it
// already contains "shardmatch", else <release>-shardmatch (the chart's
// shardmatch.fullname helper without fullnameOverride).
func Fullname(release string) string {
	if strings.Contains(release, ChartName) {
		return release
	}
	return release + "-" + ChartName
}

func (o Options) fullname() string {
	if o.Fullname != "" {
		return o.Fullname
	}
	return Fullname(o.release())
}

func (o Options) release() string {
	if o.Release == "" {
		return DefaultRelease
	}
	return o.Release
}

// item is one Chaos Mesh chaos object rendering (part of) a fault.
type item struct {
	kind   string // KindNetworkChaos, KindPodChaos, KindTimeChaos
	suffix string // object name suffix, e.g. "partition-0-1"
	spec   embedChaos
}

// rendered is one scenario fault in Chaos Mesh terms.
type rendered struct {
	index int
	f     scenario.Fault
	items []item
	notes []string // comment lines for the fault's objects
	skip  string   // non-empty: the fault has no Chaos Mesh form, and why
}

// renderer holds what every fault of one scenario needs.
type renderer struct {
	s     *scenario.Scenario
	opts  Options
	world scenario.World // the fixed role assignment: c1 leads
}

func newRenderer(s *scenario.Scenario, opts Options) (*renderer, error) {
	if s.Bites() {
		return nil, fmt.Errorf("%w: %s (unsafe %s)", ErrUnsafe, s.Name, s.Unsafe)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	n := s.Topology.Coordinators
	w := scenario.World{Leader: 1}
	if n > 1 {
		w.Follower = 2
	}
	for c := 1; c <= scenario.MinoritySize(n); c++ {
		w.Minority = append(w.Minority, c)
	}
	return &renderer{s: s, opts: opts, world: w}, nil
}

// pod is the StatefulSet pod of a node: nats, c<i> or s<i>.
func (r *renderer) pod(node string) (component, name string) {
	rel := r.opts.fullname()
	if node == scenario.SelNATS {
		return ComponentNATS, rel + "-nats-0"
	}
	i, _ := strconv.Atoi(node[1:])
	if node[0] == 'c' {
		return ComponentCoordinator, fmt.Sprintf("%s-%s-%d", rel, ComponentCoordinator, i-1)
	}
	return ComponentShard, fmt.Sprintf("%s-%s-%d", rel, ComponentShard, i-1)
}

// selector selects exactly the pods of sels in the fixed world: by component label
// when whole components are named, by pod name otherwise.
func (r *renderer) selector(sels []string) podSelector {
	top := r.s.Topology
	nodes := top.Resolve(sels, r.world)
	sel := selectorSpec{LabelSelectors: map[string]string{LabelInstance: r.opts.release()}}
	if r.opts.Namespace != "" {
		sel.Namespaces = []string{r.opts.Namespace}
	}
	ps := podSelector{Selector: sel, Mode: "all"}
	if len(nodes) == len(top.NodeNames()) {
		return ps // every pod of the release
	}
	sizes := map[string]int{ComponentNATS: 1, ComponentCoordinator: top.Coordinators, ComponentShard: top.Shards}
	count := map[string]int{}
	var comps, pods []string
	for _, n := range nodes {
		c, p := r.pod(n)
		if count[c] == 0 {
			comps = append(comps, c)
		}
		count[c]++
		pods = append(pods, p)
	}
	whole := true
	for _, c := range comps {
		whole = whole && count[c] == sizes[c]
	}
	switch {
	case whole && len(comps) == 1:
		ps.Selector.LabelSelectors[LabelComponent] = comps[0]
	case whole:
		ps.Selector.ExpressionSelectors = []labelRequire{{Key: LabelComponent, Operator: "In", Values: comps}}
	case len(pods) == 1:
		ps.Selector.LabelSelectors[LabelComponent] = comps[0]
		ps.Selector.LabelSelectors[LabelPodName] = pods[0]
	default:
		ps.Selector.ExpressionSelectors = []labelRequire{{Key: LabelPodName, Operator: "In", Values: pods}}
	}
	return ps
}

// describe names the pods of sels for comments, e.g. "leader -> c1 (shardmatch-coordinator-0)".
func (r *renderer) describe(sels []string) string {
	nodes := r.s.Topology.Resolve(sels, r.world)
	pods := make([]string, len(nodes))
	for i, n := range nodes {
		_, pods[i] = r.pod(n)
	}
	return fmt.Sprintf("[%s] -> %s", strings.Join(sels, ", "), strings.Join(pods, ", "))
}

// dynamic reports whether sels use a role selector that Chaos Mesh cannot follow.
func dynamic(sels ...[]string) bool {
	for _, ss := range sels {
		for _, s := range ss {
			switch s {
			case scenario.SelLeader, scenario.SelFollower, scenario.SelFollowers, scenario.SelMinority,
				scenario.SelMajorityWithoutLeader:
				return true
			}
		}
	}
	return false
}

// length is how long one occurrence of f lasts as a Chaos Mesh duration: For, or
// until the workload ends for a clock fault without For.
func (r *renderer) length(f scenario.Fault) time.Duration {
	if f.For > 0 {
		return f.For.D()
	}
	return r.s.Duration.D() - f.At.D()
}

// render turns fault i into chaos specs.
func (r *renderer) render(i int) rendered {
	f := r.s.Faults[i]
	out := rendered{index: i, f: f}
	dur := r.length(f).String()
	var sels [][]string
	switch f.Kind {
	case scenario.FaultPartition, scenario.FaultBridge:
		sels = f.Groups
		for a := range f.Groups {
			for b := a + 1; b < len(f.Groups); b++ {
				src, dst := r.selector(f.Groups[a]), r.selector(f.Groups[b])
				out.items = append(out.items, item{kind: KindNetworkChaos, suffix: fmt.Sprintf("partition-%d-%d", a, b),
					spec: embedChaos{NetworkChaos: &networkChaosSpec{podSelector: src, Action: "partition", Duration: dur,
						Direction: "both", Target: &dst}}})
			}
		}
		if f.Kind == scenario.FaultBridge {
			out.notes = append(out.notes, fmt.Sprintf("bridge: %s is in neither group, so it keeps seeing both.", r.describe([]string{f.Bridge})))
		}
	case scenario.FaultLoss:
		sels = [][]string{f.Targets}
		out.items = append(out.items, item{kind: KindNetworkChaos, suffix: "loss", spec: embedChaos{NetworkChaos: &networkChaosSpec{
			podSelector: r.selector(f.Targets), Action: "loss", Duration: dur, Direction: "to",
			Loss: &lossSpec{Loss: fmtFloat(f.Percent), Correlation: "0"}}}})
		out.notes = append(out.notes, "netem drops on the selected pods' egress; locally the runner drops on the way in as well.")
	case scenario.FaultLatency:
		sels = [][]string{f.Link[:1], f.Link[1:]}
		dst := r.selector(f.Link[1:])
		d := &delaySpec{Latency: f.Latency.String(), Correlation: "0"}
		if f.Jitter > 0 {
			d.Jitter = f.Jitter.String()
		}
		out.items = append(out.items, item{kind: KindNetworkChaos, suffix: "latency", spec: embedChaos{NetworkChaos: &networkChaosSpec{
			podSelector: r.selector(f.Link[:1]), Action: "delay", Duration: dur, Direction: "both", Target: &dst, Delay: d}}})
	case scenario.FaultDuplicate:
		sels = [][]string{f.Targets}
		out.items = append(out.items, item{kind: KindNetworkChaos, suffix: "duplicate", spec: embedChaos{NetworkChaos: &networkChaosSpec{
			podSelector: r.selector(f.Targets), Action: "duplicate", Duration: dur, Direction: "to",
			Duplicate: &duplicateSpec{Duplicate: fmtFloat(f.Percent), Correlation: "0"}}}})
		out.notes = append(out.notes, "Chaos Mesh duplicates packets, which TCP discards; locally the runner duplicates whole protocol",
			"messages in the transport's fault hook, which is the stronger test of idempotency (I6).")
	case scenario.FaultReorder:
		sels = [][]string{f.Targets}
		out.items = append(out.items, item{kind: KindNetworkChaos, suffix: "reorder", spec: embedChaos{NetworkChaos: &networkChaosSpec{
			podSelector: r.selector(f.Targets), Action: "delay", Duration: dur, Direction: "to",
			Delay: &delaySpec{Latency: "10ms", Correlation: "0", Reorder: &reorderSpec{Reorder: fmtFloat(f.Percent), Correlation: "0", Gap: 5}}}}})
		out.notes = append(out.notes, "netem reorders packets (it needs a delay, 10ms here), which TCP puts back in order; locally the",
			"runner reorders whole protocol messages in the transport's fault hook.")
	case scenario.FaultClockSkew:
		sels = [][]string{f.Targets}
		out.items = append(out.items, item{kind: KindTimeChaos, suffix: "clock-skew", spec: embedChaos{TimeChaos: &timeChaosSpec{
			podSelector: r.selector(f.Targets), TimeOffset: f.Offset.String(), Duration: dur}}})
		out.notes = append(out.notes, "TimeChaos shifts CLOCK_REALTIME only (its default clockIds), as the local skewed clock does:",
			"the monotonic clock that lease expiry uses is untouched.")
	case scenario.FaultClockDrift:
		out.skip = fmt.Sprintf("clock-drift (rate %g on %s) has no Chaos Mesh equivalent: TimeChaos shifts a clock by a fixed "+
			"offset but cannot change its rate. Run this fault locally with `coordinator chaos run %s`.",
			f.Rate, strings.Join(f.Targets, ", "), r.s.Name)
		return out
	case scenario.FaultKill, scenario.FaultNATSRestart:
		targets := f.Targets
		if f.Kind == scenario.FaultNATSRestart {
			targets = []string{scenario.SelNATS}
		}
		sels = [][]string{targets}
		out.items = append(out.items, item{kind: KindPodChaos, suffix: string(f.Kind), spec: embedChaos{PodChaos: &podChaosSpec{
			podSelector: r.selector(targets), Action: "pod-kill"}}})
		out.notes = append(out.notes, fmt.Sprintf("pod-kill deletes the pod at once (gracePeriod 0, like kill -9); the StatefulSet "+
			"recreates it with its volume as soon as it can, not after the scenario's %s.", f.For))
	case scenario.FaultPause:
		sels = [][]string{f.Targets}
		out.items = append(out.items, item{kind: KindPodChaos, suffix: "pause", spec: embedChaos{PodChaos: &podChaosSpec{
			podSelector: r.selector(f.Targets), Action: "pod-failure", Duration: dur}}})
		out.notes = append(out.notes, "PodChaos has no pause (SIGSTOP): pod-failure swaps the containers for a pause image for the",
			"duration, so the process is stopped and later restarted. A frozen process wakes with stale state; this one does not.")
	default:
		out.skip = fmt.Sprintf("fault kind %q has no Chaos Mesh rendering", f.Kind)
		return out
	}
	if dynamic(sels...) {
		var ds []string
		for _, s := range sels {
			ds = append(ds, r.describe(s))
		}
		out.notes = append(out.notes, fmt.Sprintf("Chaos Mesh cannot follow the Raft leader: roles are fixed with c1 as the leader, so %s.",
			strings.Join(ds, "; ")),
			"Make c1 lead before applying: POST /v1/leader/transfer {\"id\":\"c1\",\"addr\":...} to the current leader's admin API.")
	}
	return out
}

// fmtFloat renders a percent as Chaos Mesh's FloatStr, e.g. "2" or "0.5".
func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// objName builds a DNS-1123 object name of at most 63 characters, shortening the
// scenario part if needed.
func objName(scenarioName, rest string) string {
	if room := 63 - len(rest) - 1; len(scenarioName) > room {
		scenarioName = strings.TrimRight(scenarioName[:max(room, 1)], "-")
	}
	return scenarioName + "-" + rest
}

func (r *renderer) meta(name string, f *rendered) meta {
	m := meta{Name: name, Namespace: r.opts.Namespace,
		Labels: map[string]string{LabelPartOf: "shardmatch", LabelScenario: r.s.Name}}
	if f != nil {
		m.Annotations = map[string]string{AnnotationFault: fmt.Sprintf("faults[%d]", f.index),
			AnnotationStartAfter: f.f.At.String()}
	}
	return m
}

// header is the comment block that opens every file.
func (r *renderer) header(form string) string {
	var b strings.Builder
	top := r.s.Topology
	rel, full := r.opts.release(), r.opts.fullname()
	fmt.Fprintf(&b, "# Code generated by chaos/chaosmesh from chaos/scenarios/%s.yaml; DO NOT EDIT.\n#\n", r.s.Name)
	fmt.Fprintf(&b, "# Scenario %s: %s\n#\n", r.s.Name, r.s.Description)
	fmt.Fprintf(&b, "# %s\n", form)
	fmt.Fprintf(&b, "# Assumes the Helm release %q of deploy/helm/shardmatch: StatefulSets %s-coordinator (%d replicas),\n",
		rel, full, top.Coordinators)
	fmt.Fprintf(&b, "# %s-shard (%d, shards.enabled) and %s-nats (1), pods labelled %s=%s\n",
		full, top.Shards, full, LabelInstance, rel)
	fmt.Fprintf(&b, "# and %s=coordinator|shard|nats.\n", LabelComponent)
	b.WriteString("# Chaos Mesh only injects the faults: drive load with the chart's demo shards' load driver and\n")
	b.WriteString("# judge the run with the invariant checkers (`coordinator chaos run` does all of it locally).\n")
	return b.String()
}
