package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/shardmatch/shardmatch/chaos/netns"
)

// Objects are the rendered objects a Cluster runs: the StatefulSets, and the
// Services, ConfigMaps and Secrets their pods refer to.
type Objects struct {
	StatefulSets []*appsv1.StatefulSet
	Services     []*corev1.Service
	ConfigMaps   []*corev1.ConfigMap
	Secrets      []*corev1.Secret
}

// Config configures a Cluster.
type Config struct {
	// Namespace of every object; ClusterDomain of the DNS names ("cluster.local").
	Namespace, ClusterDomain string
	// Prefix tags the run's network namespaces (see netns.Config.Prefix).
	Prefix string
	// WorkDir receives every pod's directory and the PVCs.
	WorkDir string
	// Image maps the image's files to host files (e.g. /usr/local/bin/coordinator to
	// a built binary); their directories are empty tmpfs in every pod but for them.
	Image map[string]string
	// Instrument, if set, may change a pod's plan before it starts (a test appends
	// test-only flags, e.g. history recording). It must not change the template.
	Instrument func(*PodPlan)
	// ReadyTimeout bounds the wait for one pod to become Ready (default 2 min).
	ReadyTimeout time.Duration
	Logger       *slog.Logger
}

// Event is one step of the StatefulSet controller: a pod created, updated (deleted
// and created again with the new template) or deleted, with its timing.
type Event struct {
	Pod   string
	Kind  string // "create", "update", "delete"
	Start time.Time
	// Terminated is when the old pod was gone (update, delete).
	Terminated time.Time
	// Ready is when the new pod became Ready (create, update).
	Ready time.Time
}

// Took is the duration of the step.
func (e Event) Took() time.Duration {
	end := e.Ready
	if end.IsZero() {
		end = e.Terminated
	}
	return end.Sub(e.Start)
}

// Cluster runs the pods of rendered StatefulSets as real processes: each pod in a
// network namespace of its own (chaos/netns), with DNS names from a hosts file that
// `ip netns exec` puts at /etc/hosts, and a mount namespace holding its volumes. Apply
// does what the StatefulSet controller does with a changed StatefulSet.
type Cluster struct {
	cfg  Config
	net  *netns.Net
	self string
	log  *slog.Logger

	mu       sync.Mutex
	facts    *Facts
	sets     map[string]*appsv1.StatefulSet
	pods     map[string]*Pod // live pods by name
	all      []*Pod          // every pod ever started, for cleanup
	hostSeq  int
	svcSeq   int
	events   []Event
	madeDirs []string // host mountpoints this run created
	notify   chan struct{}
	closed   bool
	dnsMu    sync.Mutex
	etcNetns []string
}

// NewCluster creates the run's network. Close it (t.Cleanup) to stop every pod and
// remove every namespace, hosts file and mountpoint it made.
func NewCluster(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = "cluster.local"
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 2 * time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if _, err := netns.Sweep(ctx, cfg.Prefix); err != nil {
		log.Warn("sweep", "err", err)
	}
	SweepEtcNetns(cfg.Prefix)
	nw, err := netns.New(ctx, netns.Config{Prefix: cfg.Prefix, Logger: log})
	if err != nil {
		return nil, err
	}
	var mem int64
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = kb * 1024
		}
	}
	c := &Cluster{cfg: cfg, net: nw, self: self, log: log, sets: map[string]*appsv1.StatefulSet{},
		pods: map[string]*Pod{}, notify: make(chan struct{}),
		facts: &Facts{Namespace: cfg.Namespace, ClusterDomain: cfg.ClusterDomain, NodeName: "e2e-node",
			HostIP: nw.BridgeIP(), ConfigMaps: map[string]*corev1.ConfigMap{}, Secrets: map[string]*corev1.Secret{},
			ServiceIPs: map[string]netip.Addr{}, NodeCPUs: runtime.NumCPU(), NodeMemory: mem}}
	return c, nil
}

// SweepEtcNetns removes the /etc/netns directories of an interrupted run of prefix.
func SweepEtcNetns(prefix string) {
	dirs, _ := filepath.Glob(filepath.Join("/etc/netns", netns.Tag+prefix+"-*"))
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}

// Net is the cluster's network (the bridge address is where the test dials from).
func (c *Cluster) Net() *netns.Net { return c.net }

// Events returns the controller's steps so far.
func (c *Cluster) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

// Pods returns the live pods of StatefulSet sts, by ordinal.
func (c *Cluster) Pods(sts string) []*Pod {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Pod
	for _, p := range c.pods {
		if p.Plan.StatefulSet == sts {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *Pod) int { return a.Plan.Ordinal - b.Plan.Ordinal })
	return out
}

// AllPods returns every pod ever started, live or deleted.
func (c *Cluster) AllPods() []*Pod {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.all)
}

func (c *Cluster) factsSnapshot() *Facts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.facts
}

func (c *Cluster) pvcDir(name string) string { return filepath.Join(c.cfg.WorkDir, "pvc", name) }

// changed wakes everything waiting on a pod's state and rewrites the DNS.
func (c *Cluster) changed() {
	c.mu.Lock()
	close(c.notify)
	c.notify = make(chan struct{})
	c.mu.Unlock()
	if err := c.writeDNS(); err != nil {
		c.log.Error("e2e: dns", "err", err)
	}
}

// waitFor polls cond on every pod change (and every 250 ms) until it holds.
func (c *Cluster) waitFor(ctx context.Context, cond func() bool) error {
	for {
		c.mu.Lock()
		ch := c.notify
		c.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Apply makes the cluster run objs, as `helm upgrade` followed by the controllers
// would: ConfigMaps, Secrets and Services replaced (projected volumes of running
// pods re-synced), then every StatefulSet reconciled at once, each returning when
// all its replicas run the new template and are Ready.
func (c *Cluster) Apply(ctx context.Context, objs *Objects) error {
	c.mu.Lock()
	f := *c.facts
	f.ConfigMaps, f.Secrets = map[string]*corev1.ConfigMap{}, map[string]*corev1.Secret{}
	for _, cm := range objs.ConfigMaps {
		f.ConfigMaps[cm.Name] = cm
	}
	for _, s := range objs.Secrets {
		f.Secrets[s.Name] = s
	}
	f.Services = objs.Services
	ips := map[string]netip.Addr{}
	for _, s := range objs.Services {
		if ip, ok := f.ServiceIPs[s.Name]; ok {
			ips[s.Name] = ip
			continue
		}
		if s.Spec.ClusterIP != corev1.ClusterIPNone {
			c.svcSeq++
			ips[s.Name] = netip.AddrFrom4([4]byte{10, 96, byte(c.svcSeq >> 8), byte(c.svcSeq)})
		}
	}
	f.ServiceIPs = ips
	c.facts = &f
	live := make([]*Pod, 0, len(c.pods))
	for _, p := range c.pods {
		live = append(live, p)
	}
	c.mu.Unlock()
	for _, p := range live {
		if err := p.syncVolumes(); err != nil {
			return err
		}
	}
	c.changed()
	errs := make([]error, len(objs.StatefulSets))
	var wg sync.WaitGroup
	for i, sts := range objs.StatefulSets {
		wg.Go(func() { errs[i] = c.reconcile(ctx, sts) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// reconcile is the StatefulSet controller for one StatefulSet: create the missing
// ordinals (in order, each Ready before the next, unless podManagementPolicy is
// Parallel), delete the ordinals past the replica count (highest first, deleting
// their PVCs if whenScaled is Delete), then roll the pods whose template is not the
// current one, highest ordinal first, each deleted gracefully and recreated and
// Ready before the next.
func (c *Cluster) reconcile(ctx context.Context, sts *appsv1.StatefulSet) error {
	c.mu.Lock()
	c.sets[sts.Name] = sts
	c.mu.Unlock()
	replicas := 1
	if sts.Spec.Replicas != nil {
		replicas = int(*sts.Spec.Replicas)
	}
	parallel := sts.Spec.PodManagementPolicy == appsv1.ParallelPodManagement
	rev := TemplateRevision(&sts.Spec.Template)
	byOrdinal := func() map[int]*Pod {
		m := map[int]*Pod{}
		for _, p := range c.Pods(sts.Name) {
			m[p.Plan.Ordinal] = p
		}
		return m
	}
	// Create.
	var created []*Pod
	for i := range replicas {
		if byOrdinal()[i] != nil {
			continue
		}
		ev := Event{Pod: PodName(sts, i), Kind: "create", Start: time.Now()}
		p, err := c.createPod(ctx, sts, i)
		if err != nil {
			return err
		}
		created = append(created, p)
		if !parallel {
			if err := c.waitReady(ctx, p); err != nil {
				return err
			}
			ev.Ready = time.Now()
			c.record(ev)
		}
	}
	for _, p := range created {
		if parallel {
			if err := c.waitReady(ctx, p); err != nil {
				return err
			}
			c.record(Event{Pod: p.Name(), Kind: "create", Start: p.createdAt, Ready: time.Now()})
		}
	}
	// Scale down, highest ordinal first (all at once if Parallel).
	pods := byOrdinal()
	var condemned []*Pod
	for _, i := range slices.Backward(sortedInts(pods)) {
		if i >= replicas {
			condemned = append(condemned, pods[i])
		}
	}
	scaleDown := func(p *Pod) error {
		ev := Event{Pod: p.Name(), Kind: "delete", Start: time.Now()}
		if err := c.deletePod(ctx, p); err != nil {
			return err
		}
		ev.Terminated = time.Now()
		c.record(ev)
		if pr := sts.Spec.PersistentVolumeClaimRetentionPolicy; pr != nil && pr.WhenScaled == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
			for _, claim := range p.Plan.Claims {
				if err := os.RemoveAll(c.pvcDir(claim + "-" + p.Name())); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if parallel {
		errs := make([]error, len(condemned))
		var wg sync.WaitGroup
		for i, p := range condemned {
			wg.Go(func() { errs[i] = scaleDown(p) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	} else {
		for _, p := range condemned {
			if err := scaleDown(p); err != nil {
				return err
			}
		}
	}
	// Rolling update, highest ordinal first.
	if sts.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return nil
	}
	partition := 0
	if ru := sts.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		partition = int(*ru.Partition)
	}
	for i := replicas - 1; i >= partition; i-- {
		p := byOrdinal()[i]
		if p == nil || p.Plan.Revision == rev {
			continue
		}
		// The controller deletes the next pod only when every pod is Ready.
		if err := c.waitAllReady(ctx, sts.Name); err != nil {
			return err
		}
		ev := Event{Pod: p.Name(), Kind: "update", Start: time.Now()}
		if err := c.deletePod(ctx, p); err != nil {
			return err
		}
		ev.Terminated = time.Now()
		np, err := c.createPod(ctx, sts, i)
		if err != nil {
			return err
		}
		if err := c.waitReady(ctx, np); err != nil {
			return err
		}
		ev.Ready = time.Now()
		c.record(ev)
	}
	return c.waitAllReady(ctx, sts.Name)
}

func sortedInts(m map[int]*Pod) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (c *Cluster) record(ev Event) {
	c.mu.Lock()
	c.events = append(c.events, ev)
	c.mu.Unlock()
	c.log.Info("e2e: statefulset step", "pod", ev.Pod, "kind", ev.Kind, "took", ev.Took())
}

// waitReady waits until p is Ready, failing early if the pod keeps crashing.
func (c *Cluster) waitReady(ctx context.Context, p *Pod) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ReadyTimeout)
	defer cancel()
	if err := c.waitFor(ctx, p.Ready); err != nil {
		return fmt.Errorf("e2e: pod %s not Ready (restarts %d, exits %v): %w; log %s", p.Name(), p.Restarts(), p.Exits(), err, p.LogPath())
	}
	return nil
}

func (c *Cluster) waitAllReady(ctx context.Context, sts string) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ReadyTimeout)
	defer cancel()
	return c.waitFor(ctx, func() bool {
		for _, p := range c.Pods(sts) {
			if !p.Ready() {
				return false
			}
		}
		return true
	})
}

// createPod gives replica ordinal a new network namespace (so a new IP, as a new
// pod gets), its DNS entries and its volumes, and starts it.
func (c *Cluster) createPod(ctx context.Context, sts *appsv1.StatefulSet, ordinal int) (*Pod, error) {
	c.mu.Lock()
	c.hostSeq++
	hostName := fmt.Sprintf("p%d", c.hostSeq)
	c.mu.Unlock()
	h, err := c.net.AddHost(ctx, hostName)
	if err != nil {
		return nil, err
	}
	plan, err := PlanPod(sts, ordinal, h.IP, c.factsSnapshot())
	if err != nil {
		return nil, err
	}
	if c.cfg.Instrument != nil {
		c.cfg.Instrument(plan)
	}
	dir := filepath.Join(c.cfg.WorkDir, "pods", fmt.Sprintf("%s-%s", plan.Name, hostName))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := &Pod{Plan: plan, Host: h, Dir: dir, c: c, log: c.log}
	if err := c.makeMountpoints(plan); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.pods[plan.Name] = p
	c.all = append(c.all, p)
	c.mu.Unlock()
	if err := c.writeDNS(); err != nil {
		return nil, err
	}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	c.log.Info("e2e: pod started", "pod", plan.Name, "ip", h.IP, "ns", h.NS, "revision", plan.Revision)
	return p, nil
}

// makeMountpoints creates, on the host, the parent directories of the mountpoints
// that the host lacks (the pod's mount namespace shares the host's root filesystem;
// the pod init creates the mountpoint itself, a file or a directory as its volume
// is). Close removes what is still empty of them.
func (c *Cluster) makeMountpoints(plan *PodPlan) error {
	var targets []string
	for _, cp := range append(slices.Clone(plan.Init), plan.Main) {
		for _, m := range cp.Mounts {
			targets = append(targets, filepath.Clean(m.MountPath))
		}
	}
	if plan.AutomountSAToken {
		targets = append(targets, "/var/run/secrets/kubernetes.io/serviceaccount")
	}
	slices.Sort(targets)
	for _, t := range targets {
		if _, err := os.Lstat(t); err == nil {
			continue
		}
		var missing []string
		for d := t; d != "/"; d = filepath.Dir(d) {
			if _, err := os.Lstat(d); err == nil {
				break
			}
			missing = append(missing, d)
		}
		c.mu.Lock()
		c.madeDirs = append(c.madeDirs, missing...)
		c.mu.Unlock()
		for _, d := range slices.Backward(missing[1:]) {
			if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
				return fmt.Errorf("e2e: mountpoint %s: %w", d, err)
			}
		}
	}
	return nil
}

// removeIfEmpty removes a mountpoint this run made: an empty directory or an empty
// file, nothing else.
func removeIfEmpty(p string) {
	fi, err := os.Lstat(p)
	if err != nil || (fi.Mode().IsRegular() && fi.Size() > 0) || fi.Mode()&os.ModeSymlink != 0 {
		return
	}
	_ = os.Remove(p) // fails on a non-empty directory
}

// deletePod deletes p gracefully and forgets it.
func (c *Cluster) deletePod(ctx context.Context, p *Pod) error {
	err := p.terminate(ctx)
	c.mu.Lock()
	if c.pods[p.Name()] == p {
		delete(c.pods, p.Name())
	}
	c.mu.Unlock()
	c.changed()
	return err
}

// Close stops every pod (SIGKILL; call Shutdown first for a graceful end), removes
// the network, the hosts files and the mountpoints the run created.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	all := slices.Clone(c.all)
	made := slices.Clone(c.madeDirs)
	c.mu.Unlock()
	for _, p := range all {
		p.kill()
	}
	err := c.net.Close()
	c.dnsMu.Lock()
	for _, d := range c.etcNetns {
		_ = os.RemoveAll(d)
	}
	c.dnsMu.Unlock()
	slices.SortFunc(made, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, d := range made {
		removeIfEmpty(d)
	}
	return err
}
