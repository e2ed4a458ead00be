package render

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
)

// Defaults of Options.
const (
	DefaultReleaseName = "shardmatch"
	DefaultNamespace   = "default"
)

// Errors. Every error Render returns wraps one of these.
var (
	// ErrChart: the chart could not be loaded or a values file read.
	ErrChart = errors.New("render: chart")
	// ErrValues: the values break values.schema.json or a template's own check
	// (a `fail`), as `helm install` would refuse them.
	ErrValues = errors.New("render: values rejected")
	// ErrDecode: a rendered object is not valid YAML, or does not decode strictly into
	// its k8s.io/api type (an unknown field, a duplicated field, a wrong type).
	ErrDecode = errors.New("render: rendered object does not decode")
)

// ChartDir is the absolute path of deploy/helm/shardmatch, found from this source
// file, so it works from any package's tests.
func ChartDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "shardmatch")
}

// TestdataDir is the absolute path of deploy/helm/testdata (the values files the
// render tests use).
func TestdataDir() string { return filepath.Join(filepath.Dir(ChartDir()), "testdata") }

// SuppliedValues are the values (dotted paths) that name a Secret or ConfigMap the
// user creates before installing instead of the chart: a pod may reference those
// names though the chart does not render them.
var SuppliedValues = []string{
	"coordinator.adminToken.existingSecret",
	"nats.auth.password.existingSecret",
	"nats.auth.creds.existingSecret",
	"nats.tls.existingSecret",
	"policy.existingConfigMap",
	"coordinator.adminReadToken.existingSecret",
	"coordinator.adminTLS.existingSecret",
	"coordinator.raftTLS.existingSecret",
	"coordinator.commandSigning.existingSecret",
	"nats.embedded.auth.existingSecret",
	"nats.embedded.clusterAuth.existingSecret",
	"shards.auth.existingSecret",
}

// Options say what to render.
type Options struct {
	// ReleaseName and Namespace are the release's (default "shardmatch", "default").
	ReleaseName, Namespace string
	// ValuesFiles are applied in order over the chart's values.yaml, then Values.
	ValuesFiles []string
	// Values are deep-merged last, like --set (a nested map per dotted key).
	Values map[string]any
	// Chart overrides ChartDir (tests of modified copies of the chart).
	Chart string
	// Lookup answers the templates' `lookup` calls, as the API server does on an
	// upgrade (the Secrets the chart generated at install). Nil: offline, as with
	// `helm template`: lookup finds nothing, and generated secrets are new each time.
	Lookup engine.ClientProvider
}

// Manifests is one rendering of the chart.
type Manifests struct {
	StatefulSets []*appsv1.StatefulSet
	Services     []*corev1.Service
	ConfigMaps   []*corev1.ConfigMap
	Secrets      []*corev1.Secret
	PDBs         []*policyv1.PodDisruptionBudget
	// Unstructured are the objects of kinds k8s.io/api does not know
	// (monitoring.coreos.com, chaos-mesh.org).
	Unstructured []*unstructured.Unstructured
	// Objects is everything, in Helm's install order.
	Objects []kruntime.Object
	// Files maps each template path (e.g. "shardmatch/templates/pdb.yaml") to its
	// rendered YAML, including NOTES.txt.
	Files map[string]string
	// Values are the final values the templates saw (chart defaults coalesced).
	Values map[string]any
}

// Render renders the chart with o, validates the values against the schema, and
// decodes every object strictly.
func Render(o Options) (*Manifests, error) {
	if o.ReleaseName == "" {
		o.ReleaseName = DefaultReleaseName
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	dir := o.Chart
	if dir == "" {
		dir = ChartDir()
	}
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: load %s: %w", ErrChart, dir, err)
	}
	vals, err := MergeValues(o.ValuesFiles, o.Values)
	if err != nil {
		return nil, err
	}
	files, final, err := renderFiles(ch, vals, o)
	if err != nil {
		return nil, err
	}
	m := &Manifests{Files: files, Values: final}
	if err := m.decode(files); err != nil {
		return nil, err
	}
	return m, nil
}

// MergeValues reads the values files in order and deep-merges them, then extra.
func MergeValues(valuesFiles []string, extra map[string]any) (map[string]any, error) {
	out := map[string]any{}
	for _, f := range valuesFiles {
		v, err := chartutil.ReadValuesFile(f)
		if err != nil {
			return nil, fmt.Errorf("%w: values file: %w", ErrChart, err)
		}
		out = mergeMaps(out, v)
	}
	return mergeMaps(out, extra), nil
}

// mergeMaps deep-merges b over a (maps merge key by key, anything else replaces).
func mergeMaps(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a))
	maps.Copy(out, a)
	for k, v := range b {
		if bv, ok := v.(map[string]any); ok {
			if av, ok := out[k].(map[string]any); ok {
				out[k] = mergeMaps(av, bv)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func renderFiles(ch *chart.Chart, vals map[string]any, o Options) (map[string]string, map[string]any, error) {
	caps := chartutil.DefaultCapabilities.Copy()
	rv, err := chartutil.ToRenderValues(ch, vals,
		chartutil.ReleaseOptions{Name: o.ReleaseName, Namespace: o.Namespace, Revision: 1, IsInstall: true}, caps)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrValues, err)
	}
	var files map[string]string
	if o.Lookup != nil {
		files, err = engine.RenderWithClientProvider(ch, rv, o.Lookup)
	} else {
		files, err = engine.Render(ch, rv)
	}
	if err != nil {
		// The chart's own checks (fail, required) all start their message with
		// "values: "; any other template error is a bug in the chart.
		if strings.Contains(err.Error(), "): values: ") {
			return nil, nil, fmt.Errorf("%w: %w", ErrValues, err)
		}
		return nil, nil, fmt.Errorf("%w: %w", ErrChart, err)
	}
	final, _ := rv["Values"].(chartutil.Values)
	return files, final.AsMap(), nil
}

// decode splits the rendered templates into objects in install order and decodes each.
func (m *Manifests) decode(files map[string]string) error {
	manifestsOnly := map[string]string{}
	for p, s := range files {
		if strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml") {
			manifestsOnly[p] = s
		}
	}
	hooks, mans, err := releaseutil.SortManifests(manifestsOnly, nil, releaseutil.InstallOrder)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	if len(hooks) > 0 {
		return fmt.Errorf("%w: the chart has no hooks, got %s", ErrDecode, hooks[0].Path)
	}
	for _, man := range mans {
		obj, err := DecodeStrict([]byte(man.Content))
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrDecode, man.Name, err)
		}
		if obj == nil {
			continue
		}
		m.add(obj)
	}
	return nil
}

func (m *Manifests) add(obj kruntime.Object) {
	m.Objects = append(m.Objects, obj)
	switch o := obj.(type) {
	case *appsv1.StatefulSet:
		m.StatefulSets = append(m.StatefulSets, o)
	case *corev1.Service:
		m.Services = append(m.Services, o)
	case *corev1.ConfigMap:
		m.ConfigMaps = append(m.ConfigMaps, o)
	case *corev1.Secret:
		m.Secrets = append(m.Secrets, o)
	case *policyv1.PodDisruptionBudget:
		m.PDBs = append(m.PDBs, o)
	case *unstructured.Unstructured:
		m.Unstructured = append(m.Unstructured, o)
	}
}

// unstructuredGroups are the API groups decoded as unstructured objects.
var unstructuredGroups = []string{"monitoring.coreos.com", "chaos-mesh.org"}

var strict = json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	json.SerializerOptions{Yaml: true, Strict: true})

// DecodeStrict decodes one YAML document into its k8s.io/api type, failing on unknown
// or duplicated fields. A document with no object (only comments) decodes to nil.
// Kinds of the groups with no Go types here decode as *unstructured.Unstructured.
func DecodeStrict(doc []byte) (kruntime.Object, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return nil, err
	}
	if head.APIVersion == "" && head.Kind == "" {
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			return nil, nil
		}
		return nil, errors.New("object has no apiVersion and kind")
	}
	gv, err := schema.ParseGroupVersion(head.APIVersion)
	if err != nil {
		return nil, err
	}
	if slices.Contains(unstructuredGroups, gv.Group) {
		var u unstructured.Unstructured
		if err := yaml.UnmarshalStrict(doc, &u.Object); err != nil {
			return nil, err
		}
		return &u, nil
	}
	obj, gvk, err := strict.Decode(doc, nil, nil)
	if err != nil {
		return nil, err
	}
	if gvk.Kind != head.Kind {
		return nil, fmt.Errorf("decoded %s, want %s", gvk.Kind, head.Kind)
	}
	return obj, nil
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' && string(t) != "---" {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// StatefulSet is the rendered StatefulSet of that name, or nil.
func (m *Manifests) StatefulSet(name string) *appsv1.StatefulSet { return find(m.StatefulSets, name) }

// Service is the rendered Service of that name, or nil.
func (m *Manifests) Service(name string) *corev1.Service { return find(m.Services, name) }

// ConfigMap is the rendered ConfigMap of that name, or nil.
func (m *Manifests) ConfigMap(name string) *corev1.ConfigMap { return find(m.ConfigMaps, name) }

// Secret is the rendered Secret of that name, or nil.
func (m *Manifests) Secret(name string) *corev1.Secret { return find(m.Secrets, name) }

// PDB is the rendered PodDisruptionBudget of that name, or nil.
func (m *Manifests) PDB(name string) *policyv1.PodDisruptionBudget { return find(m.PDBs, name) }

// Object is the rendered unstructured object of that kind and name, or nil.
func (m *Manifests) Object(kind, name string) *unstructured.Unstructured {
	for _, u := range m.Unstructured {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	return nil
}

type named interface{ GetName() string }

func find[T named](list []T, name string) T {
	for _, o := range list {
		if o.GetName() == name {
			return o
		}
	}
	var zero T
	return zero
}
