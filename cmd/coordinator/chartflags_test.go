package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/shardmatch/shardmatch/deploy/helm/render"
)

// chartRenderings are the chart renderings whose command lines must name real flags:
// the defaults and the values file with every security setting on, plus the settings
// secure.yaml leaves off (admin client certificates, a generated read token).
func chartRenderings(t *testing.T) map[string]*render.Manifests {
	t.Helper()
	out := map[string]*render.Manifests{}
	for name, o := range map[string]render.Options{
		"defaults": {},
		"secure":   {ValuesFiles: []string{filepath.Join(render.TestdataDir(), "secure.yaml")}},
		"secure+clientAuth": {ValuesFiles: []string{filepath.Join(render.TestdataDir(), "secure.yaml")},
			Values: map[string]any{"coordinator": map[string]any{"adminTLS": map[string]any{"clientAuth": true}}}},
	} {
		m, err := render.Render(o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = m
	}
	return out
}

// flagName is the flag of one command-line argument ("--a-b=c" or "--a-b"), or "".
func flagName(arg string) string {
	if !strings.HasPrefix(arg, "-") {
		return ""
	}
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	return name
}

// cmdFlags returns the flags of `coordinator <sub>`, read from the command tree.
func cmdFlags(t *testing.T, sub string) map[string]bool {
	t.Helper()
	c, _, err := newRootCmd().Find([]string{sub})
	if err != nil || c.Name() != sub {
		t.Fatalf("no command %q: %v", sub, err)
	}
	out := map[string]bool{}
	c.Flags().VisitAll(func(f *pflag.Flag) { out[f.Name] = true })
	c.InheritedFlags().VisitAll(func(f *pflag.Flag) { out[f.Name] = true })
	if len(out) == 0 {
		t.Fatalf("coordinator %s has no flags", sub)
	}
	return out
}

// TestChartFlagsExist: every flag, config file key and SHARDMATCH_* variable the chart
// gives `coordinator serve`, and every flag of its preStop hook and of `coordinator
// nats`, is one the binary has. A chart value wired to a misspelt or not yet existing
// flag would otherwise only show when a pod crash-loops.
func TestChartFlagsExist(t *testing.T) {
	serveSet, prestop, nats := cmdFlags(t, "serve"), cmdFlags(t, "prestop"), cmdFlags(t, "nats")
	serve := lookup(serveSet)
	for name, m := range chartRenderings(t) {
		for _, sts := range m.StatefulSets {
			for _, c := range sts.Spec.Template.Spec.Containers {
				switch {
				case len(c.Command) == 2 && c.Command[1] == "serve":
					for _, a := range c.Args {
						if f := flagName(a); f != "" && serve.Lookup(f) == nil {
							t.Errorf("%s: %s passes serve --%s, which serve does not have", name, sts.Name, f)
						}
					}
					for _, ev := range c.Env {
						if f, ok := strings.CutPrefix(ev.Name, envPrefix+"_"); ok {
							if f = strings.ToLower(strings.ReplaceAll(f, "_", "-")); serve.Lookup(f) == nil {
								t.Errorf("%s: %s sets %s, which names no serve flag (--%s)", name, sts.Name, ev.Name, f)
							}
						}
					}
					if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Exec != nil {
						for _, a := range c.Lifecycle.PreStop.Exec.Command[2:] {
							if f := flagName(a); f != "" && !prestop[f] {
								t.Errorf("%s: the preStop hook passes prestop --%s, which prestop does not have", name, f)
							}
						}
					}
				case len(c.Command) == 2 && c.Command[1] == "nats":
					for _, a := range c.Args {
						if f := flagName(a); f != "" && !nats[f] {
							t.Errorf("%s: %s passes nats --%s, which `coordinator nats` does not have", name, sts.Name, f)
						}
					}
				}
			}
		}
		for _, cm := range m.ConfigMaps {
			conf, ok := cm.Data["serve.conf"]
			if !ok {
				continue
			}
			for _, line := range strings.Split(conf, "\n") {
				key, _, ok := strings.Cut(line, " = ")
				if ok && !strings.HasPrefix(line, "#") && serve.Lookup(key) == nil {
					t.Errorf("%s: serve.conf sets %s, which serve does not have", name, key)
				}
			}
		}
	}
}

// lookup adapts a flag set to the Lookup(name) != nil checks.
type lookup map[string]bool

func (l lookup) Lookup(name string) *bool {
	if !l[name] {
		return nil
	}
	v := true
	return &v
}
