package render

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shardmatch/shardmatch/coordinator"

	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// cases are the renderings every test runs over: the defaults and each values file
// in deploy/helm/testdata, under two release names.
func cases(t *testing.T) []Options {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(TestdataDir(), "*.yaml"))
	if err != nil || len(files) < 5 {
		t.Fatalf("testdata: %v (%d files, want >= 5)", err, len(files))
	}
	out := []Options{{}, {ReleaseName: "prod", Namespace: "games"}}
	for _, f := range files {
		out = append(out, Options{ReleaseName: "sm", Namespace: "games", ValuesFiles: []string{f}})
	}
	return out
}

func caseName(o Options) string {
	if len(o.ValuesFiles) == 0 {
		return "defaults-" + o.ReleaseName
	}
	return strings.TrimSuffix(filepath.Base(o.ValuesFiles[0]), ".yaml")
}

// TestLint runs Helm's linter (the `helm lint` rules) with the defaults and every
// values file: no errors.
func TestLint(t *testing.T) {
	for _, o := range cases(t) {
		vals, err := MergeValues(o.ValuesFiles, o.Values)
		if err != nil {
			t.Fatal(err)
		}
		l := lint.AllWithKubeVersionAndSchemaValidation(ChartDir(), vals, "games", nil, false)
		for _, msg := range l.Messages {
			if msg.Severity >= support.WarningSev {
				t.Errorf("%s: %s", caseName(o), msg)
			}
		}
	}
}

// TestRenderEveryCase renders each case (Render decodes every object strictly into
// k8s.io/api types, so an unknown field fails here) and asserts what matters.
func TestRenderEveryCase(t *testing.T) {
	for _, o := range cases(t) {
		t.Run(caseName(o), func(t *testing.T) {
			m, err := Render(o)
			if err != nil {
				t.Fatal(err)
			}
			e := expect(m, o)
			checkCoordinator(t, m, e)
			checkNATS(t, m, e)
			checkReferences(t, m)
			checkLabels(t, m, e)
			checkShards(t, m, e)
			checkMonitoring(t, m, e)
			checkChaos(t, m, e)
			for _, p := range securityProblems(m, e) {
				t.Error(p)
			}
			if !strings.Contains(m.Files["shardmatch/templates/NOTES.txt"], "kubectl") {
				t.Errorf("NOTES.txt does not tell how to check the install")
			}
		})
	}
}

// TestTestdataCovers: the values files cover the installs the issue names.
func TestTestdataCovers(t *testing.T) {
	seen := map[string]bool{}
	for _, o := range cases(t)[2:] {
		m, err := Render(o)
		if err != nil {
			t.Fatal(err)
		}
		e := expect(m, o)
		c := args(container(t, m.StatefulSet(e.fullname+"-coordinator"), "coordinator"))
		seen["external NATS with TLS"] = seen["external NATS with TLS"] || (e.natsURL != "" && c["nats-tls-ca"] != "")
		seen["embedded NATS cluster of 3"] = seen["embedded NATS cluster of 3"] || e.natsReplicas == 3
		seen["5 coordinators"] = seen["5 coordinators"] || e.replicas == 5
		seen["monitoring on"] = seen["monitoring on"] || m.Object("ServiceMonitor", e.fullname+"-coordinator") != nil
		seen["security on"] = seen["security on"] || (c["admin-tls-cert"] != "" && c["raft-tls-cert"] != "" && c["command-signing-key"] != "")
		seen["chaos on"] = seen["chaos on"] || slices.ContainsFunc(m.Unstructured, func(u *unstructured.Unstructured) bool { return u.GroupVersionKind().Group == "chaos-mesh.org" })
	}
	for _, what := range []string{"external NATS with TLS", "embedded NATS cluster of 3", "5 coordinators", "monitoring on", "chaos on", "security on"} {
		if !seen[what] {
			t.Errorf("no values file in deploy/helm/testdata renders %s", what)
		}
	}
}

func coordinatorTemplate(t *testing.T, values map[string]any) *appsv1.StatefulSet {
	t.Helper()
	m, err := Render(Options{Values: values})
	if err != nil {
		t.Fatal(err)
	}
	return m.StatefulSet("shardmatch-coordinator")
}

// TestChecksumFollowsSettingsNotPolicy: a settings change changes the pods' checksum
// annotation (and so rolls them); a policy change does not (it is hot-reloaded).
func TestChecksumFollowsSettingsNotPolicy(t *testing.T) {
	const key = "checksum/config"
	policy := func(rule string) map[string]any {
		return map[string]any{"policy": map[string]any{"bundle": map[string]any{"match.rego": "package shardmatch.match\n" + rule}}}
	}
	base := coordinatorTemplate(t, policy("default allow := true\n"))
	settings := coordinatorTemplate(t, mergeMaps(policy("default allow := true\n"),
		map[string]any{"coordinator": map[string]any{"config": map[string]any{"logLevel": "debug"}}}))
	extra := coordinatorTemplate(t, mergeMaps(policy("default allow := true\n"),
		map[string]any{"coordinator": map[string]any{"config": map[string]any{"extra": map[string]any{"policy-timeout": "1s"}}}}))
	newPolicy := coordinatorTemplate(t, policy("default allow := false\n"))
	sum := base.Spec.Template.Annotations[key]
	if sum == "" {
		t.Fatal("no checksum annotation")
	}
	if settings.Spec.Template.Annotations[key] == sum || extra.Spec.Template.Annotations[key] == sum {
		t.Errorf("a settings change kept the checksum %s", sum)
	}
	if !equality.Semantic.DeepEqual(base.Spec.Template, newPolicy.Spec.Template) {
		t.Errorf("a policy change changed the pod template (it must hot-reload, not roll the pods)")
	}
	m, err := Render(Options{Values: policy("default allow := false\n")})
	if err != nil {
		t.Fatal(err)
	}
	if cm := m.ConfigMap("shardmatch-policy"); cm == nil || !strings.Contains(cm.Data["match.rego"], "allow := false") {
		t.Errorf("the policy ConfigMap does not hold the bundle: %v", cm)
	}
}

// TestScalingKeepsPodTemplate: replicas 3 -> 5 changes the replica count only, so no
// pod restarts and the bootstrap peer list stays the same.
func TestScalingKeepsPodTemplate(t *testing.T) {
	three := coordinatorTemplate(t, nil)
	five := coordinatorTemplate(t, map[string]any{"coordinator": map[string]any{"replicas": 5}})
	if *three.Spec.Replicas != 3 || *five.Spec.Replicas != 5 {
		t.Fatalf("replicas %d, %d", *three.Spec.Replicas, *five.Spec.Replicas)
	}
	if !equality.Semantic.DeepEqual(three.Spec.Template, five.Spec.Template) {
		t.Errorf("scaling 3 -> 5 changed the pod template")
	}
	if !equality.Semantic.DeepEqual(three.Spec.VolumeClaimTemplates, five.Spec.VolumeClaimTemplates) {
		t.Errorf("scaling 3 -> 5 changed the volume claim templates (the API server refuses that)")
	}
}

// TestServeConfigFile: the ConfigMap is serve's `key = value` file with quoted values.
func TestServeConfigFile(t *testing.T) {
	m, err := Render(Options{Values: map[string]any{"coordinator": map[string]any{"config": map[string]any{
		"prepareTimeout": "3s", "extra": map[string]any{"no-policy": true}}}}})
	if err != nil {
		t.Fatal(err)
	}
	conf := m.ConfigMap("shardmatch-config").Data["serve.conf"]
	for _, want := range []string{`prepare-timeout = "3s"`, `retention = "10m"`, `no-policy = "true"`, `log-level = "info"`} {
		if !slices.Contains(strings.Split(conf, "\n"), want) {
			t.Errorf("serve.conf lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "prefix") {
		t.Errorf("an empty setting was written (serve's default must apply):\n%s", conf)
	}
}

func checkShards(t *testing.T, m *Manifests, e expectation) {
	t.Helper()
	sts := m.StatefulSet(e.fullname + "-shard")
	if sts == nil {
		return
	}
	c := container(t, sts, "shardsvc")
	a := args(c)
	coord := args(container(t, m.StatefulSet(e.fullname+"-coordinator"), "coordinator"))
	if a["id"] != "$(POD_NAME)" || a["nats-url"] != coord["nats-url"] {
		t.Errorf("shard args %v", c.Args)
	}
	if peers := a["peer-shards"]; peers != "" {
		for i := range int(*sts.Spec.Replicas) {
			if !slices.Contains(strings.Split(peers, ","), sts.Name+"-"+strconv.Itoa(i)) {
				t.Errorf("--peer-shards %s lacks pod %d", peers, i)
			}
		}
	}
	checkHardening(t, sts)
}

func checkMonitoring(t *testing.T, m *Manifests, e expectation) {
	t.Helper()
	sts := m.StatefulSet(e.fullname + "-coordinator")
	if sts.Spec.Template.Annotations["prometheus.io/scrape"] == "true" &&
		sts.Spec.Template.Annotations["prometheus.io/port"] != "8080" {
		t.Errorf("prometheus.io/port %s is not the admin port", sts.Spec.Template.Annotations["prometheus.io/port"])
	}
	if sm := m.Object("ServiceMonitor", e.fullname+"-coordinator"); sm != nil {
		sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
		var matched []string
		for _, svc := range m.Services {
			if selects(t, &metav1.LabelSelector{MatchLabels: sel}, svc.Labels) {
				matched = append(matched, svc.Name)
			}
		}
		if !slices.Equal(matched, []string{e.fullname + "-coordinator-headless"}) {
			t.Errorf("the ServiceMonitor selects Services %v, want only the headless one (every node scraped)", matched)
		}
		eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		if len(eps) != 1 {
			t.Fatalf("ServiceMonitor endpoints %v", eps)
		}
		ep := eps[0].(map[string]any)
		if ep["port"] != "admin" || ep["path"] != "/metrics" {
			t.Errorf("ServiceMonitor endpoint %v", ep)
		}
		ns, _, _ := unstructured.NestedStringSlice(sm.Object, "spec", "namespaceSelector", "matchNames")
		if !slices.Equal(ns, []string{e.ns}) {
			t.Errorf("ServiceMonitor namespaces %v, want [%s]", ns, e.ns)
		}
	}
	if cm := m.ConfigMap(e.fullname + "-dashboard"); cm != nil {
		if cm.Labels["grafana_dashboard"] != "1" {
			t.Errorf("dashboard ConfigMap labels %v", cm.Labels)
		}
		var d map[string]any
		if err := json.Unmarshal([]byte(cm.Data["shardmatch.json"]), &d); err != nil || d["uid"] != "shardmatch" {
			t.Errorf("dashboard JSON: %v", err)
		}
	}
}

// checkChaos: every Chaos Mesh selector is scoped to the release and names pods and
// components the rendering has.
func checkChaos(t *testing.T, m *Manifests, e expectation) {
	t.Helper()
	pods := map[string]bool{}
	comps := map[string]bool{}
	for _, sts := range m.StatefulSets {
		comps[sts.Spec.Template.Labels["app.kubernetes.io/component"]] = true
		for i := range int(*sts.Spec.Replicas) {
			pods[sts.Name+"-"+strconv.Itoa(i)] = true
		}
	}
	n := 0
	for _, u := range m.Unstructured {
		if u.GroupVersionKind().Group != "chaos-mesh.org" {
			continue
		}
		n++
		if u.GetNamespace() != e.ns {
			t.Errorf("%s %s in namespace %q, want %q", u.GetKind(), u.GetName(), u.GetNamespace(), e.ns)
		}
		walkSelectors(u.Object, func(sel map[string]any) {
			ls, _ := sel["labelSelectors"].(map[string]any)
			if ls["app.kubernetes.io/instance"] != e.release {
				t.Errorf("%s %s: selector not scoped to release %s: %v", u.GetKind(), u.GetName(), e.release, sel)
			}
			if ns, _ := sel["namespaces"].([]any); len(ns) != 1 || ns[0] != e.ns {
				t.Errorf("%s %s: selector namespaces %v", u.GetKind(), u.GetName(), ns)
			}
			check := func(key string, v any) {
				s, _ := v.(string)
				switch key {
				case "statefulset.kubernetes.io/pod-name":
					if !pods[s] {
						t.Errorf("%s %s selects pod %s, which the release does not have", u.GetKind(), u.GetName(), s)
					}
				case "app.kubernetes.io/component":
					if !comps[s] {
						t.Errorf("%s %s selects component %s", u.GetKind(), u.GetName(), s)
					}
				}
			}
			for k, v := range ls {
				check(k, v)
			}
			exprs, _ := sel["expressionSelectors"].([]any)
			for _, x := range exprs {
				xm := x.(map[string]any)
				vals, _ := xm["values"].([]any)
				for _, v := range vals {
					check(xm["key"].(string), v)
				}
			}
		})
	}
	if enabled, _ := m.Values["chaosMesh"].(map[string]any)["enabled"].(bool); enabled && n == 0 {
		t.Errorf("chaosMesh.enabled rendered no experiment")
	} else if !enabled && n > 0 {
		t.Errorf("chaosMesh disabled rendered %d experiments", n)
	}
}

// walkSelectors calls f on every Chaos Mesh pod selector ("selector" maps) in v.
func walkSelectors(v any, f func(map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if sel, ok := c.(map[string]any); ok && k == "selector" {
				f(sel)
				continue
			}
			walkSelectors(c, f)
		}
	case []any:
		for _, c := range x {
			walkSelectors(c, f)
		}
	}
}

// TestRaftTimingMatchesServe: the chart's default Raft timeouts are serve's own
// defaults (coordinator.DefaultHeartbeatTimeout, DefaultElectionTimeout), so a change
// to one that forgets the other fails here instead of running two timings.
func TestRaftTimingMatchesServe(t *testing.T) {
	m, err := Render(Options{})
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Split(m.ConfigMap("shardmatch-config").Data["serve.conf"], "\n")
	for key, want := range map[string]time.Duration{
		"raft-heartbeat-timeout": coordinator.DefaultHeartbeatTimeout,
		"raft-election-timeout":  coordinator.DefaultElectionTimeout,
	} {
		var got time.Duration
		for _, line := range conf {
			if k, v, ok := strings.Cut(line, " = "); ok && k == key {
				if got, err = time.ParseDuration(strings.Trim(v, `"`)); err != nil {
					t.Fatalf("%s: %v", line, err)
				}
			}
		}
		if got != want {
			t.Errorf("chart %s %v, serve's default %v", key, got, want)
		}
	}
}
