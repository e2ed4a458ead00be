package chaosmesh

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shardmatch/shardmatch/chaos/scenario"
)

// This file mirrors, independently of the types the package emits, the Chaos Mesh
// v1alpha1 fields (chaos-mesh/api/v1alpha1: selector.go, networkchaos_types.go,
// podnetworkchaos_types.go's TcParameter, podchaos_types.go, timechaos_types.go,
// schedule_types.go, workflow_types.go) and the webhook rules the manifests must
// pass. Every document is decoded strictly: a field the CRD does not have fails.

type cmMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type cmRequirement struct {
	Key      string   `yaml:"key"`
	Operator string   `yaml:"operator"`
	Values   []string `yaml:"values"`
}

type cmPodSelectorSpec struct {
	Namespaces          []string            `yaml:"namespaces"`
	FieldSelectors      map[string]string   `yaml:"fieldSelectors"`
	LabelSelectors      map[string]string   `yaml:"labelSelectors"`
	ExpressionSelectors []cmRequirement     `yaml:"expressionSelectors"`
	AnnotationSelectors map[string]string   `yaml:"annotationSelectors"`
	Nodes               []string            `yaml:"nodes"`
	Pods                map[string][]string `yaml:"pods"`
	NodeSelectors       map[string]string   `yaml:"nodeSelectors"`
	PodPhaseSelectors   []string            `yaml:"podPhaseSelectors"`
}

type cmPodSelector struct {
	Selector cmPodSelectorSpec `yaml:"selector"`
	Mode     string            `yaml:"mode"`
	Value    string            `yaml:"value"`
}

type cmContainerSelector struct {
	cmPodSelector  `yaml:",inline"`
	ContainerNames []string `yaml:"containerNames"`
}

type cmDelay struct {
	Latency     string `yaml:"latency"`
	Correlation string `yaml:"correlation"`
	Jitter      string `yaml:"jitter"`
	Reorder     *struct {
		Reorder     string `yaml:"reorder"`
		Correlation string `yaml:"correlation"`
		Gap         int    `yaml:"gap"`
	} `yaml:"reorder"`
}

type cmPercent struct {
	Loss        string `yaml:"loss"`
	Duplicate   string `yaml:"duplicate"`
	Corrupt     string `yaml:"corrupt"`
	Correlation string `yaml:"correlation"`
}

type cmNetworkChaosSpec struct {
	cmPodSelector   `yaml:",inline"`
	Action          string         `yaml:"action"`
	Device          string         `yaml:"device"`
	Duration        *string        `yaml:"duration"`
	Delay           *cmDelay       `yaml:"delay"`
	Loss            *cmPercent     `yaml:"loss"`
	Duplicate       *cmPercent     `yaml:"duplicate"`
	Corrupt         *cmPercent     `yaml:"corrupt"`
	Direction       string         `yaml:"direction"`
	Target          *cmPodSelector `yaml:"target"`
	TargetDevice    string         `yaml:"targetDevice"`
	ExternalTargets []string       `yaml:"externalTargets"`
	RemoteCluster   string         `yaml:"remoteCluster"`
}

type cmPodChaosSpec struct {
	cmContainerSelector `yaml:",inline"`
	Action              string  `yaml:"action"`
	Duration            *string `yaml:"duration"`
	GracePeriod         int64   `yaml:"gracePeriod"`
	RemoteCluster       string  `yaml:"remoteCluster"`
}

type cmTimeChaosSpec struct {
	cmContainerSelector `yaml:",inline"`
	TimeOffset          string   `yaml:"timeOffset"`
	ClockIds            []string `yaml:"clockIds"`
	Duration            *string  `yaml:"duration"`
	RemoteCluster       string   `yaml:"remoteCluster"`
}

type cmEmbedChaos struct {
	NetworkChaos *cmNetworkChaosSpec `yaml:"networkChaos"`
	PodChaos     *cmPodChaosSpec     `yaml:"podChaos"`
	TimeChaos    *cmTimeChaosSpec    `yaml:"timeChaos"`
}

type cmScheduleSpec struct {
	Schedule                string `yaml:"schedule"`
	StartingDeadlineSeconds *int64 `yaml:"startingDeadlineSeconds"`
	ConcurrencyPolicy       string `yaml:"concurrencyPolicy"`
	HistoryLimit            int    `yaml:"historyLimit"`
	Type                    string `yaml:"type"`
	cmEmbedChaos            `yaml:",inline"`
}

type cmTemplate struct {
	Name         string   `yaml:"name"`
	Type         string   `yaml:"templateType"`
	Deadline     *string  `yaml:"deadline"`
	Children     []string `yaml:"children"`
	cmEmbedChaos `yaml:",inline"`
	Schedule     *cmScheduleSpec `yaml:"schedule"`
}

type cmWorkflowSpec struct {
	Entry     string       `yaml:"entry"`
	Templates []cmTemplate `yaml:"templates"`
}

type cmDoc[S any] struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   cmMeta `yaml:"metadata"`
	Spec       S      `yaml:"spec"`
}

// documents splits a multi-document YAML file into its documents, dropping those
// that hold only comments.
func documents(data []byte) []string {
	var out []string
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		for _, line := range strings.Split(d, "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
				out = append(out, d)
				break
			}
		}
	}
	return out
}

func strict[S any](doc string) (cmDoc[S], error) {
	var v cmDoc[S]
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&v); err != nil {
		return v, err
	}
	if err := dec.Decode(new(any)); !errors.Is(err, io.EOF) {
		return v, fmt.Errorf("more than one document in %q", doc)
	}
	return v, nil
}

// crdChecker validates documents against the mirrored CRDs and webhook rules, and
// the selected pods against the topology of the scenario each object belongs to.
type crdChecker struct {
	release    string
	topologies map[string]scenario.Topology // by scenario name
}

var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func (c *crdChecker) checkFile(data []byte) (kinds []string, err error) {
	for i, doc := range documents(data) {
		var head struct {
			Kind string `yaml:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return kinds, fmt.Errorf("doc %d: %w", i, err)
		}
		if err := c.checkDoc(head.Kind, doc); err != nil {
			return kinds, fmt.Errorf("doc %d (%s): %w", i, head.Kind, err)
		}
		kinds = append(kinds, head.Kind)
	}
	return kinds, nil
}

func (c *crdChecker) checkDoc(kind, doc string) error {
	var m cmMeta
	var api string
	var errs []error
	top := func() scenario.Topology { return c.topologies[m.Labels["shardmatch.io/scenario"]] }
	switch kind {
	case KindNetworkChaos:
		d, err := strict[cmNetworkChaosSpec](doc)
		if err != nil {
			return err
		}
		m, api = d.Metadata, d.APIVersion
		errs = append(errs, c.network(&d.Spec, top()))
	case KindPodChaos:
		d, err := strict[cmPodChaosSpec](doc)
		if err != nil {
			return err
		}
		m, api = d.Metadata, d.APIVersion
		errs = append(errs, c.pod(&d.Spec, top()))
	case KindTimeChaos:
		d, err := strict[cmTimeChaosSpec](doc)
		if err != nil {
			return err
		}
		m, api = d.Metadata, d.APIVersion
		errs = append(errs, c.time(&d.Spec, top()))
	case KindSchedule:
		d, err := strict[cmScheduleSpec](doc)
		if err != nil {
			return err
		}
		m, api = d.Metadata, d.APIVersion
		errs = append(errs, c.schedule(&d.Spec, top()))
	case KindWorkflow:
		d, err := strict[cmWorkflowSpec](doc)
		if err != nil {
			return err
		}
		m, api = d.Metadata, d.APIVersion
		errs = append(errs, c.workflow(&d.Spec, top()))
	default:
		return fmt.Errorf("kind %q is not one this package emits", kind)
	}
	if api != APIVersion {
		errs = append(errs, fmt.Errorf("apiVersion %q", api))
	}
	if len(m.Name) > 63 || !dns1123.MatchString(m.Name) {
		errs = append(errs, fmt.Errorf("metadata.name %q is not a DNS-1123 label", m.Name))
	}
	if _, ok := c.topologies[m.Labels["shardmatch.io/scenario"]]; !ok {
		errs = append(errs, fmt.Errorf("label shardmatch.io/scenario %q names no scenario", m.Labels["shardmatch.io/scenario"]))
	}
	return errors.Join(errs...)
}

func positiveDuration(field string, s *string, required bool) error {
	if s == nil || *s == "" {
		if required {
			return fmt.Errorf("%s is required", field)
		}
		return nil
	}
	if d, err := time.ParseDuration(*s); err != nil || d <= 0 {
		return fmt.Errorf("%s %q is not a positive duration", field, *s)
	}
	return nil
}

func percent(field, s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 || v > 100 {
		return fmt.Errorf("%s %q is not a percentage in (0, 100]", field, s)
	}
	return nil
}

// selector checks mode and selector, and that every pod it names exists.
func (c *crdChecker) selector(field string, p *cmPodSelector, top scenario.Topology) error {
	var errs []error
	if !slices.Contains([]string{"one", "all", "fixed", "fixed-percent", "random-max-percent"}, p.Mode) {
		errs = append(errs, fmt.Errorf("%s.mode %q", field, p.Mode))
	}
	if strings.HasPrefix(p.Mode, "fixed") || p.Mode == "random-max-percent" {
		if p.Value == "" {
			errs = append(errs, fmt.Errorf("%s.value is required with mode %s", field, p.Mode))
		}
	}
	s := p.Selector
	if s.LabelSelectors[LabelInstance] != c.release {
		errs = append(errs, fmt.Errorf("%s: not scoped to the release (%s=%q)", field, LabelInstance, s.LabelSelectors[LabelInstance]))
	}
	full := Fullname(c.release)
	pods := map[string]bool{full + "-nats-0": true}
	for i := range top.Coordinators {
		pods[fmt.Sprintf("%s-coordinator-%d", full, i)] = true
	}
	for i := range top.Shards {
		pods[fmt.Sprintf("%s-shard-%d", full, i)] = true
	}
	comps := []string{ComponentCoordinator, ComponentShard, ComponentNATS}
	named := func(key string, values ...string) {
		for _, v := range values {
			if key == LabelPodName && !pods[v] {
				errs = append(errs, fmt.Errorf("%s selects pod %q, which the topology does not have", field, v))
			}
			if key == LabelComponent && !slices.Contains(comps, v) {
				errs = append(errs, fmt.Errorf("%s selects component %q", field, v))
			}
		}
	}
	for k, v := range s.LabelSelectors {
		named(k, v)
	}
	for _, r := range s.ExpressionSelectors {
		if !slices.Contains([]string{"In", "NotIn", "Exists", "DoesNotExist"}, r.Operator) {
			errs = append(errs, fmt.Errorf("%s: operator %q", field, r.Operator))
		}
		if (r.Operator == "In" || r.Operator == "NotIn") && len(r.Values) == 0 {
			errs = append(errs, fmt.Errorf("%s: %s needs values", field, r.Operator))
		}
		named(r.Key, r.Values...)
	}
	return errors.Join(errs...)
}

func (c *crdChecker) network(s *cmNetworkChaosSpec, top scenario.Topology) error {
	errs := []error{c.selector("spec", &s.cmPodSelector, top), positiveDuration("spec.duration", s.Duration, false)}
	if s.Target != nil {
		errs = append(errs, c.selector("spec.target", s.Target, top))
	}
	switch s.Direction {
	case "", "to":
	case "from", "both":
		if s.Target == nil && len(s.ExternalTargets) == 0 {
			errs = append(errs, fmt.Errorf("direction %s needs a target (webhook rule)", s.Direction))
		}
	default:
		errs = append(errs, fmt.Errorf("direction %q", s.Direction))
	}
	tc := map[string]bool{"delay": s.Delay != nil, "loss": s.Loss != nil, "duplicate": s.Duplicate != nil, "corrupt": s.Corrupt != nil}
	for name, set := range tc {
		if set != (s.Action == name) {
			errs = append(errs, fmt.Errorf("action %s with %s parameters set=%v", s.Action, name, set))
		}
	}
	switch s.Action {
	case "partition":
	case "loss":
		errs = append(errs, percent("spec.loss.loss", s.Loss.Loss))
	case "duplicate":
		errs = append(errs, percent("spec.duplicate.duplicate", s.Duplicate.Duplicate))
	case "delay":
		errs = append(errs, positiveDuration("spec.delay.latency", &s.Delay.Latency, true))
		if s.Delay.Reorder != nil {
			errs = append(errs, percent("spec.delay.reorder.reorder", s.Delay.Reorder.Reorder))
		}
	default:
		errs = append(errs, fmt.Errorf("action %q is not emitted", s.Action))
	}
	return errors.Join(errs...)
}

func (c *crdChecker) pod(s *cmPodChaosSpec, top scenario.Topology) error {
	errs := []error{c.selector("spec", &s.cmPodSelector, top), positiveDuration("spec.duration", s.Duration, s.Action == "pod-failure")}
	switch s.Action {
	case "pod-kill", "pod-failure":
	case "container-kill":
		if len(s.ContainerNames) == 0 {
			errs = append(errs, errors.New("container-kill needs containerNames"))
		}
	default:
		errs = append(errs, fmt.Errorf("action %q", s.Action))
	}
	if s.GracePeriod < 0 {
		errs = append(errs, errors.New("gracePeriod < 0"))
	}
	return errors.Join(errs...)
}

func (c *crdChecker) time(s *cmTimeChaosSpec, top scenario.Topology) error {
	errs := []error{c.selector("spec", &s.cmPodSelector, top), positiveDuration("spec.duration", s.Duration, false)}
	if d, err := time.ParseDuration(s.TimeOffset); err != nil || d == 0 {
		errs = append(errs, fmt.Errorf("timeOffset %q", s.TimeOffset))
	}
	return errors.Join(errs...)
}

// embedded checks that exactly the spec of kind is set and validates it.
func (c *crdChecker) embedded(kind string, e *cmEmbedChaos, top scenario.Topology) error {
	set := map[string]bool{KindNetworkChaos: e.NetworkChaos != nil, KindPodChaos: e.PodChaos != nil, KindTimeChaos: e.TimeChaos != nil}
	for k, ok := range set {
		if ok != (k == kind) {
			return fmt.Errorf("type %s but %s spec set=%v", kind, k, ok)
		}
	}
	switch kind {
	case KindNetworkChaos:
		return c.network(e.NetworkChaos, top)
	case KindPodChaos:
		return c.pod(e.PodChaos, top)
	case KindTimeChaos:
		return c.time(e.TimeChaos, top)
	}
	return fmt.Errorf("chaos type %q", kind)
}

func (c *crdChecker) schedule(s *cmScheduleSpec, top scenario.Topology) error {
	var errs []error
	every, ok := strings.CutPrefix(s.Schedule, "@every ")
	if d, err := time.ParseDuration(every); !ok || err != nil || d <= 0 {
		errs = append(errs, fmt.Errorf("schedule %q is not @every <duration>", s.Schedule))
	}
	if s.ConcurrencyPolicy != "Forbid" && s.ConcurrencyPolicy != "Allow" && s.ConcurrencyPolicy != "" {
		errs = append(errs, fmt.Errorf("concurrencyPolicy %q", s.ConcurrencyPolicy))
	}
	if s.HistoryLimit < 0 {
		errs = append(errs, errors.New("historyLimit < 0"))
	}
	errs = append(errs, c.embedded(s.Type, &s.cmEmbedChaos, top))
	return errors.Join(errs...)
}

func (c *crdChecker) workflow(s *cmWorkflowSpec, top scenario.Topology) error {
	var errs []error
	byName := map[string]*cmTemplate{}
	for i := range s.Templates {
		t := &s.Templates[i]
		if byName[t.Name] != nil || !dns1123.MatchString(t.Name) {
			errs = append(errs, fmt.Errorf("template name %q is duplicated or not DNS-1123", t.Name))
		}
		byName[t.Name] = t
	}
	for _, t := range s.Templates {
		errs = append(errs, positiveDuration("template "+t.Name+" deadline", t.Deadline, t.Type == templateSuspend))
		switch t.Type {
		case templateSerial, templateParallel:
			if len(t.Children) == 0 {
				errs = append(errs, fmt.Errorf("template %s: %s without children", t.Name, t.Type))
			}
			for _, ch := range t.Children {
				if byName[ch] == nil {
					errs = append(errs, fmt.Errorf("template %s: child %q does not exist", t.Name, ch))
				}
			}
		case templateSuspend:
		case templateSchedule:
			if t.Schedule == nil {
				errs = append(errs, fmt.Errorf("template %s: Schedule without schedule", t.Name))
			} else {
				errs = append(errs, c.schedule(t.Schedule, top))
			}
		default:
			errs = append(errs, c.embedded(t.Type, &t.cmEmbedChaos, top))
		}
	}
	// Every template is reachable from the entry, and nothing loops.
	seen := map[string]bool{}
	var walk func(name string, path []string)
	walk = func(name string, path []string) {
		if slices.Contains(path, name) {
			errs = append(errs, fmt.Errorf("template cycle through %s", name))
			return
		}
		seen[name] = true
		if t := byName[name]; t != nil {
			for _, ch := range t.Children {
				walk(ch, append(path, name))
			}
		}
	}
	if byName[s.Entry] == nil {
		errs = append(errs, fmt.Errorf("entry %q is not a template", s.Entry))
	} else {
		walk(s.Entry, nil)
	}
	for name := range byName {
		if !seen[name] {
			errs = append(errs, fmt.Errorf("template %s is unreachable from the entry", name))
		}
	}
	return errors.Join(errs...)
}

// mustTopologies maps every builtin scenario to its topology.
func mustTopologies() map[string]scenario.Topology {
	all, err := scenario.Builtin()
	if err != nil {
		panic(err)
	}
	out := map[string]scenario.Topology{}
	for n, s := range all {
		out[n] = s.Topology
	}
	return out
}
