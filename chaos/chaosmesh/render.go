package chaosmesh

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shardmatch/shardmatch/chaos/scenario"
)

// Manifests renders s as standalone Chaos Mesh objects in one multi-document YAML:
// a NetworkChaos per partitioned pair of groups, per loss, latency, duplication or
// reordering; a TimeChaos per clock skew; a PodChaos per kill, pause or NATS restart;
// a Schedule around any of them that the scenario repeats. Each object starts when
// applied; its shardmatch.io/start-after annotation says when the scenario starts it.
// Faults with no Chaos Mesh form (clock drift) become comment-only documents saying
// so. Dynamic selectors are fixed with c1 as the leader (see the comments emitted).
func Manifests(s *scenario.Scenario, opts Options) ([]byte, error) {
	r, err := newRenderer(s, opts)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(r.header("Standalone objects: each starts when applied. Its " + AnnotationStartAfter + " annotation is when\n" +
		"# the scenario starts it, from the start of the workload: apply each at that time, or apply the\n" +
		"# timed Workflow in workflows/" + s.Name + ".yaml instead (never both)."))
	if len(s.Faults) == 0 {
		b.WriteString("#\n# The scenario injects no faults (its workload is the experiment): there is nothing to apply.\n")
	}
	for i := range s.Faults {
		f := r.render(i)
		if f.skip != "" {
			b.WriteString("---\n")
			comment(&b, fmt.Sprintf("%s: skipped.", faultLine(f)), f.skip)
			continue
		}
		for _, it := range f.items {
			var obj object
			notes := f.notes
			if f.f.Count > 1 {
				obj = object{APIVersion: APIVersion, Kind: KindSchedule, Metadata: r.meta(objName(s.Name, fmt.Sprintf("f%d-%s", i, it.suffix)), &f),
					Spec: r.schedule(f.f, it)}
				end := f.f.End(s.Duration.D())
				notes = append(notes, fmt.Sprintf("The scenario repeats this every %s, %d times; a Schedule does not count, so delete it %s after",
					f.f.Every, f.f.Count, end-f.f.At.D()+f.f.Every.D()),
					"applying it (its first run comes one period after it is applied), or use the Workflow, whose deadline stops it.")
			} else {
				obj = object{APIVersion: APIVersion, Kind: it.kind, Metadata: r.meta(objName(s.Name, fmt.Sprintf("f%d-%s", i, it.suffix)), &f),
					Spec: it.spec.only()}
			}
			b.WriteString("---\n")
			comment(&b, append([]string{faultLine(f)}, notes...)...)
			if err := encode(&b, obj); err != nil {
				return nil, err
			}
		}
	}
	return []byte(b.String()), nil
}

// Workflow renders s as one Chaos Mesh Workflow that keeps the scenario's timing: a
// Parallel entry with, per fault, a Suspend for its start offset followed by its
// chaos (a Schedule bounded by a deadline when the fault repeats).
func Workflow(s *scenario.Scenario, opts Options) ([]byte, error) {
	r, err := newRenderer(s, opts)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(r.header("One timed Workflow: apply it when the workload starts; it injects every fault at the\n" +
		"# scenario's offset and stops after the workload's " + s.Duration.String() + ". Do not also apply ../" + s.Name + ".yaml."))
	spec := workflowSpec{Entry: "scenario"}
	entry := template{Name: "scenario", Type: templateParallel, Deadline: s.Duration.String()}
	var notes []string
	for i := range s.Faults {
		f := r.render(i)
		if f.skip != "" {
			notes = append(notes, fmt.Sprintf("%s: skipped. %s", faultLine(f), f.skip))
			continue
		}
		notes = append(notes, faultLine(f))
		for _, n := range f.notes {
			notes = append(notes, "  "+n)
		}
		var chaos []string
		for _, it := range f.items {
			t := template{Name: fmt.Sprintf("f%d-%s", i, it.suffix), Type: it.kind, embedChaos: it.spec,
				Deadline: r.length(f.f).String()}
			if f.f.Count > 1 {
				t = template{Name: t.Name, Type: templateSchedule, Schedule: r.schedule(f.f, it),
					Deadline: (time.Duration(f.f.Count)*f.f.Every.D() + f.f.For.D()).String()}
			}
			spec.Templates = append(spec.Templates, t)
			chaos = append(chaos, t.Name)
		}
		node := chaos[0]
		if len(chaos) > 1 {
			node = fmt.Sprintf("f%d", i)
			spec.Templates = append(spec.Templates, template{Name: node, Type: templateParallel, Children: chaos})
		}
		start := f.f.At.D()
		if f.f.Count > 1 {
			// A Schedule's first run comes one period after it starts.
			if start -= f.f.Every.D(); start < 0 {
				notes = append(notes, fmt.Sprintf("  its first occurrence comes at %s, not %s: a Schedule runs one period after it starts",
					f.f.Every, f.f.At))
				start = 0
			}
		}
		if start > 0 {
			wait, run := fmt.Sprintf("f%d-wait", i), fmt.Sprintf("f%d-run", i)
			spec.Templates = append(spec.Templates,
				template{Name: wait, Type: templateSuspend, Deadline: start.String()},
				template{Name: run, Type: templateSerial, Children: []string{wait, node}})
			node = run
		}
		entry.Children = append(entry.Children, node)
	}
	if len(entry.Children) == 0 {
		b.WriteString("#\n# Nothing to inject")
		if len(notes) > 0 {
			b.WriteString(":\n")
			comment(&b, notes...)
		} else {
			b.WriteString(": the scenario's workload is the experiment.\n")
		}
		return []byte(b.String()), nil
	}
	spec.Templates = append([]template{entry}, spec.Templates...)
	b.WriteString("---\n")
	comment(&b, notes...)
	if err := encode(&b, object{APIVersion: APIVersion, Kind: KindWorkflow, Metadata: r.meta(objName(s.Name, "workflow"), nil), Spec: spec}); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// schedule wraps one chaos item in a Schedule that fires every f.Every.
func (r *renderer) schedule(f scenario.Fault, it item) *scheduleSpec {
	return &scheduleSpec{Schedule: "@every " + f.Every.String(), ConcurrencyPolicy: "Forbid", HistoryLimit: max(f.Count, 1),
		Type: it.kind, embedChaos: it.spec}
}

// only returns the one spec set in e.
func (e embedChaos) only() any {
	switch {
	case e.NetworkChaos != nil:
		return e.NetworkChaos
	case e.PodChaos != nil:
		return e.PodChaos
	default:
		return e.TimeChaos
	}
}

// faultLine is the scenario's fault as one comment line.
func faultLine(f rendered) string {
	b, _ := json.Marshal(f.f)
	return fmt.Sprintf("faults[%d]: %s", f.index, b)
}

// comment writes each line as a YAML comment.
func comment(b *strings.Builder, lines ...string) {
	for _, l := range lines {
		b.WriteString("# ")
		b.WriteString(l)
		b.WriteString("\n")
	}
}

func encode(b *strings.Builder, v any) error {
	enc := yaml.NewEncoder(b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("chaosmesh: encode: %w", err)
	}
	return enc.Close()
}
