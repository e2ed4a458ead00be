package runner

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shardmatch/shardmatch/chaos/inject"
	"github.com/shardmatch/shardmatch/chaos/report"
	"github.com/shardmatch/shardmatch/chaos/scenario"
)

// injector applies a scenario's fault schedule to a deployment and remembers how to
// undo every fault still active.
type injector struct {
	d   *deployment
	now func() time.Duration // the reference clock

	mu        sync.Mutex
	rng       *rand.Rand
	windows   []report.FaultWindow
	active    map[int]func(context.Context) error // window index -> undo
	transport map[string][2]float64               // node -> duplicate, reorder percent
	errs      []error
	seq       int
}

func newInjector(d *deployment, seed int64, now func() time.Duration) *injector {
	return &injector{d: d, now: now, rng: rand.New(rand.NewPCG(uint64(seed), 0x63686173)),
		active: map[int]func(context.Context) error{}, transport: map[string][2]float64{}}
}

// instance is one occurrence of a fault (a repeated fault has Count of them).
type instance struct {
	f  scenario.Fault
	at time.Duration // from workload start
}

func instances(faults []scenario.Fault) []instance {
	var out []instance
	for _, f := range faults {
		n := max(f.Count, 1)
		for k := 0; k < n; k++ {
			out = append(out, instance{f: f, at: time.Duration(f.At) + time.Duration(k)*time.Duration(f.Every)})
		}
	}
	slices.SortStableFunc(out, func(a, b instance) int { return int(a.at - b.at) })
	return out
}

// run applies every fault instance at its time after start (on the reference clock)
// and heals it after its For. It returns when ctx ends (the workload's end); faults
// still active then are left for healAll.
func (in *injector) run(ctx context.Context, start time.Duration, faults []scenario.Fault) {
	var wg sync.WaitGroup
	for _, inst := range instances(faults) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !sleepUntil(ctx, in.now, start+inst.at) {
				return
			}
			idx, err := in.apply(ctx, inst.f)
			if err != nil {
				in.fail(fmt.Errorf("%s at %s: %w", inst.f.Kind, inst.at, err))
				return
			}
			if inst.f.For <= 0 {
				return
			}
			if !sleepUntil(ctx, in.now, start+inst.at+time.Duration(inst.f.For)) {
				return
			}
			if err := in.heal(context.WithoutCancel(ctx), idx); err != nil {
				in.fail(fmt.Errorf("heal %s: %w", inst.f.Kind, err))
			}
		}()
	}
	wg.Wait()
}

func (in *injector) fail(err error) {
	in.mu.Lock()
	in.errs = append(in.errs, err)
	in.mu.Unlock()
	in.d.log.Error("fault", "err", err)
}

// sleepUntil waits until now() >= t; false if ctx ended first.
func sleepUntil(ctx context.Context, now func() time.Duration, t time.Duration) bool {
	for {
		d := t - now()
		if d <= 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(min(d, 100*time.Millisecond)):
		}
	}
}

// healAll undoes every fault still active; it returns the first error.
func (in *injector) healAll(ctx context.Context) error {
	in.mu.Lock()
	idxs := make([]int, 0, len(in.active))
	for i := range in.active {
		idxs = append(idxs, i)
	}
	in.mu.Unlock()
	slices.Sort(idxs)
	var errs []error
	for _, i := range idxs {
		if err := in.heal(ctx, i); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (in *injector) heal(ctx context.Context, idx int) error {
	in.mu.Lock()
	undo, ok := in.active[idx]
	delete(in.active, idx)
	in.mu.Unlock()
	if !ok {
		return nil
	}
	err := undo(ctx)
	t := in.now()
	in.mu.Lock()
	in.windows[idx].End = t
	in.mu.Unlock()
	in.d.log.Info("healed", "fault", in.windows[idx].Kind, "targets", in.windows[idx].Targets, "err", err)
	return err
}

// apply injects f now and records its window; it returns the window's index.
func (in *injector) apply(ctx context.Context, f scenario.Fault) (int, error) {
	r := &resolver{d: in.d, in: in}
	undo, targets, err := in.inject(ctx, r, f)
	if err != nil {
		return 0, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.windows = append(in.windows, report.FaultWindow{Kind: string(f.Kind), Targets: targets, Start: in.now()})
	idx := len(in.windows) - 1
	in.active[idx] = undo
	in.d.log.Info("fault", "kind", f.Kind, "targets", targets)
	return idx, nil
}

func (in *injector) nextID() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.seq++
	return fmt.Sprintf("f%d", in.seq)
}

// inject performs one fault and returns its undo and a description of its targets.
func (in *injector) inject(ctx context.Context, r *resolver, f scenario.Fault) (func(context.Context) error, string, error) {
	id := in.nextID()
	switch f.Kind {
	case scenario.FaultPartition, scenario.FaultBridge:
		groups := make([][]string, len(f.Groups))
		for i, g := range f.Groups {
			ns, err := r.names(ctx, g)
			if err != nil {
				return nil, "", err
			}
			groups[i] = ns
		}
		if err := in.d.checkProxiedCut(groups); err != nil {
			return nil, "", err
		}
		var ids []string
		for i := range groups {
			for j := i + 1; j < len(groups); j++ {
				pid := fmt.Sprintf("%s-%d-%d", id, i, j)
				if err := in.d.net.Partition(pid, groups[i], groups[j]); err != nil {
					return nil, "", err
				}
				ids = append(ids, pid)
			}
		}
		desc := groupDesc(groups)
		if f.Kind == scenario.FaultBridge {
			desc += " bridged by " + f.Bridge
		}
		return func(context.Context) error {
			var errs []error
			for _, pid := range ids {
				errs = append(errs, in.d.net.Heal(pid))
			}
			return errors.Join(errs...)
		}, desc, nil

	case scenario.FaultLoss:
		ns, err := r.names(ctx, f.Targets)
		if err != nil {
			return nil, "", err
		}
		if err := in.d.net.Loss(id, ns, int(f.Percent)); err != nil {
			return nil, "", err
		}
		return func(context.Context) error { return in.d.net.Heal(id) },
			fmt.Sprintf("%s %g%%", strings.Join(ns, ","), f.Percent), nil

	case scenario.FaultClockSkew, scenario.FaultClockDrift:
		nodes, err := r.nodes(ctx, f.Targets)
		if err != nil {
			return nil, "", err
		}
		set := func(ctx context.Context, off *time.Duration, rate *float64) error {
			var errs []error
			for _, n := range nodes {
				if n.admin == "" {
					errs = append(errs, fmt.Errorf("%s has no clock to skew", n.name))
					continue
				}
				errs = append(errs, in.client(n).SetClock(ctx, off, rate))
			}
			return errors.Join(errs...)
		}
		if f.Kind == scenario.FaultClockSkew {
			off := time.Duration(f.Offset)
			if err := set(ctx, &off, nil); err != nil {
				return nil, "", err
			}
			zero := time.Duration(0)
			return func(ctx context.Context) error { return set(ctx, &zero, nil) },
				fmt.Sprintf("%s %+v", nodeNames(nodes), off), nil
		}
		rate, one := f.Rate, 1.0
		if err := set(ctx, nil, &rate); err != nil {
			return nil, "", err
		}
		return func(ctx context.Context) error { return set(ctx, nil, &one) },
			fmt.Sprintf("%s rate %g", nodeNames(nodes), rate), nil

	case scenario.FaultKill, scenario.FaultNATSRestart:
		sel := f.Targets
		if f.Kind == scenario.FaultNATSRestart {
			sel = []string{"nats"}
		}
		nodes, err := r.nodes(ctx, sel)
		if err != nil {
			return nil, "", err
		}
		for _, n := range nodes {
			in.mu.Lock()
			n.down = true
			in.mu.Unlock()
			if err := n.proc.Kill(); err != nil {
				return nil, "", fmt.Errorf("kill %s: %w", n.name, err)
			}
		}
		return func(ctx context.Context) error {
			var errs []error
			for _, n := range nodes {
				err := n.proc.Restart(ctx)
				in.mu.Lock()
				n.down = false
				in.mu.Unlock()
				errs = append(errs, err)
			}
			return errors.Join(errs...)
		}, nodeNames(nodes), nil

	case scenario.FaultPause:
		nodes, err := r.nodes(ctx, f.Targets)
		if err != nil {
			return nil, "", err
		}
		for _, n := range nodes {
			if err := n.proc.Pause(); err != nil {
				return nil, "", fmt.Errorf("pause %s: %w", n.name, err)
			}
		}
		return func(context.Context) error {
			var errs []error
			for _, n := range nodes {
				errs = append(errs, n.proc.Resume())
			}
			return errors.Join(errs...)
		}, nodeNames(nodes), nil

	case scenario.FaultDuplicate, scenario.FaultReorder:
		nodes, err := r.nodes(ctx, f.Targets)
		if err != nil {
			return nil, "", err
		}
		which := 0
		if f.Kind == scenario.FaultReorder {
			which = 1
		}
		set := func(ctx context.Context, pct float64) error {
			var errs []error
			for _, n := range nodes {
				if n.admin == "" {
					continue // NATS has no transport hook: it is the transport
				}
				in.mu.Lock()
				t := in.transport[n.name]
				t[which] = pct
				in.transport[n.name] = t
				in.mu.Unlock()
				errs = append(errs, in.client(n).SetTransport(ctx, t[0], t[1]))
			}
			return errors.Join(errs...)
		}
		if err := set(ctx, f.Percent); err != nil {
			return nil, "", err
		}
		return func(ctx context.Context) error { return set(ctx, 0) },
			fmt.Sprintf("%s %g%%", nodeNames(nodes), f.Percent), nil

	case scenario.FaultLatency:
		ends, err := in.d.latencyEnds(f)
		if err != nil {
			return nil, "", err
		}
		set := func(lat, jit time.Duration) error {
			var errs []error
			for _, n := range ends {
				errs = append(errs, in.d.proxies[n.name].SetLatency(lat, jit))
			}
			return errors.Join(errs...)
		}
		if err := set(time.Duration(f.Latency), time.Duration(f.Jitter)); err != nil {
			return nil, "", err
		}
		return func(context.Context) error { return set(0, 0) },
			fmt.Sprintf("%s<->nats %s±%s", nodeNames(ends), time.Duration(f.Latency), time.Duration(f.Jitter)), nil
	}
	return nil, "", fmt.Errorf("unknown fault kind %q", f.Kind)
}

func (in *injector) client(n *node) *inject.Client {
	return &inject.Client{BaseURL: n.admin, HTTP: in.d.http}
}

func nodeNames(ns []*node) string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.name
	}
	return strings.Join(out, ",")
}

func groupDesc(groups [][]string) string {
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = "{" + strings.Join(g, ",") + "}"
	}
	return strings.Join(parts, " | ")
}

// checkProxiedCut refuses a partition that would separate a node from NATS over a
// proxied link: that traffic goes through the root namespace, where no rule cuts it,
// so the partition would silently not happen.
func (d *deployment) checkProxiedCut(groups [][]string) error {
	group := map[string]int{}
	for i, g := range groups {
		for _, n := range g {
			group[n] = i
		}
	}
	gn, natsIn := group["nats"]
	for name := range d.proxies {
		if gi, in := group[name]; in && natsIn && gi != gn {
			return fmt.Errorf("%s reaches NATS through a latency proxy, which a partition cannot cut; give the scenario separate topologies for latency and partitions", name)
		}
	}
	return nil
}
