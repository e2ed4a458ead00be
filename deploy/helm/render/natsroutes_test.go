package render

import (
	"bytes"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/scheme"
)

// existing answers the chart's lookup calls from objs, as the API server of a
// cluster the release is installed in would.
type existing struct {
	client *dynamicfake.FakeDynamicClient
}

func newExisting(t *testing.T, objs ...kruntime.Object) existing {
	t.Helper()
	return existing{dynamicfake.NewSimpleDynamicClient(scheme.Scheme, objs...)}
}

func (e existing) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, false, err
	}
	if kind != "Secret" {
		return nil, false, nil
	}
	return e.client.Resource(gv.WithResource("secrets")), true, nil
}

// TestNATSRouteCredentialsKept: a NATS cluster's route credentials are generated on
// install (random, so two installs differ) and kept on an upgrade, where lookup finds
// the installed Secret: servers restarted by the upgrade still meet the others.
// nats.embedded.clusterAuth.existingSecret replaces them; one server has none.
func TestNATSRouteCredentialsKept(t *testing.T) {
	o := Options{ReleaseName: "sm", Namespace: "games", ValuesFiles: []string{filepath.Join(TestdataDir(), "embedded-nats-3.yaml")}}
	const name, key = "sm-shardmatch-nats-cluster-auth", "cluster-auth"
	creds := func(o Options) []byte {
		t.Helper()
		m, err := Render(o)
		if err != nil {
			t.Fatal(err)
		}
		s := m.Secret(name)
		if s == nil {
			t.Fatalf("no Secret %s", name)
		}
		return s.Data[key]
	}
	first := creds(o)
	if again := creds(o); bytes.Equal(first, again) {
		t.Fatalf("two installs generated the same route credentials")
	}
	installed := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "games"}, Data: map[string][]byte{key: first}}
	o.Lookup = newExisting(t, installed)
	if upgraded := creds(o); !bytes.Equal(upgraded, first) {
		t.Errorf("upgrade changed the route credentials: %q, installed %q", upgraded, first)
	}
	// The same Secret in another namespace is another release's.
	o.Lookup = newExisting(t, &corev1.Secret{TypeMeta: installed.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "other"}, Data: installed.Data})
	if other := creds(o); bytes.Equal(other, first) {
		t.Errorf("credentials taken from another namespace's Secret")
	}

	// The operator's Secret: the chart renders none, and the pods mount that one.
	o.Lookup = nil
	o.Values = map[string]any{"nats": map[string]any{"embedded": map[string]any{"clusterAuth": map[string]any{"existingSecret": "mine"}}}}
	m, err := Render(o)
	if err != nil {
		t.Fatal(err)
	}
	if m.Secret(name) != nil {
		t.Errorf("Secret %s rendered with clusterAuth.existingSecret", name)
	}
	sts := m.StatefulSet("sm-shardmatch-nats")
	c := container(t, sts, "nats")
	if s, k, err := secretFile(sts, c, args(c)["cluster-auth-file"]); err != nil || s != "mine" || k != key {
		t.Errorf("--cluster-auth-file is key %s of %s (%v), want %s of mine", k, s, err, key)
	}

	// One server: no routes, no credentials.
	o.Values = map[string]any{"nats": map[string]any{"embedded": map[string]any{"replicas": 1}}}
	if m, err = Render(o); err != nil {
		t.Fatal(err)
	}
	if m.Secret(name) != nil {
		t.Errorf("Secret %s rendered for a single NATS server", name)
	}
}
