package render

import (
	"errors"
	"testing"
)

// TestRenderDefaults: the default values render, and the named objects of the
// contract are there.
func TestRenderDefaults(t *testing.T) {
	m, err := Render(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"shardmatch-coordinator", "shardmatch-nats"} {
		if m.StatefulSet(name) == nil {
			t.Errorf("no StatefulSet %s", name)
		}
	}
	for _, name := range []string{"shardmatch-coordinator", "shardmatch-coordinator-headless", "shardmatch-nats", "shardmatch-nats-headless"} {
		if m.Service(name) == nil {
			t.Errorf("no Service %s", name)
		}
	}
	if m.ConfigMap("shardmatch-config") == nil || m.Secret("shardmatch-admin") == nil || m.PDB("shardmatch-coordinator") == nil {
		t.Errorf("missing the config ConfigMap, the admin Secret or the PDB")
	}
}

// TestRenderRejects: a value the chart refuses is ErrValues.
func TestRenderRejects(t *testing.T) {
	_, err := Render(Options{Values: map[string]any{"coordinator": map[string]any{"replicas": 4}}})
	if !errors.Is(err, ErrValues) {
		t.Fatalf("replicas 4: err = %v, want ErrValues", err)
	}
}
