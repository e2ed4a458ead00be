package main

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardmatch/shardmatch/deploy/helm/render"
)

// TestChartFlagsExist: every flag and SHARDSVC_* variable the chart's demo shards are
// given is one shardsvc has (with every security setting on, and with the defaults).
func TestChartFlagsExist(t *testing.T) {
	fs, _ := flags(&options{}, io.Discard)
	for _, o := range []render.Options{
		{Values: map[string]any{"shards": map[string]any{"enabled": true, "proposeRate": 1}}},
		{ValuesFiles: []string{filepath.Join(render.TestdataDir(), "secure.yaml")}},
	} {
		m, err := render.Render(o)
		if err != nil {
			t.Fatal(err)
		}
		sts := m.StatefulSet("shardmatch-shard")
		if sts == nil {
			t.Fatalf("no demo shards rendered with %v", o)
		}
		for _, c := range sts.Spec.Template.Spec.Containers {
			for _, a := range c.Args {
				name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
				if strings.HasPrefix(a, "-") && fs.Lookup(name) == nil {
					t.Errorf("the chart passes shardsvc --%s, which shardsvc does not have", name)
				}
			}
			for _, ev := range c.Env {
				if f, ok := strings.CutPrefix(ev.Name, "SHARDSVC_"); ok {
					if f = strings.ToLower(strings.ReplaceAll(f, "_", "-")); fs.Lookup(f) == nil {
						t.Errorf("the chart sets %s, which names no shardsvc flag", ev.Name)
					}
				}
			}
		}
	}
}
