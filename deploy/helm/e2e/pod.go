package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Facts are what the kubelet knows about the cluster when it starts a pod: the
// namespace's ConfigMaps, Secrets and Services (for env references, volumes and the
// service-link variables), and the node the pod runs on.
type Facts struct {
	Namespace     string
	ClusterDomain string // "cluster.local" if empty
	NodeName      string
	HostIP        netip.Addr
	ConfigMaps    map[string]*corev1.ConfigMap
	Secrets       map[string]*corev1.Secret
	// Services of the namespace, with the virtual ClusterIP each non-headless one
	// was given (the kubelet's service-link variables name it).
	Services   []*corev1.Service
	ServiceIPs map[string]netip.Addr
	// NodeCPUs and NodeMemory stand for the node's allocatable resources, which a
	// resourceFieldRef on a limit the container does not set resolves to.
	NodeCPUs   int
	NodeMemory int64
}

func (f *Facts) domain() string {
	if f.ClusterDomain == "" {
		return "cluster.local"
	}
	return f.ClusterDomain
}

// PodPlan is one StatefulSet replica resolved the way the StatefulSet controller
// creates its Pod and the kubelet starts its containers: names, labels, the
// containers' argv and environment, probes, hooks, and security settings.
type PodPlan struct {
	Name, Namespace    string
	StatefulSet        string
	Ordinal            int
	Hostname           string // the pod's hostname: its name
	Subdomain          string // sts.Spec.ServiceName
	IP                 netip.Addr
	Labels             map[string]string
	Annotations        map[string]string
	Revision           string // hash of the pod template, as controller-revision-hash
	Init               []*ContainerPlan
	Main               *ContainerPlan
	Volumes            []corev1.Volume
	Claims             []string // volumeClaimTemplates' names: PVC "<claim>-<pod>"
	TerminationGrace   time.Duration
	ShareProcessNS     bool
	FSGroup            *int64
	AutomountSAToken   bool
	ServiceAccountName string
}

// FQDN is the pod's DNS name through its StatefulSet's governing Service.
func (p *PodPlan) FQDN(domain string) string {
	return fmt.Sprintf("%s.%s.%s.svc.%s", p.Name, p.Subdomain, p.Namespace, domain)
}

// ContainerPlan is one container of a PodPlan, ready to exec.
type ContainerPlan struct {
	Name   string
	Image  string
	Argv   []string // command + args, $(VAR)-expanded
	Env    []string // KEY=VALUE, later entries win, as the runtime passes them
	Mounts []corev1.VolumeMount
	// Probes; nil if the container has none.
	Startup, Readiness, Liveness *Probe
	PreStop                      []string // exec preStop hook, expanded; nil if none
	WorkingDir                   string
	RunAsUser, RunAsGroup        *int64
	ReadOnlyRoot                 bool
}

// Lookup returns an environment variable of the container.
func (c *ContainerPlan) Lookup(key string) (string, bool) {
	for _, kv := range slices.Backward(c.Env) {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v, true
		}
	}
	return "", false
}

// Probe is a resolved probe: an HTTP GET, a TCP connect or an exec, with the
// kubelet's timing (defaults applied).
type Probe struct {
	HTTPPath, Scheme string
	HTTPHeaders      map[string]string
	Port             int    // HTTP or TCP port
	Host             string // empty: the pod IP
	Exec             []string
	InitialDelay     time.Duration
	Period           time.Duration
	Timeout          time.Duration
	SuccessThreshold int
	FailureThreshold int
}

// PodName is the name the StatefulSet controller gives replica ordinal.
func PodName(sts *appsv1.StatefulSet, ordinal int) string {
	return fmt.Sprintf("%s-%d", sts.Name, ordinal)
}

// TemplateRevision hashes a pod template: two templates with one revision make the
// same pods, so a rolling update replaces exactly the pods whose revision differs.
func TemplateRevision(t *corev1.PodTemplateSpec) string {
	b, _ := json.Marshal(t)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:5])
}

// PlanPod resolves replica ordinal of sts with pod IP ip.
func PlanPod(sts *appsv1.StatefulSet, ordinal int, ip netip.Addr, f *Facts) (*PodPlan, error) {
	t := sts.Spec.Template
	name := PodName(sts, ordinal)
	p := &PodPlan{Name: name, Namespace: f.Namespace, StatefulSet: sts.Name, Ordinal: ordinal, Hostname: name,
		Subdomain: sts.Spec.ServiceName, IP: ip, Revision: TemplateRevision(&t),
		Labels: map[string]string{}, Annotations: map[string]string{}, Volumes: t.Spec.Volumes,
		TerminationGrace: 30 * time.Second}
	for k, v := range t.Labels {
		p.Labels[k] = v
	}
	for k, v := range t.Annotations {
		p.Annotations[k] = v
	}
	p.Labels["statefulset.kubernetes.io/pod-name"] = name
	p.Labels["apps.kubernetes.io/pod-index"] = strconv.Itoa(ordinal)
	p.Labels["controller-revision-hash"] = sts.Name + "-" + p.Revision
	if g := t.Spec.TerminationGracePeriodSeconds; g != nil {
		p.TerminationGrace = time.Duration(*g) * time.Second
	}
	for _, c := range sts.Spec.VolumeClaimTemplates {
		p.Claims = append(p.Claims, c.Name)
	}
	p.AutomountSAToken = t.Spec.AutomountServiceAccountToken == nil || *t.Spec.AutomountServiceAccountToken
	p.ServiceAccountName = t.Spec.ServiceAccountName
	if p.ServiceAccountName == "" {
		p.ServiceAccountName = "default"
	}
	var podSec corev1.PodSecurityContext
	if t.Spec.SecurityContext != nil {
		podSec = *t.Spec.SecurityContext
	}
	p.FSGroup = podSec.FSGroup
	if len(t.Spec.Containers) != 1 {
		return nil, fmt.Errorf("e2e: %s: %d containers; this runner runs pods of one container (plus init containers)", sts.Name, len(t.Spec.Containers))
	}
	var err error
	for i := range t.Spec.InitContainers {
		c, err := planContainer(p, &t.Spec.InitContainers[i], &podSec, &t.Spec, f)
		if err != nil {
			return nil, err
		}
		p.Init = append(p.Init, c)
	}
	if p.Main, err = planContainer(p, &t.Spec.Containers[0], &podSec, &t.Spec, f); err != nil {
		return nil, err
	}
	for _, m := range p.Main.Mounts {
		if !slices.ContainsFunc(p.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) &&
			!slices.Contains(p.Claims, m.Name) {
			return nil, fmt.Errorf("e2e: %s: container mounts volume %q, which the pod does not define", name, m.Name)
		}
	}
	return p, nil
}

func planContainer(p *PodPlan, c *corev1.Container, podSec *corev1.PodSecurityContext, spec *corev1.PodSpec, f *Facts) (*ContainerPlan, error) {
	cp := &ContainerPlan{Name: c.Name, Image: c.Image, Mounts: c.VolumeMounts, WorkingDir: c.WorkingDir,
		RunAsUser: podSec.RunAsUser, RunAsGroup: podSec.RunAsGroup}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			cp.RunAsUser = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			cp.RunAsGroup = sc.RunAsGroup
		}
		cp.ReadOnlyRoot = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
	}
	env, err := containerEnv(p, c, spec, f)
	if err != nil {
		return nil, fmt.Errorf("e2e: %s/%s: %w", p.Name, c.Name, err)
	}
	cp.Env = env
	look := cp.Lookup
	for _, a := range c.Command {
		cp.Argv = append(cp.Argv, Expand(a, look))
	}
	for _, a := range c.Args {
		cp.Argv = append(cp.Argv, Expand(a, look))
	}
	if len(cp.Argv) == 0 || len(c.Command) == 0 {
		return nil, fmt.Errorf("e2e: %s/%s: no command: this runner has no image ENTRYPOINT to fall back on", p.Name, c.Name)
	}
	for _, pr := range []struct {
		in  *corev1.Probe
		out **Probe
	}{{c.StartupProbe, &cp.Startup}, {c.ReadinessProbe, &cp.Readiness}, {c.LivenessProbe, &cp.Liveness}} {
		if pr.in == nil {
			continue
		}
		if *pr.out, err = planProbe(pr.in, c, look); err != nil {
			return nil, fmt.Errorf("e2e: %s/%s: %w", p.Name, c.Name, err)
		}
	}
	if l := c.Lifecycle; l != nil && l.PreStop != nil {
		switch {
		case l.PreStop.Exec != nil:
			for _, a := range l.PreStop.Exec.Command {
				cp.PreStop = append(cp.PreStop, Expand(a, look))
			}
		case l.PreStop.Sleep != nil:
			cp.PreStop = []string{"sleep", strconv.FormatInt(l.PreStop.Sleep.Seconds, 10)}
		default:
			return nil, fmt.Errorf("e2e: %s/%s: only exec and sleep preStop hooks are supported", p.Name, c.Name)
		}
	}
	return cp, nil
}

// planProbe applies the kubelet's defaults (period 10 s, timeout 1 s, thresholds 1
// and 3) and resolves a named port.
func planProbe(in *corev1.Probe, c *corev1.Container, look func(string) (string, bool)) (*Probe, error) {
	pr := &Probe{InitialDelay: time.Duration(in.InitialDelaySeconds) * time.Second,
		Period: 10 * time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 3}
	if in.PeriodSeconds > 0 {
		pr.Period = time.Duration(in.PeriodSeconds) * time.Second
	}
	if in.TimeoutSeconds > 0 {
		pr.Timeout = time.Duration(in.TimeoutSeconds) * time.Second
	}
	if in.SuccessThreshold > 0 {
		pr.SuccessThreshold = int(in.SuccessThreshold)
	}
	if in.FailureThreshold > 0 {
		pr.FailureThreshold = int(in.FailureThreshold)
	}
	var err error
	switch h := in.ProbeHandler; {
	case h.HTTPGet != nil:
		pr.HTTPPath, pr.Host, pr.Scheme = h.HTTPGet.Path, h.HTTPGet.Host, string(h.HTTPGet.Scheme)
		if pr.Scheme == "" {
			pr.Scheme = "HTTP"
		}
		if pr.HTTPPath == "" {
			pr.HTTPPath = "/"
		}
		pr.HTTPHeaders = map[string]string{}
		for _, hd := range h.HTTPGet.HTTPHeaders {
			pr.HTTPHeaders[hd.Name] = hd.Value
		}
		pr.Port, err = containerPort(h.HTTPGet.Port, c)
	case h.TCPSocket != nil:
		pr.Host = h.TCPSocket.Host
		pr.Port, err = containerPort(h.TCPSocket.Port, c)
	case h.Exec != nil:
		for _, a := range h.Exec.Command {
			pr.Exec = append(pr.Exec, Expand(a, look))
		}
	default:
		return nil, fmt.Errorf("probe has no supported handler (httpGet, tcpSocket, exec)")
	}
	return pr, err
}

// containerPort resolves a probe's port: a number, or the name of a container port.
func containerPort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return int(p.IntVal), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("probe port %q names no container port", p.StrVal)
}

// containerEnv builds the environment the kubelet gives the container: the service
// links (unless enableServiceLinks is false) and KUBERNETES_*, then envFrom, then
// env, each env value expanded against what precedes it.
func containerEnv(p *PodPlan, c *corev1.Container, spec *corev1.PodSpec, f *Facts) ([]string, error) {
	var env []string
	vals := map[string]string{}
	set := func(k, v string) {
		env = append(env, k+"="+v)
		vals[k] = v
	}
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		for _, kv := range serviceLinks(f) {
			k, v, _ := strings.Cut(kv, "=")
			set(k, v)
		}
	}
	set("KUBERNETES_SERVICE_HOST", "10.96.0.1")
	set("KUBERNETES_SERVICE_PORT", "443")
	set("HOSTNAME", p.Hostname)
	for _, ef := range c.EnvFrom {
		var data map[string]string
		switch {
		case ef.ConfigMapRef != nil:
			cm := f.ConfigMaps[ef.ConfigMapRef.Name]
			if cm == nil {
				if optional(ef.ConfigMapRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("envFrom: ConfigMap %q not found", ef.ConfigMapRef.Name)
			}
			data = cm.Data
		case ef.SecretRef != nil:
			s := f.Secrets[ef.SecretRef.Name]
			if s == nil {
				if optional(ef.SecretRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("envFrom: Secret %q not found", ef.SecretRef.Name)
			}
			data = secretData(s)
		}
		for _, k := range sortedKeys(data) {
			set(ef.Prefix+k, data[k])
		}
	}
	look := func(k string) (string, bool) { v, ok := vals[k]; return v, ok }
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, Expand(e.Value, look))
			continue
		}
		v, ok, err := envSource(p, c, e.ValueFrom, f)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	return env, nil
}

func optional(b *bool) bool { return b != nil && *b }

// envSource resolves a valueFrom; ok is false for a missing optional key.
func envSource(p *PodPlan, c *corev1.Container, src *corev1.EnvVarSource, f *Facts) (string, bool, error) {
	switch {
	case src.FieldRef != nil:
		v, err := fieldRef(p, src.FieldRef.FieldPath, f)
		return v, err == nil, err
	case src.ResourceFieldRef != nil:
		v, err := resourceRef(c, src.ResourceFieldRef, f)
		return v, err == nil, err
	case src.ConfigMapKeyRef != nil:
		r := src.ConfigMapKeyRef
		cm := f.ConfigMaps[r.Name]
		if cm != nil {
			if v, ok := cm.Data[r.Key]; ok {
				return v, true, nil
			}
		}
		if optional(r.Optional) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("configMapKeyRef %s/%s not found", r.Name, r.Key)
	case src.SecretKeyRef != nil:
		r := src.SecretKeyRef
		if s := f.Secrets[r.Name]; s != nil {
			if v, ok := secretData(s)[r.Key]; ok {
				return v, true, nil
			}
		}
		if optional(r.Optional) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("secretKeyRef %s/%s not found", r.Name, r.Key)
	}
	return "", false, fmt.Errorf("unsupported valueFrom")
}

var fieldPathRE = regexp.MustCompile(`^metadata\.(labels|annotations)\['([^']+)'\]$`)

// fieldRef resolves a downward-API field as the kubelet does.
func fieldRef(p *PodPlan, path string, f *Facts) (string, error) {
	switch path {
	case "metadata.name":
		return p.Name, nil
	case "metadata.namespace":
		return p.Namespace, nil
	case "metadata.uid":
		return "00000000-0000-4000-8000-" + fmt.Sprintf("%012x", hashString(p.Name+p.Revision)&0xffffffffffff), nil
	case "spec.nodeName":
		return f.NodeName, nil
	case "spec.serviceAccountName":
		return p.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return f.HostIP.String(), nil
	case "status.podIP", "status.podIPs":
		return p.IP.String(), nil
	}
	if m := fieldPathRE.FindStringSubmatch(path); m != nil {
		if m[1] == "labels" {
			return p.Labels[m[2]], nil
		}
		return p.Annotations[m[2]], nil
	}
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

func hashString(s string) uint64 {
	h := sha256.Sum256([]byte(s))
	var v uint64
	for _, b := range h[:8] {
		v = v<<8 | uint64(b)
	}
	return v
}

// resourceRef resolves a resourceFieldRef: the container's request or limit, or the
// node's allocatable for an unset limit, divided by the divisor and rounded up.
func resourceRef(c *corev1.Container, r *corev1.ResourceFieldSelector, f *Facts) (string, error) {
	kind, res, ok := strings.Cut(r.Resource, ".")
	if !ok {
		return "", fmt.Errorf("unsupported resourceFieldRef %q", r.Resource)
	}
	list := c.Resources.Limits
	if kind == "requests" {
		list = c.Resources.Requests
	}
	q, set := list[corev1.ResourceName(res)]
	if !set && kind == "requests" {
		q, set = c.Resources.Limits[corev1.ResourceName(res)]
	}
	if !set {
		switch res {
		case "cpu":
			q = *resource.NewQuantity(int64(max(f.NodeCPUs, 1)), resource.DecimalSI)
		case "memory":
			q = *resource.NewQuantity(max(f.NodeMemory, 1), resource.BinarySI)
		default:
			q = *resource.NewQuantity(0, resource.DecimalSI)
		}
	}
	div := r.Divisor
	if div.IsZero() {
		div = *resource.NewQuantity(1, resource.DecimalSI)
	}
	v := math.Ceil(q.AsApproximateFloat64() / div.AsApproximateFloat64())
	return strconv.FormatInt(int64(v), 10), nil
}

// serviceLinks are the {SVC}_SERVICE_HOST/_PORT and Docker-link variables the kubelet
// sets for every Service of the namespace that has a ClusterIP.
func serviceLinks(f *Facts) []string {
	var out []string
	svcs := slices.Clone(f.Services)
	slices.SortFunc(svcs, func(a, b *corev1.Service) int { return strings.Compare(a.Name, b.Name) })
	for _, s := range svcs {
		ip, ok := f.ServiceIPs[s.Name]
		if !ok || s.Spec.ClusterIP == corev1.ClusterIPNone || len(s.Spec.Ports) == 0 {
			continue
		}
		n := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
		out = append(out, n+"_SERVICE_HOST="+ip.String(), n+"_SERVICE_PORT="+strconv.Itoa(int(s.Spec.Ports[0].Port)))
		for _, pt := range s.Spec.Ports {
			if pt.Name != "" {
				out = append(out, n+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(pt.Name, "-", "_"))+"="+strconv.Itoa(int(pt.Port)))
			}
		}
		first := s.Spec.Ports[0]
		proto := strings.ToLower(string(first.Protocol))
		if proto == "" {
			proto = "tcp"
		}
		out = append(out, fmt.Sprintf("%s_PORT=%s://%s:%d", n, proto, ip, first.Port))
		for _, pt := range s.Spec.Ports {
			pr := strings.ToLower(string(pt.Protocol))
			if pr == "" {
				pr = "tcp"
			}
			pfx := fmt.Sprintf("%s_PORT_%d_%s", n, pt.Port, strings.ToUpper(pr))
			out = append(out, fmt.Sprintf("%s=%s://%s:%d", pfx, pr, ip, pt.Port), pfx+"_PROTO="+pr,
				pfx+"_PORT="+strconv.Itoa(int(pt.Port)), pfx+"_ADDR="+ip.String())
		}
	}
	return out
}

// secretData merges a Secret's data and stringData as the API server stores them.
func secretData(s *corev1.Secret) map[string]string {
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
