package chaosmesh

// The subset of the Chaos Mesh v1alpha1 API (chaos-mesh.org/v1alpha1, Chaos Mesh 2.x)
// this package emits, field names and nesting as in chaos-mesh/api/v1alpha1:
// PodSelector and ContainerSelector are inlined into each spec, TcParameter's
// loss/delay/duplicate sit beside action, a Schedule inlines the embedded chaos under
// its kind's key (podChaos, networkChaos, timeChaos), and a Workflow template inlines
// it the same way.

// APIVersion is the Chaos Mesh API group and version.
const APIVersion = "chaos-mesh.org/v1alpha1"

// Kinds emitted.
const (
	KindNetworkChaos = "NetworkChaos"
	KindPodChaos     = "PodChaos"
	KindTimeChaos    = "TimeChaos"
	KindSchedule     = "Schedule"
	KindWorkflow     = "Workflow"
)

type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   meta   `yaml:"metadata"`
	Spec       any    `yaml:"spec"`
}

type meta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// podSelector is v1alpha1.PodSelector: which pods, and how many of them.
type podSelector struct {
	Selector selectorSpec `yaml:"selector"`
	Mode     string       `yaml:"mode"`
}

// selectorSpec is the part of v1alpha1.PodSelectorSpec used here.
type selectorSpec struct {
	Namespaces          []string          `yaml:"namespaces,omitempty"`
	LabelSelectors      map[string]string `yaml:"labelSelectors,omitempty"`
	ExpressionSelectors []labelRequire    `yaml:"expressionSelectors,omitempty"`
}

// labelRequire is metav1.LabelSelectorRequirement.
type labelRequire struct {
	Key      string   `yaml:"key"`
	Operator string   `yaml:"operator"`
	Values   []string `yaml:"values"`
}

type networkChaosSpec struct {
	podSelector `yaml:",inline"`
	Action      string         `yaml:"action"`
	Duration    string         `yaml:"duration,omitempty"`
	Direction   string         `yaml:"direction,omitempty"`
	Target      *podSelector   `yaml:"target,omitempty"`
	Loss        *lossSpec      `yaml:"loss,omitempty"`
	Delay       *delaySpec     `yaml:"delay,omitempty"`
	Duplicate   *duplicateSpec `yaml:"duplicate,omitempty"`
}

type lossSpec struct {
	Loss        string `yaml:"loss"`
	Correlation string `yaml:"correlation,omitempty"`
}

type delaySpec struct {
	Latency     string       `yaml:"latency"`
	Correlation string       `yaml:"correlation,omitempty"`
	Jitter      string       `yaml:"jitter,omitempty"`
	Reorder     *reorderSpec `yaml:"reorder,omitempty"`
}

type reorderSpec struct {
	Reorder     string `yaml:"reorder"`
	Correlation string `yaml:"correlation,omitempty"`
	Gap         int    `yaml:"gap"`
}

type duplicateSpec struct {
	Duplicate   string `yaml:"duplicate"`
	Correlation string `yaml:"correlation,omitempty"`
}

type podChaosSpec struct {
	podSelector `yaml:",inline"`
	Action      string `yaml:"action"`
	Duration    string `yaml:"duration,omitempty"`
	GracePeriod int64  `yaml:"gracePeriod,omitempty"`
}

type timeChaosSpec struct {
	podSelector `yaml:",inline"`
	TimeOffset  string `yaml:"timeOffset"`
	Duration    string `yaml:"duration,omitempty"`
}

// embedChaos is v1alpha1.EmbedChaos: one chaos spec under its kind's key.
type embedChaos struct {
	NetworkChaos *networkChaosSpec `yaml:"networkChaos,omitempty"`
	PodChaos     *podChaosSpec     `yaml:"podChaos,omitempty"`
	TimeChaos    *timeChaosSpec    `yaml:"timeChaos,omitempty"`
}

// scheduleSpec is v1alpha1.ScheduleSpec (and, without metadata, the Workflow
// template's ChaosOnlyScheduleSpec).
type scheduleSpec struct {
	Schedule          string `yaml:"schedule"`
	ConcurrencyPolicy string `yaml:"concurrencyPolicy"`
	HistoryLimit      int    `yaml:"historyLimit,omitempty"`
	Type              string `yaml:"type"`
	embedChaos        `yaml:",inline"`
}

type workflowSpec struct {
	Entry     string     `yaml:"entry"`
	Templates []template `yaml:"templates"`
}

// template is v1alpha1.Template.
type template struct {
	Name       string   `yaml:"name"`
	Type       string   `yaml:"templateType"`
	Deadline   string   `yaml:"deadline,omitempty"`
	Children   []string `yaml:"children,omitempty"`
	embedChaos `yaml:",inline"`
	Schedule   *scheduleSpec `yaml:"schedule,omitempty"`
}

// Workflow template types used.
const (
	templateSerial   = "Serial"
	templateParallel = "Parallel"
	templateSuspend  = "Suspend"
	templateSchedule = "Schedule"
)
