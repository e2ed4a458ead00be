package render

import (
	"cmp"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// securityFlags are the coordinator serve flags the chart adds only when a security
// value is on; with every security value off none may appear (the rendering is the
// one from before the security values existed).
var securityFlags = []string{
	"admin-tls-cert", "admin-tls-key", "admin-tls-client-ca", "admin-ca",
	"raft-tls-cert", "raft-tls-key", "raft-tls-ca",
	"command-signing-key", "audit-log",
}

// value reads a dotted path of the final values (nil when absent).
func value(v map[string]any, dotted string) any {
	var cur any = v
	for _, k := range strings.Split(dotted, ".") {
		mp, _ := cur.(map[string]any)
		cur = mp[k]
	}
	return cur
}

func str(v map[string]any, dotted string) string { s, _ := value(v, dotted).(string); return s }
func on(v map[string]any, dotted string) bool    { b, _ := value(v, dotted).(bool); return b }

// secretFile resolves a file path a container is given to the Secret volume mounted
// above it: the mount must be the whole volume (no subPath, which the kubelet never
// updates, so a renewed certificate would not reach the pod), and the file must be a
// key the Secret projects. It returns the Secret's name and the key.
func secretFile(sts *appsv1.StatefulSet, c corev1.Container, file string) (secret, key string, err error) {
	for _, vm := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/")
		if !ok {
			continue
		}
		if vm.SubPath != "" || vm.SubPathExpr != "" {
			return "", "", fmt.Errorf("%s is under mount %s with a subPath (never updated by the kubelet)", file, vm.MountPath)
		}
		for _, v := range sts.Spec.Template.Spec.Volumes {
			if v.Name != vm.Name {
				continue
			}
			if v.Secret == nil {
				return "", "", fmt.Errorf("%s is on volume %s, not a Secret", file, v.Name)
			}
			if len(v.Secret.Items) == 0 {
				return v.Secret.SecretName, rel, nil
			}
			for _, it := range v.Secret.Items {
				if path.Clean(it.Path) == rel {
					return v.Secret.SecretName, it.Key, nil
				}
			}
			return "", "", fmt.Errorf("%s: volume %s projects no such file", file, v.Name)
		}
		return "", "", fmt.Errorf("%s: mount %s has no volume", file, vm.Name)
	}
	return "", "", fmt.Errorf("%s is on no mounted volume", file)
}

func modeString(m *int32) string {
	if m == nil {
		return "unset (0644)"
	}
	return fmt.Sprintf("%#o", *m)
}

// securityProblems lists what is wrong with the security settings of a rendering,
// given the values it was rendered with. Every case of TestRenderEveryCase runs it;
// TestSecurityChecksFail shows each check can fail.
func securityProblems(m *Manifests, e expectation) []string {
	var out []string
	bad := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	v := m.Values
	sts := m.StatefulSet(e.fullname + "-coordinator")
	var c corev1.Container
	for _, cc := range sts.Spec.Template.Spec.Containers {
		if cc.Name == "coordinator" {
			c = cc
		}
	}
	a := args(c)
	// file checks that flag names a file of the Secret wantSecret, key wantKey.
	file := func(flag, wantSecret, wantKey string) {
		f, ok := a[flag]
		if !ok {
			bad("--%s missing", flag)
			return
		}
		s, k, err := secretFile(sts, c, f)
		if err != nil {
			bad("--%s: %v", flag, err)
			return
		}
		if s != wantSecret || k != wantKey {
			bad("--%s=%s is key %s of Secret %s, want key %s of %s", flag, f, k, s, wantKey, wantSecret)
		}
		if sec := m.Secret(s); sec != nil {
			if _, ok := sec.Data[k]; !ok {
				bad("--%s: the rendered Secret %s has no key %s", flag, s, k)
			}
		}
	}
	adminSecret := str(v, "coordinator.adminTLS.existingSecret")
	if adminSecret == "" {
		adminSecret = e.fullname + "-admin-tls"
	}
	raftSecret := str(v, "coordinator.raftTLS.existingSecret")
	if raftSecret == "" {
		raftSecret = e.fullname + "-raft-tls"
	}
	sigSecret := str(v, "coordinator.commandSigning.existingSecret")
	if sigSecret == "" {
		sigSecret = e.fullname + "-command-signing"
	}
	probes := []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe}
	var preStop []string
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Exec != nil {
		preStop = c.Lifecycle.PreStop.Exec.Command
	}
	preStopArg := func(flag string) (string, bool) {
		i := slices.Index(preStop, "--"+flag)
		if i < 0 || i+1 >= len(preStop) {
			return "", false
		}
		return preStop[i+1], true
	}
	ann := sts.Spec.Template.Annotations

	// Admin TLS: https everywhere a client of the admin API is configured.
	if on(v, "coordinator.adminTLS.enabled") {
		file("admin-tls-cert", adminSecret, str(v, "coordinator.adminTLS.certKey"))
		file("admin-tls-key", adminSecret, str(v, "coordinator.adminTLS.keyKey"))
		file("admin-ca", adminSecret, str(v, "coordinator.adminTLS.caKey"))
		if on(v, "coordinator.adminTLS.clientAuth") {
			file("admin-tls-client-ca", adminSecret, str(v, "coordinator.adminTLS.caKey"))
		}
		for _, p := range probes {
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
				bad("probe %+v is not HTTPS", p)
			}
		}
		if addr, _ := preStopArg("admin-addr"); !strings.HasPrefix(addr, "https://") {
			bad("preStop --admin-addr %q is not https", addr)
		}
		if ca, ok := preStopArg("admin-ca"); !ok || ca != a["admin-ca"] {
			bad("preStop --admin-ca %q, want the CA file %q", ca, a["admin-ca"])
		} else if _, _, err := secretFile(sts, c, ca); err != nil {
			bad("preStop --admin-ca: %v", err)
		}
		for _, u := range strings.Split(a["join"], ",") {
			if !strings.HasPrefix(u, "https://") {
				bad("--join URL %s is not https", u)
			}
		}
		if ann["prometheus.io/scrape"] == "true" && ann["prometheus.io/scheme"] != "https" {
			bad("prometheus.io/scheme %q, want https", ann["prometheus.io/scheme"])
		}
		if sm := m.Object("ServiceMonitor", e.fullname+"-coordinator"); sm != nil {
			eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			ep, _ := eps[0].(map[string]any)
			name, _, _ := unstructured.NestedString(ep, "tlsConfig", "ca", "secret", "name")
			key, _, _ := unstructured.NestedString(ep, "tlsConfig", "ca", "secret", "key")
			server, _, _ := unstructured.NestedString(ep, "tlsConfig", "serverName")
			if ep["scheme"] != "https" || name != adminSecret || key != str(v, "coordinator.adminTLS.caKey") {
				bad("ServiceMonitor endpoint scheme %v, CA %s/%s; want https and %s/%s", ep["scheme"], name, key, adminSecret, str(v, "coordinator.adminTLS.caKey"))
			}
			if want := e.fullname + "-coordinator." + e.ns + ".svc"; server != want {
				bad("ServiceMonitor serverName %q, want the admin Service's name %q (a SAN of the certificate)", server, want)
			}
		}
	} else {
		for _, p := range probes {
			if p != nil && p.HTTPGet != nil && p.HTTPGet.Scheme != "" {
				bad("admin TLS off, yet probe scheme %s", p.HTTPGet.Scheme)
			}
		}
		if _, ok := preStopArg("admin-ca"); ok {
			bad("admin TLS off, yet the preStop passes --admin-ca")
		}
		if _, ok := ann["prometheus.io/scheme"]; ok {
			bad("admin TLS off, yet a prometheus.io/scheme annotation")
		}
	}

	if on(v, "coordinator.raftTLS.enabled") {
		file("raft-tls-cert", raftSecret, str(v, "coordinator.raftTLS.certKey"))
		file("raft-tls-key", raftSecret, str(v, "coordinator.raftTLS.keyKey"))
		file("raft-tls-ca", raftSecret, str(v, "coordinator.raftTLS.caKey"))
	}
	if on(v, "coordinator.commandSigning.enabled") {
		file("command-signing-key", sigSecret, str(v, "coordinator.commandSigning.key"))
		for _, vol := range sts.Spec.Template.Spec.Volumes {
			// The seed file is refused when others can read it (mode & 0o027).
			if vol.Secret != nil && vol.Secret.SecretName == sigSecret && (vol.Secret.DefaultMode == nil || *vol.Secret.DefaultMode&0o027 != 0) {
				bad("the signing key volume's defaultMode %v lets others read the seed", vol.Secret.DefaultMode)
			}
		}
	}
	// Every Secret volume holds a credential (a key, a seed, a creds file, a token) or
	// sits next to one: none may be readable by others (docs/kubernetes.md, "Security":
	// mode 0440, the pod's user and its fsGroup only).
	for _, s := range m.StatefulSets {
		for _, vol := range s.Spec.Template.Spec.Volumes {
			if vol.Secret != nil && (vol.Secret.DefaultMode == nil || *vol.Secret.DefaultMode&0o007 != 0) {
				bad("%s: Secret volume %s (%s) has defaultMode %v: others can read it", s.Name, vol.Name, vol.Secret.SecretName, modeString(vol.Secret.DefaultMode))
			}
		}
	}
	if on(v, "coordinator.auditLog.enabled") {
		if p := a["audit-log"]; !strings.HasPrefix(p, a["data"]+"/") {
			bad("--audit-log %q is not on the Raft volume %s", p, a["data"])
		}
	}
	for _, f := range securityFlags {
		if _, ok := a[f]; !ok {
			continue
		}
		group := map[string]string{"admin": "coordinator.adminTLS.enabled", "raft": "coordinator.raftTLS.enabled",
			"command": "coordinator.commandSigning.enabled", "audit": "coordinator.auditLog.enabled"}[strings.SplitN(f, "-", 2)[0]]
		if !on(v, group) {
			bad("--%s rendered with %s off", f, group)
		}
	}

	// The read token, from the Secret and key the values name.
	var readEnv *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "SHARDMATCH_ADMIN_READ_TOKEN" {
			readEnv = &c.Env[i]
		}
	}
	if on(v, "coordinator.adminReadToken.enabled") {
		want := str(v, "coordinator.adminReadToken.existingSecret")
		if want == "" {
			want = e.fullname + "-admin-read"
		}
		if readEnv == nil || readEnv.ValueFrom == nil || readEnv.ValueFrom.SecretKeyRef == nil ||
			readEnv.ValueFrom.SecretKeyRef.Name != want || readEnv.ValueFrom.SecretKeyRef.Key != str(v, "coordinator.adminReadToken.key") {
			bad("SHARDMATCH_ADMIN_READ_TOKEN %+v, want key %s of Secret %s", readEnv, str(v, "coordinator.adminReadToken.key"), want)
		}
	} else if readEnv != nil {
		bad("read token off, yet SHARDMATCH_ADMIN_READ_TOKEN is set")
	}

	// Limits go to the config file (its checksum rolls the pods), not to args.
	conf := strings.Split(m.ConfigMap(e.fullname + "-config").Data["serve.conf"], "\n")
	for key, flag := range map[string]string{"maxProposalBytes": "max-proposal-bytes", "maxPlayers": "max-players",
		"proposerRate": "proposer-rate", "proposerBurst": "proposer-burst",
		"adminMaxBodyBytes": "admin-max-body-bytes", "adminMaxConnsPerClient": "admin-max-conns-per-client"} {
		n, _ := value(v, "coordinator.limits."+key).(float64)
		if i, ok := value(v, "coordinator.limits."+key).(int); ok {
			n = float64(i)
		}
		line := slices.IndexFunc(conf, func(l string) bool { return strings.HasPrefix(l, flag+" = ") })
		switch {
		case n == 0 && line >= 0:
			bad("limit %s is 0 (serve's default), yet serve.conf sets %s", key, conf[line])
		case n > 0 && (line < 0 || conf[line] != fmt.Sprintf("%s = %q", flag, strconv.FormatFloat(n, 'f', -1, 64))):
			bad("limit %s = %v: serve.conf line %d, want %s = \"%v\"", key, n, line, flag, n)
		}
	}

	// Embedded NATS in JWT mode: --auth-dir is the whole auth Secret, as a directory.
	if nats := m.StatefulSet(e.fullname + "-nats"); nats != nil {
		nc := nats.Spec.Template.Spec.Containers[0]
		na := args(nc)
		if s := str(v, "nats.embedded.auth.existingSecret"); s != "" {
			dir, ok := na["auth-dir"]
			got, key, err := secretFile(nats, nc, dir+"/any-file-init-writes")
			switch {
			case !ok:
				bad("NATS auth on, yet no --auth-dir")
			case err != nil:
				bad("--auth-dir: %v", err)
			case got != s || key != "any-file-init-writes":
				bad("--auth-dir %s is Secret %s (key %s), want the whole Secret %s", dir, got, key, s)
			}
		} else if _, ok := na["auth-dir"]; ok {
			bad("NATS auth off, yet --auth-dir")
		}
		// A cluster's routes are authenticated, with the whole route credentials
		// Secret (its mode is checked above with every Secret volume's).
		file, hasFile := na["cluster-auth-file"]
		switch want, key := cmp.Or(str(v, "nats.embedded.clusterAuth.existingSecret"), nats.Name+"-cluster-auth"),
			str(v, "nats.embedded.clusterAuth.key"); {
		case e.natsReplicas == 1 && hasFile:
			bad("a single NATS server, yet --cluster-auth-file")
		case e.natsReplicas == 1:
		case !hasFile:
			bad("a NATS cluster without --cluster-auth-file: whoever reaches its route port joins it")
		default:
			if got, k, err := secretFile(nats, nc, file); err != nil || got != want || k != key {
				bad("--cluster-auth-file %s: Secret %s key %s (%v), want key %s of %s", file, got, k, err, key, want)
			}
			if sec := m.Secret(want); sec != nil && !regexp.MustCompile(`^route:[A-Za-z0-9]{48}$`).Match(sec.Data[key]) {
				bad("generated route credentials (%d bytes) are not route:<48 random characters>", len(sec.Data[key]))
			}
		}
		if _, ok := na["cluster-insecure"]; ok {
			bad("NATS rendered with --cluster-insecure")
		}
	}

	// Demo shards: their own credentials, and the verify keys.
	if shard := m.StatefulSet(e.fullname + "-shard"); shard != nil {
		var sc corev1.Container
		for _, cc := range shard.Spec.Template.Spec.Containers {
			if cc.Name == "shardsvc" {
				sc = cc
			}
		}
		sa := args(sc)
		if s := str(v, "shards.auth.existingSecret"); s != "" {
			pod := shard.Name + "-1"
			creds := expand(sa["nats-creds"], pod, e.ns)
			got, key, err := secretFile(shard, sc, creds)
			if want := fmt.Sprintf(str(v, "shards.auth.keyPattern"), pod); err != nil || got != s || key != want {
				bad("shard pod %s --nats-creds %s: Secret %s key %s (%v), want key %s of %s", pod, creds, got, key, err, want, s)
			}
		}
		keys, _ := value(v, "shards.commandVerifyKeys").([]any)
		var want []string
		for _, k := range keys {
			want = append(want, k.(string))
		}
		if got := sa["command-verify-keys"]; got != strings.Join(want, ",") {
			bad("shard --command-verify-keys %q, want %q", got, strings.Join(want, ","))
		}
	}
	return out
}

// TestSecureValues: with deploy/helm/testdata/secure.yaml every credential comes
// from a Secret volume or a secretKeyRef, and the rendering is checked in detail
// (securityProblems also runs on every other case, where everything must be off).
func TestSecureValues(t *testing.T) {
	o := Options{ReleaseName: "sm", Namespace: "games", ValuesFiles: []string{filepath.Join(TestdataDir(), "secure.yaml")}}
	m, err := Render(o)
	if err != nil {
		t.Fatal(err)
	}
	e := expect(m, o)
	for _, p := range securityProblems(m, e) {
		t.Error(p)
	}
	a := args(container(t, m.StatefulSet("sm-shardmatch-coordinator"), "coordinator"))
	for _, f := range securityFlags {
		if f == "admin-tls-client-ca" {
			continue // clientAuth is off in secure.yaml
		}
		if _, ok := a[f]; !ok {
			t.Errorf("secure.yaml renders no --%s", f)
		}
	}
	conf := m.ConfigMap("sm-shardmatch-config").Data["serve.conf"]
	for _, want := range []string{`max-proposal-bytes = "65536"`, `admin-max-body-bytes = "1048576"`, `proposer-rate = "50"`, `proposer-burst = "100"`} {
		if !slices.Contains(strings.Split(conf, "\n"), want) {
			t.Errorf("serve.conf lacks %q:\n%s", want, conf)
		}
	}
	// The secure install's credentials are all the operator's: the chart renders
	// only the Secrets of values given inline (none here).
	for _, s := range m.Secrets {
		t.Errorf("secure.yaml rendered Secret %s; every credential is an existing Secret", s.Name)
	}
}

// TestSecureInline: the inline forms (PEM and seed values, a generated read token)
// render the chart's own Secrets, and the files point into them.
func TestSecureInline(t *testing.T) {
	pem := "-----BEGIN X-----\nZm9v\n-----END X-----\n"
	tls := map[string]any{"enabled": true, "ca": pem, "cert": pem, "key": pem}
	o := Options{Values: map[string]any{"coordinator": map[string]any{
		"adminTLS": mergeMaps(tls, map[string]any{"clientAuth": true}), "raftTLS": tls,
		"adminReadToken": map[string]any{"enabled": true},
		"commandSigning": map[string]any{"enabled": true, "value": "SNAEXAMPLESEED"},
	}, "metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true}}}}
	m, err := Render(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range securityProblems(m, expect(m, o)) {
		t.Error(p)
	}
	for name, key := range map[string]string{"shardmatch-admin-tls": "tls.key", "shardmatch-raft-tls": "ca.crt",
		"shardmatch-command-signing": "command-signing.nk", "shardmatch-admin-read": "admin-read-token"} {
		s := m.Secret(name)
		if s == nil || len(s.Data[key]) == 0 {
			t.Errorf("Secret %s with key %s not rendered: %v", name, key, s)
		}
	}
	if tok := m.Secret("shardmatch-admin-read").Data["admin-read-token"]; len(tok) < 32 || string(tok) == string(m.Secret("shardmatch-admin").Data["admin-token"]) {
		t.Errorf("generated read token %q: too short or the operate token", tok)
	}
	sm := m.Object("ServiceMonitor", "shardmatch-coordinator")
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if k, _, _ := unstructured.NestedString(eps[0].(map[string]any), "tlsConfig", "keySecret", "key"); k != "tls.key" {
		t.Errorf("clientAuth: the ServiceMonitor presents no client key: %v", eps[0])
	}
	if n, _, _ := unstructured.NestedString(eps[0].(map[string]any), "authorization", "credentials", "name"); n != "shardmatch-admin-read" {
		t.Errorf("read token on: the ServiceMonitor sends no bearer token: %v", eps[0])
	}
}

// TestSecurityChecksFail is the negative control of securityProblems: each way the
// chart could get a credential wrong is caught.
func TestSecurityChecksFail(t *testing.T) {
	o := Options{ReleaseName: "sm", Namespace: "games", ValuesFiles: []string{filepath.Join(TestdataDir(), "secure.yaml")}}
	coord := func(m *Manifests) *corev1.Container {
		return &m.StatefulSet("sm-shardmatch-coordinator").Spec.Template.Spec.Containers[0]
	}
	for _, tc := range []struct {
		name   string
		break_ func(m *Manifests)
		want   string
	}{
		{"subPath mount", func(m *Manifests) {
			c := coord(m)
			for i := range c.VolumeMounts {
				if c.VolumeMounts[i].Name == "raft-tls" {
					c.VolumeMounts[i].SubPath = "tls.crt"
				}
			}
		}, "--raft-tls-cert: /etc/shardmatch/raft-tls/tls.crt is under mount /etc/shardmatch/raft-tls with a subPath"},
		{"http probe", func(m *Manifests) { coord(m).ReadinessProbe.HTTPGet.Scheme = "" }, "is not HTTPS"},
		{"preStop without CA", func(m *Manifests) {
			cmd := coord(m).Lifecycle.PreStop.Exec.Command
			i := slices.Index(cmd, "--admin-ca")
			coord(m).Lifecycle.PreStop.Exec.Command = slices.Delete(cmd, i, i+2)
		}, "preStop --admin-ca"},
		{"read token key", func(m *Manifests) {
			for i, ev := range coord(m).Env {
				if ev.Name == "SHARDMATCH_ADMIN_READ_TOKEN" {
					coord(m).Env[i].ValueFrom.SecretKeyRef.Key = "admin-token"
				}
			}
		}, "SHARDMATCH_ADMIN_READ_TOKEN"},
		{"seed readable", func(m *Manifests) {
			for _, v := range m.StatefulSet("sm-shardmatch-coordinator").Spec.Template.Spec.Volumes {
				if v.Name == "command-signing" {
					v.Secret.DefaultMode = nil
				}
			}
		}, "lets others read the seed"},
		{"creds readable", func(m *Manifests) {
			for _, v := range m.StatefulSet("sm-shardmatch-coordinator").Spec.Template.Spec.Volumes {
				if v.Name == "nats-creds" {
					v.Secret.DefaultMode = nil
				}
			}
		}, "Secret volume nats-creds"},
		{"wrong Secret", func(m *Manifests) {
			for _, v := range m.StatefulSet("sm-shardmatch-coordinator").Spec.Template.Spec.Volumes {
				if v.Name == "admin-tls" {
					v.Secret.SecretName = "sm-raft-tls"
				}
			}
		}, "want key tls.crt of sm-admin-tls"},
		{"http join", func(m *Manifests) {
			for i, a := range coord(m).Args {
				if strings.HasPrefix(a, "--join=") {
					coord(m).Args[i] = strings.ReplaceAll(a, "https://", "http://")
				}
			}
		}, "is not https"},
		{"auth-dir items", func(m *Manifests) {
			v := m.StatefulSet("sm-shardmatch-nats").Spec.Template.Spec.Volumes[0]
			v.Secret.Items = []corev1.KeyToPath{{Key: "operator.jwt", Path: "operator.jwt"}}
		}, "--auth-dir"},
		{"routes open", func(m *Manifests) {
			c := &m.StatefulSet("sm-shardmatch-nats").Spec.Template.Spec.Containers[0]
			c.Args = slices.DeleteFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--cluster-auth-file=") })
		}, "a NATS cluster without --cluster-auth-file"},
		{"routes insecure", func(m *Manifests) {
			c := &m.StatefulSet("sm-shardmatch-nats").Spec.Template.Spec.Containers[0]
			c.Args = append(c.Args, "--cluster-insecure")
		}, "--cluster-insecure"},
		{"route credentials readable", func(m *Manifests) {
			for _, v := range m.StatefulSet("sm-shardmatch-nats").Spec.Template.Spec.Volumes {
				if v.Name == "nats-cluster-auth" {
					v.Secret.DefaultMode = nil
				}
			}
		}, "Secret volume nats-cluster-auth"},
		{"route credentials of another Secret", func(m *Manifests) {
			for _, v := range m.StatefulSet("sm-shardmatch-nats").Spec.Template.Spec.Volumes {
				if v.Name == "nats-cluster-auth" {
					v.Secret.SecretName = "sm-nats-auth"
				}
			}
		}, "want key routes.auth of sm-nats-routes"},
		{"shard shares creds", func(m *Manifests) {
			c := &m.StatefulSet("sm-shardmatch-shard").Spec.Template.Spec.Containers[0]
			for i, a := range c.Args {
				if strings.HasPrefix(a, "--nats-creds=") {
					c.Args[i] = "--nats-creds=/etc/shardmatch/shard-creds/shard.creds"
				}
			}
		}, "--nats-creds"},
		{"limit dropped", func(m *Manifests) {
			cm := m.ConfigMap("sm-shardmatch-config")
			cm.Data["serve.conf"] = strings.ReplaceAll(cm.Data["serve.conf"], `proposer-rate = "50"`, "")
		}, "limit proposerRate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Render(o)
			if err != nil {
				t.Fatal(err)
			}
			e := expect(m, o)
			if p := securityProblems(m, e); len(p) > 0 {
				t.Fatalf("unbroken rendering has problems: %v", p)
			}
			tc.break_(m)
			p := securityProblems(m, e)
			if !slices.ContainsFunc(p, func(s string) bool { return strings.Contains(s, tc.want) }) {
				t.Errorf("broken rendering: problems %q, want one saying %q", p, tc.want)
			}
		})
	}
}
