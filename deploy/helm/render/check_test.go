package render

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// args parses a container's --flag=value / --flag value / --bool arguments.
func args(c corev1.Container) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(c.Args); i++ {
		a := strings.TrimLeft(c.Args[i], "-")
		if k, v, ok := strings.Cut(a, "="); ok {
			out[k] = v
			continue
		}
		if i+1 < len(c.Args) && !strings.HasPrefix(c.Args[i+1], "-") {
			out[a] = c.Args[i+1]
			i++
			continue
		}
		out[a] = "true"
	}
	return out
}

func container(t *testing.T, sts *appsv1.StatefulSet, name string) corev1.Container {
	t.Helper()
	for _, c := range sts.Spec.Template.Spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("%s has no container %s", sts.Name, name)
	return corev1.Container{}
}

// port resolves a probe's port (a number or a container port name).
func port(t *testing.T, c corev1.Container, p corev1.ProbeHandler) int {
	t.Helper()
	if p.HTTPGet == nil {
		t.Fatalf("%s: probe is not an HTTP GET", c.Name)
	}
	if p.HTTPGet.Port.IntValue() != 0 {
		return p.HTTPGet.Port.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.HTTPGet.Port.String() {
			return int(cp.ContainerPort)
		}
	}
	t.Fatalf("%s: probe port %q is not a container port", c.Name, p.HTTPGet.Port.String())
	return 0
}

func containerPort(t *testing.T, c corev1.Container, name string) int {
	t.Helper()
	for _, cp := range c.Ports {
		if cp.Name == name {
			return int(cp.ContainerPort)
		}
	}
	t.Fatalf("%s has no port %s", c.Name, name)
	return 0
}

func addrPort(t *testing.T, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// env resolves the downward-API variables the way the kubelet expands $(VAR) in args.
func expand(s, pod, ns string) string {
	return strings.NewReplacer("$(POD_NAME)", pod, "$(POD_NAMESPACE)", ns).Replace(s)
}

// selects reports whether sel matches the labels.
func selects(t *testing.T, sel *metav1.LabelSelector, lbls map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	return !s.Empty() && s.Matches(labels.Set(lbls))
}

// expectation is what a rendering must show, from the values it was given.
type expectation struct {
	release, ns, fullname, domain string
	replicas, bootstrap           int
	natsURL                       string // "" : embedded
	natsReplicas                  int    // embedded servers
	streamReplicas                int
	adminScheme                   string // http, or https with coordinator.adminTLS
}

func expect(m *Manifests, o Options) expectation {
	v := m.Values
	get := func(path string) any {
		var cur any = v
		for _, k := range strings.Split(path, ".") {
			cur = cur.(map[string]any)[k]
		}
		return cur
	}
	num := func(path string) int {
		switch n := get(path).(type) {
		case int:
			return n
		case int64:
			return int(n)
		case float64:
			return int(n)
		}
		panic(fmt.Sprintf("%s: %T", path, get(path)))
	}
	e := expectation{release: o.ReleaseName, ns: o.Namespace, domain: get("clusterDomain").(string),
		replicas: num("coordinator.replicas"), bootstrap: num("coordinator.bootstrapReplicas"),
		natsURL: get("nats.url").(string)}
	e.adminScheme = "http"
	if get("coordinator.adminTLS.enabled").(bool) {
		e.adminScheme = "https"
	}
	if e.release == "" {
		e.release = DefaultReleaseName
	}
	if e.ns == "" {
		e.ns = DefaultNamespace
	}
	e.fullname = e.release
	if !strings.Contains(e.release, "shardmatch") {
		e.fullname += "-shardmatch"
	}
	if e.natsURL == "" {
		e.natsReplicas = num("nats.embedded.replicas")
		e.streamReplicas = e.natsReplicas
	} else {
		e.streamReplicas = num("nats.streamReplicas")
	}
	return e
}

// checkCoordinator asserts the coordinator StatefulSet, its Services and its PDB.
func checkCoordinator(t *testing.T, m *Manifests, e expectation) {
	t.Helper()
	name := e.fullname + "-coordinator"
	sts := m.StatefulSet(name)
	if sts == nil {
		t.Fatalf("no StatefulSet %s", name)
	}
	if got := int(*sts.Spec.Replicas); got != e.replicas {
		t.Errorf("replicas %d, want %d", got, e.replicas)
	}
	if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy %s: the bootstrap nodes must start together", sts.Spec.PodManagementPolicy)
	}
	if p := sts.Spec.PersistentVolumeClaimRetentionPolicy; p == nil || p.WhenScaled != appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
		t.Errorf("persistentVolumeClaimRetentionPolicy %+v: whenScaled must be Delete", p)
	}
	tpl := sts.Spec.Template
	if !selects(t, sts.Spec.Selector, tpl.Labels) {
		t.Errorf("the StatefulSet's selector does not select its own pods")
	}
	for k, want := range map[string]string{"app.kubernetes.io/name": "shardmatch", "app.kubernetes.io/instance": e.release, "app.kubernetes.io/component": "coordinator"} {
		if tpl.Labels[k] != want {
			t.Errorf("pod label %s = %q, want %q", k, tpl.Labels[k], want)
		}
	}

	// The headless Service gives each pod the DNS name the peers use.
	hs := m.Service(sts.Spec.ServiceName)
	if hs == nil {
		t.Fatalf("no headless Service %s", sts.Spec.ServiceName)
	}
	if hs.Name != e.fullname+"-coordinator-headless" || hs.Spec.ClusterIP != corev1.ClusterIPNone || !hs.Spec.PublishNotReadyAddresses {
		t.Errorf("headless Service %s: clusterIP %q, publishNotReadyAddresses %v", hs.Name, hs.Spec.ClusterIP, hs.Spec.PublishNotReadyAddresses)
	}
	if !selects(t, &metav1.LabelSelector{MatchLabels: hs.Spec.Selector}, tpl.Labels) {
		t.Errorf("the headless Service does not select the coordinator pods")
	}
	c := container(t, sts, "coordinator")
	if !slices.Equal(c.Command, []string{"/usr/local/bin/coordinator", "serve"}) {
		t.Errorf("command %v", c.Command)
	}
	a := args(c)
	raftPort, adminPort := containerPort(t, c, "raft"), containerPort(t, c, "admin")
	dns := func(i int) string {
		return fmt.Sprintf("%s-%d.%s.%s.svc.%s", name, i, hs.Name, e.ns, e.domain)
	}
	var peers, join []string
	for i := range e.bootstrap {
		peers = append(peers, fmt.Sprintf("%s-%d=%s:%d", name, i, dns(i), raftPort))
		join = append(join, fmt.Sprintf("%s://%s:%d", e.adminScheme, dns(i), adminPort))
	}
	if a["peers"] != strings.Join(peers, ",") {
		t.Errorf("--peers\n got %s\nwant %s", a["peers"], strings.Join(peers, ","))
	}
	if a["join"] != strings.Join(join, ",") {
		t.Errorf("--join\n got %s\nwant %s", a["join"], strings.Join(join, ","))
	}
	if a["bootstrap"] != "true" || a["id"] != "$(POD_NAME)" {
		t.Errorf("--bootstrap %q --id %q", a["bootstrap"], a["id"])
	}
	// Each pod advertises exactly the address its peers list for it.
	for i := range e.replicas {
		pod := fmt.Sprintf("%s-%d", name, i)
		adv := expand(a["raft-advertise"], pod, e.ns)
		if adv != fmt.Sprintf("%s:%d", dns(i), raftPort) {
			t.Errorf("pod %s advertises %s, want %s:%d", pod, adv, dns(i), raftPort)
		}
		if i < e.bootstrap && !strings.Contains(a["peers"], pod+"="+adv) {
			t.Errorf("pod %s's advertised address %s is not its --peers entry", pod, adv)
		}
		// A follower's NOT_LEADER names the leader by this URL; the CLI and the console
		// follow it, so it must be the pod's own stable name with the admin scheme.
		if u, want := expand(a["admin-advertise-url"], pod, e.ns), fmt.Sprintf("%s://%s:%d", e.adminScheme, dns(i), adminPort); u != want {
			t.Errorf("pod %s advertises admin URL %q, want %q", pod, u, want)
		}
	}
	for _, p := range []int{raftPort, adminPort} {
		if !slices.ContainsFunc(hs.Spec.Ports, func(sp corev1.ServicePort) bool { return int(sp.Port) == p }) {
			t.Errorf("the headless Service lacks port %d (peers and --join dial it)", p)
		}
	}
	if addrPort(t, a["raft-addr"]) != raftPort || addrPort(t, a["admin-addr"]) != adminPort {
		t.Errorf("--raft-addr %s / --admin-addr %s do not match the container ports %d / %d", a["raft-addr"], a["admin-addr"], raftPort, adminPort)
	}

	// Probes: real paths on the admin port serve listens on.
	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{{"startup", c.StartupProbe, "/healthz"}, {"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil {
			t.Errorf("no %s probe", p.what)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || port(t, c, p.probe.ProbeHandler) != adminPort {
			t.Errorf("%s probe GET %s on port %d, want %s on %d (--admin-addr)", p.what, p.probe.HTTPGet.Path, port(t, c, p.probe.ProbeHandler), p.path, adminPort)
		}
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil ||
		!slices.Equal(c.Lifecycle.PreStop.Exec.Command[:2], []string{"/usr/local/bin/coordinator", "prestop"}) {
		t.Errorf("preStop %+v, want exec coordinator prestop", c.Lifecycle)
	}
	if g := tpl.Spec.TerminationGracePeriodSeconds; g == nil || *g < 30 {
		t.Errorf("terminationGracePeriodSeconds %v, want >= 30", g)
	}

	// Storage and files where the args say.
	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.Name] = vm
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.VolumeClaimTemplates[0].Name != "data" || mounts["data"].MountPath != a["data"] {
		t.Errorf("the Raft PVC is not mounted at --data %s", a["data"])
	}
	if mounts["config"].MountPath != a["config"] {
		t.Errorf("--config %s is not where the ConfigMap is mounted (%s)", a["config"], mounts["config"].MountPath)
	}
	if pb, ok := a["policy-bundle"]; ok && mounts["policy"].MountPath != pb {
		t.Errorf("--policy-bundle %s is not where the policy ConfigMap is mounted (%s)", pb, mounts["policy"].MountPath)
	}
	if a["stream-replicas"] != strconv.Itoa(e.streamReplicas) {
		t.Errorf("--stream-replicas %s, want %d", a["stream-replicas"], e.streamReplicas)
	}
	checkHardening(t, sts)

	// The admin Service and the PDB.
	if svc := m.Service(name); svc == nil || !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, tpl.Labels) {
		t.Errorf("admin Service %s missing or not selecting the coordinators", name)
	}
	pdb := m.PDB(name)
	if pdb == nil {
		t.Fatalf("no PDB %s", name)
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PDB maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
	}
	for _, other := range m.StatefulSets {
		if got, want := selects(t, pdb.Spec.Selector, other.Spec.Template.Labels), other.Name == name; got != want {
			t.Errorf("PDB %s selects the pods of %s: %v, want %v", pdb.Name, other.Name, got, want)
		}
	}
	if !maps.Equal(pdb.Spec.Selector.MatchLabels, sts.Spec.Selector.MatchLabels) {
		t.Errorf("PDB selector %v != StatefulSet selector %v", pdb.Spec.Selector.MatchLabels, sts.Spec.Selector.MatchLabels)
	}
}

// checkHardening: non-root 65532, read-only root, no capabilities, seccomp, no token.
func checkHardening(t *testing.T, sts *appsv1.StatefulSet) {
	t.Helper()
	ps := sts.Spec.Template.Spec
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Errorf("%s mounts a service-account token", sts.Name)
	}
	if sc := ps.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s pod securityContext %+v", sts.Name, sc)
	}
	for _, c := range ps.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 ||
			sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
			t.Errorf("%s/%s securityContext %+v", sts.Name, c.Name, sc)
		}
	}
}

// checkNATS asserts the coordinators' NATS URLs and, when embedded, the NATS StatefulSet.
func checkNATS(t *testing.T, m *Manifests, e expectation) {
	t.Helper()
	coord := args(container(t, m.StatefulSet(e.fullname+"-coordinator"), "coordinator"))
	name := e.fullname + "-nats"
	sts := m.StatefulSet(name)
	if e.natsURL != "" {
		if coord["nats-url"] != e.natsURL {
			t.Errorf("--nats-url %s, want nats.url %s", coord["nats-url"], e.natsURL)
		}
		if sts != nil {
			t.Errorf("embedded NATS rendered with nats.url set")
		}
		return
	}
	if sts == nil {
		t.Fatalf("no StatefulSet %s", name)
	}
	if int(*sts.Spec.Replicas) != e.natsReplicas {
		t.Errorf("NATS replicas %d, want %d", *sts.Spec.Replicas, e.natsReplicas)
	}
	hs := m.Service(sts.Spec.ServiceName)
	if hs == nil || hs.Name != name+"-headless" || hs.Spec.ClusterIP != corev1.ClusterIPNone || !hs.Spec.PublishNotReadyAddresses ||
		!selects(t, &metav1.LabelSelector{MatchLabels: hs.Spec.Selector}, sts.Spec.Template.Labels) {
		t.Fatalf("NATS headless Service %v wrong", hs)
	}
	c := container(t, sts, "nats")
	a := args(c)
	client, cluster, monitor := containerPort(t, c, "client"), containerPort(t, c, "cluster"), containerPort(t, c, "monitor")
	var urls, routes []string
	for i := range e.natsReplicas {
		dns := fmt.Sprintf("%s-%d.%s.%s.svc.%s", name, i, hs.Name, e.ns, e.domain)
		urls = append(urls, fmt.Sprintf("nats://%s:%d", dns, client))
		routes = append(routes, fmt.Sprintf("nats://%s:%d", dns, cluster))
	}
	if coord["nats-url"] != strings.Join(urls, ",") {
		t.Errorf("--nats-url\n got %s\nwant %s", coord["nats-url"], strings.Join(urls, ","))
	}
	if a["name"] != "$(POD_NAME)" || addrPort(t, a["addr"]) != client || addrPort(t, a["monitor-addr"]) != monitor || a["store"] == "" {
		t.Errorf("nats args %v", c.Args)
	}
	if e.natsReplicas > 1 {
		if a["routes"] != strings.Join(routes, ",") || addrPort(t, a["cluster-addr"]) != cluster || a["cluster-name"] == "" {
			t.Errorf("nats cluster args %v, want routes %s", c.Args, strings.Join(routes, ","))
		}
		if m.PDB(name) == nil {
			t.Errorf("a NATS cluster of 3 has no PDB")
		}
	} else if _, ok := a["routes"]; ok {
		t.Errorf("a single NATS server has routes: %v", c.Args)
	}
	for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
		if p == nil || p.HTTPGet.Path != "/healthz?js-enabled-only=true" || port(t, c, p.ProbeHandler) != monitor {
			t.Errorf("NATS probe %+v, want /healthz?js-enabled-only=true on the monitor port %d", p, monitor)
		}
	}
	checkHardening(t, sts)
}

// checkReferences: every Secret and ConfigMap a pod uses is rendered (with the key
// used) or is one the values name as supplied (existingSecret, existingConfigMap).
func checkReferences(t *testing.T, m *Manifests) {
	t.Helper()
	supplied := suppliedNames(m.Values)
	secret := func(where, name, key string) {
		if s := m.Secret(name); s != nil {
			_, inData := s.Data[key]
			_, inString := s.StringData[key]
			if key != "" && !inData && !inString {
				t.Errorf("%s: Secret %s has no key %s", where, name, key)
			}
			return
		}
		if !supplied[name] {
			t.Errorf("%s: Secret %s is neither rendered nor a documented existing* value", where, name)
		}
	}
	configMap := func(where, name, key string) {
		if c := m.ConfigMap(name); c != nil {
			if _, ok := c.Data[key]; key != "" && !ok {
				t.Errorf("%s: ConfigMap %s has no key %s", where, name, key)
			}
			return
		}
		if !supplied[name] {
			t.Errorf("%s: ConfigMap %s is neither rendered nor a documented existing* value", where, name)
		}
	}
	for _, sts := range m.StatefulSets {
		ps := sts.Spec.Template.Spec
		vols := map[string]bool{}
		for _, v := range ps.Volumes {
			vols[v.Name] = true
			where := sts.Name + " volume " + v.Name
			switch {
			case v.Secret != nil:
				secret(where, v.Secret.SecretName, "")
				for _, it := range v.Secret.Items {
					secret(where, v.Secret.SecretName, it.Key)
				}
			case v.ConfigMap != nil:
				configMap(where, v.ConfigMap.Name, "")
				for _, it := range v.ConfigMap.Items {
					configMap(where, v.ConfigMap.Name, it.Key)
				}
			case v.Projected != nil:
				t.Errorf("%s: projected volumes are not checked here", where)
			}
		}
		for _, c := range append(ps.InitContainers, ps.Containers...) {
			for _, vm := range c.VolumeMounts {
				if !vols[vm.Name] && !slices.ContainsFunc(sts.Spec.VolumeClaimTemplates, func(p corev1.PersistentVolumeClaim) bool { return p.Name == vm.Name }) {
					t.Errorf("%s/%s mounts volume %s, which does not exist", sts.Name, c.Name, vm.Name)
				}
				if vm.SubPath != "" {
					for _, v := range ps.Volumes {
						if v.Name == vm.Name && v.ConfigMap != nil {
							configMap(sts.Name+" subPath", v.ConfigMap.Name, vm.SubPath)
						}
					}
				}
			}
			for _, ev := range c.Env {
				if ev.ValueFrom == nil {
					continue
				}
				if r := ev.ValueFrom.SecretKeyRef; r != nil {
					secret(sts.Name+" env "+ev.Name, r.Name, r.Key)
				}
				if r := ev.ValueFrom.ConfigMapKeyRef; r != nil {
					configMap(sts.Name+" env "+ev.Name, r.Name, r.Key)
				}
			}
			for _, ef := range c.EnvFrom {
				if ef.SecretRef != nil {
					secret(sts.Name+" envFrom", ef.SecretRef.Name, "")
				}
				if ef.ConfigMapRef != nil {
					configMap(sts.Name+" envFrom", ef.ConfigMapRef.Name, "")
				}
			}
		}
	}
}

// suppliedNames are the Secret and ConfigMap names the values say the user supplies;
// the chart's README documents each of these values.
func suppliedNames(v map[string]any) map[string]bool {
	out := map[string]bool{}
	for _, path := range SuppliedValues {
		cur := any(v)
		for _, k := range strings.Split(path, ".") {
			mp, _ := cur.(map[string]any)
			cur = mp[k]
		}
		if s, _ := cur.(string); s != "" {
			out[s] = true
		}
	}
	return out
}

// checkLabels: every object carries the release's labels.
func checkLabels(t *testing.T, m *Manifests, e expectation) {
	t.Helper()
	for _, o := range m.Objects {
		acc, err := meta.Accessor(o)
		if err != nil {
			t.Fatal(err)
		}
		l := acc.GetLabels()
		if l["app.kubernetes.io/instance"] != e.release && l["app.kubernetes.io/part-of"] != "shardmatch" {
			t.Errorf("%s has neither the instance label nor part-of: %v", acc.GetName(), l)
		}
	}
}
