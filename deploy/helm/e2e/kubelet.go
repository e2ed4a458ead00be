package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/shardmatch/shardmatch/chaos/netns"
)

// Container restart back-off, as the kubelet's CrashLoopBackOff: 10 s, doubled per
// restart, at most 5 min.
const (
	backoffFirst = 10 * time.Second
	backoffMax   = 5 * time.Minute
)

// Pod is one replica as the kubelet runs it: its network namespace, its volumes, its
// container process (restarted when it exits, as restartPolicy Always does), and the
// prober that decides whether it is started and ready.
type Pod struct {
	Plan *PodPlan
	Host *netns.Host
	// Dir holds the pod's volumes, init spec and container log.
	Dir string

	c   *Cluster
	log *slog.Logger

	mu          sync.Mutex
	proc        *netns.Proc
	started     bool // startup probe succeeded (or none)
	ready       bool
	terminating bool
	gone        bool
	restarts    int
	exits       []string
	stops       []string
	createdAt   time.Time
	readyAt     time.Time // first time Ready
	volumeSums  map[string]string

	stopProbes context.CancelFunc
	probesDone sync.WaitGroup
}

// Name is the pod's name.
func (p *Pod) Name() string { return p.Plan.Name }

// IP is the pod's address.
func (p *Pod) IP() string { return p.Plan.IP.String() }

// Ready reports whether the readiness probe holds the pod ready.
func (p *Pod) Ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready && !p.terminating
}

// Restarts is how many times the container exited or was killed by a failing probe
// and was started again.
func (p *Pod) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// Exits describes every exit of the container that the kubelet did not ask for.
func (p *Pod) Exits() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.exits...)
}

// LogPath is the file with the container's stdout and stderr.
func (p *Pod) LogPath() string { return filepath.Join(p.Dir, p.Plan.Main.Name+".log") }

// PID is the container process's pid (0 if not running).
func (p *Pod) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil || !p.proc.Running() {
		return 0
	}
	return p.proc.PID()
}

// start materialises the volumes, runs the init containers and starts the main
// container and its probes.
func (p *Pod) start(ctx context.Context) error {
	if err := p.syncVolumes(); err != nil {
		return err
	}
	for i, ic := range p.Plan.Init {
		spec, err := p.writeInitSpec(ic, fmt.Sprintf("init-%d", i))
		if err != nil {
			return err
		}
		cmd := p.Host.Command(ctx, p.c.self)
		cmd.Env = append(os.Environ(), InitEnv+"="+spec)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("e2e: %s: init container %s: %v\n%s", p.Name(), ic.Name, err, out)
		}
	}
	spec, err := p.writeInitSpec(p.Plan.Main, "main")
	if err != nil {
		return err
	}
	proc, err := netns.StartProc(ctx, netns.ProcSpec{Name: p.Name(), Host: p.Host, Path: p.c.self,
		Env: []string{InitEnv + "=" + spec}, LogPath: p.LogPath(), Logger: p.log})
	if err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(context.Background())
	p.mu.Lock()
	p.proc, p.createdAt, p.stopProbes = proc, time.Now(), cancel
	p.started = p.Plan.Main.Startup == nil
	p.mu.Unlock()
	p.probesDone.Add(1)
	go func() { defer p.probesDone.Done(); p.supervise(pctx) }()
	return nil
}

// volumeDir is where volume name lives on the host.
func (p *Pod) volumeDir(name string) string {
	for _, claim := range p.Plan.Claims {
		if claim == name {
			return p.c.pvcDir(claim + "-" + p.Name())
		}
	}
	for _, v := range p.Plan.Volumes {
		if v.Name == name && v.PersistentVolumeClaim != nil {
			return p.c.pvcDir(v.PersistentVolumeClaim.ClaimName)
		}
		if v.Name == name && v.HostPath != nil {
			return v.HostPath.Path
		}
	}
	return filepath.Join(p.Dir, "volumes", name)
}

// syncVolumes creates the pod's volumes, and re-projects ConfigMap and Secret
// volumes whose content changed (the kubelet's periodic sync).
func (p *Pod) syncVolumes() error {
	f := p.c.factsSnapshot()
	gid := -1
	if p.Plan.FSGroup != nil {
		gid = int(*p.Plan.FSGroup)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.volumeSums == nil {
		p.volumeSums = map[string]string{}
	}
	for _, claim := range p.Plan.Claims {
		if err := p.makeWritable(p.volumeDir(claim), gid); err != nil {
			return err
		}
	}
	for i := range p.Plan.Volumes {
		v := &p.Plan.Volumes[i]
		dir := p.volumeDir(v.Name)
		files, projected, err := volumeFiles(v, f)
		if err != nil {
			return fmt.Errorf("e2e: %s: %w", p.Name(), err)
		}
		switch {
		case projected:
			b, _ := json.Marshal(files)
			sum := string(b)
			if p.volumeSums[v.Name] == sum {
				continue
			}
			if err := WriteAtomic(dir, files, gid); err != nil {
				return fmt.Errorf("e2e: %s: volume %s: %w", p.Name(), v.Name, err)
			}
			p.volumeSums[v.Name] = sum
		case v.EmptyDir != nil:
			if err := os.MkdirAll(dir, 0o777); err != nil {
				return err
			}
			if err := os.Chmod(dir, 0o777); err != nil {
				return err
			}
		case v.PersistentVolumeClaim != nil:
			if err := p.makeWritable(dir, gid); err != nil {
				return err
			}
		case v.HostPath != nil:
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		default:
			return fmt.Errorf("e2e: %s: volume %s: only configMap, secret, projected, emptyDir, hostPath and PVC volumes are supported", p.Name(), v.Name)
		}
	}
	return nil
}

// makeWritable creates a PVC's directory; with an fsGroup it belongs to that group,
// group-writable and setgid, as the kubelet leaves a volume it applied fsGroup to.
func (p *Pod) makeWritable(dir string, gid int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if gid < 0 {
		return nil
	}
	// The volume may be in use (syncVolumes runs on live pods too): a file the pod
	// removes or renames while this walks, e.g. NATS's *.tmp files, is skipped.
	gone := func(err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return gone(err)
		}
		if err := os.Lchown(path, -1, gid); err != nil {
			return gone(err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return nil
		}
		mode := fi.Mode().Perm() | 0o060
		if fi.IsDir() {
			return gone(os.Chmod(path, mode|0o010|os.ModeSetgid))
		}
		return gone(os.Chmod(path, mode))
	})
}

// writeInitSpec writes the pod init's spec for container cp and returns its path.
func (p *Pod) writeInitSpec(cp *ContainerPlan, name string) (string, error) {
	s := initSpec{Hostname: p.Plan.Hostname, ImageFiles: map[string]string{}, ReadOnly: cp.ReadOnlyRoot,
		UID: cp.RunAsUser, GID: cp.RunAsGroup, WorkDir: cp.WorkingDir, Argv: cp.Argv, Env: cp.Env}
	dirs := map[string]bool{}
	for dst, src := range p.c.cfg.Image {
		s.ImageFiles[dst] = src
		dirs[filepath.Dir(dst)] = true
	}
	s.ImageDirs = sortedKeys(dirs)
	if p.Plan.FSGroup != nil {
		s.Groups = append(s.Groups, *p.Plan.FSGroup)
	}
	volKind := map[string]*corev1.Volume{}
	for i := range p.Plan.Volumes {
		volKind[p.Plan.Volumes[i].Name] = &p.Plan.Volumes[i]
	}
	for _, m := range cp.Mounts {
		src := p.volumeDir(m.Name)
		if m.SubPath != "" {
			src = filepath.Join(src, m.SubPath)
		}
		ro := m.ReadOnly
		if v := volKind[m.Name]; v != nil && (v.ConfigMap != nil || v.Secret != nil || v.Projected != nil) {
			ro = true // the kubelet mounts these read-only whatever the mount says
		}
		s.Mounts = append(s.Mounts, bindMount{Source: src, Target: m.MountPath, ReadOnly: ro})
	}
	if p.Plan.AutomountSAToken {
		dir := filepath.Join(p.Dir, "volumes", "kube-api-access")
		if err := WriteAtomic(dir, map[string]File{"token": {Data: []byte("e2e-fake-token"), Mode: 0o644},
			"namespace": {Data: []byte(p.Plan.Namespace), Mode: 0o644}, "ca.crt": {Data: nil, Mode: 0o644}}, -1); err != nil {
			return "", err
		}
		s.Mounts = append(s.Mounts, bindMount{Source: dir, Target: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true})
	}
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(p.Dir, name+".init.json")
	return path, os.WriteFile(path, b, 0o600)
}

// supervise is the kubelet's pod worker: it restarts the container when it exits
// (with back-off) and runs the probes.
func (p *Pod) supervise(ctx context.Context) {
	backoff := backoffFirst
	for {
		var wg sync.WaitGroup
		pctx, cancel := context.WithCancel(ctx)
		p.mu.Lock()
		proc := p.proc
		p.mu.Unlock()
		killed := make(chan string, 1)
		wg.Go(func() { p.probeAll(pctx, killed) })
		var why string
		select {
		case <-ctx.Done():
			cancel()
			wg.Wait()
			return
		case <-proc.Exited():
			why = fmt.Sprintf("exited: %v", proc.Err())
		case why = <-killed:
			_ = p.stopContainer(context.Background(), p.Plan.TerminationGrace)
		}
		cancel()
		wg.Wait()
		p.mu.Lock()
		if p.terminating {
			p.mu.Unlock()
			return
		}
		p.ready, p.started = false, p.Plan.Main.Startup == nil
		p.restarts++
		p.exits = append(p.exits, fmt.Sprintf("%s %s", time.Now().Format("15:04:05.000"), why))
		p.mu.Unlock()
		p.log.Warn("e2e: container restarts", "pod", p.Name(), "why", why, "backoff", backoff)
		p.c.changed()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, backoffMax)
		if err := proc.Restart(ctx); err != nil {
			p.log.Error("e2e: restart failed", "pod", p.Name(), "err", err)
			return
		}
	}
}

// execIn runs argv inside the container's namespaces (network, mount, UTS) as its
// user, with its environment: a preStop hook or an exec probe.
func (p *Pod) execIn(ctx context.Context, cp *ContainerPlan, argv []string) ([]byte, error) {
	pid := p.PID()
	if pid == 0 {
		return nil, netns.ErrNotRunning
	}
	args := []string{"--target", strconv.Itoa(pid), "--net", "--mount", "--uts"}
	if cp.RunAsGroup != nil {
		args = append(args, "--setgid", strconv.FormatInt(*cp.RunAsGroup, 10))
	}
	if cp.RunAsUser != nil {
		args = append(args, "--setuid", strconv.FormatInt(*cp.RunAsUser, 10))
	}
	wd := cp.WorkingDir
	if wd == "" {
		wd = "/"
	}
	// "--wdns=DIR" in one word: util-linux 2.38 parses "--wdns DIR" as an optional
	// argument left out, and then tries to execute DIR.
	args = append(args, "--wdns="+wd, "--")
	args = append(args, argv...)
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Env = cp.Env
	return cmd.CombinedOutput()
}

// stopContainer is the kubelet's container kill: the preStop hook (bounded by the
// grace period), then SIGTERM and the rest of the grace period (at least 2 s more if
// the hook used it all), then SIGKILL.
func (p *Pod) stopContainer(ctx context.Context, grace time.Duration) error {
	p.mu.Lock()
	proc := p.proc
	p.mu.Unlock()
	if proc == nil || !proc.Running() {
		return nil
	}
	start := time.Now()
	hookStatus := ""
	if hook := p.Plan.Main.PreStop; hook != nil {
		hctx, cancel := context.WithTimeout(ctx, grace)
		out, err := p.execIn(hctx, p.Plan.Main, hook)
		cancel()
		if err != nil {
			// The kubelet only records a FailedPreStopHook event and goes on; so does
			// this, but the stop's status says so, for tests to fail on.
			hookStatus = fmt.Sprintf("preStop failed (%v: %s), ", err, bytes.TrimSpace(out))
			p.log.Warn("e2e: preStop hook failed", "pod", p.Name(), "err", err, "out", string(out))
		} else {
			p.log.Info("e2e: preStop hook done", "pod", p.Name(), "took", time.Since(start), "out", string(bytes.TrimSpace(out)))
		}
	}
	rest := max(grace-time.Since(start), 2*time.Second)
	// A second before the grace period ends, a process still running gets SIGQUIT:
	// a Go program then writes every goroutine's stack to its log, which says where
	// the shutdown hung (the kubelet would just SIGKILL it).
	var quit atomic.Bool
	pid := proc.PID()
	t := time.AfterFunc(rest-time.Second, func() {
		if proc.Running() && proc.PID() == pid {
			quit.Store(true)
			_ = syscall.Kill(pid, syscall.SIGQUIT)
		}
	})
	err := proc.Stop(ctx, rest)
	t.Stop()
	status := "exit 0"
	if e := proc.Err(); e != nil {
		status = e.Error()
	}
	if quit.Load() {
		status = "hung past the grace period: SIGQUIT (stacks in the log), then " + status
	}
	p.mu.Lock()
	p.stops = append(p.stops, fmt.Sprintf("%s%s after %v", hookStatus, status, time.Since(start).Round(time.Millisecond)))
	p.mu.Unlock()
	if errors.Is(err, netns.ErrNotRunning) {
		return nil
	}
	return err
}

// Stops describes how each deliberate stop of the container ended: its exit status
// ("signal: killed" if the grace period ran out) and how long preStop and SIGTERM
// took.
func (p *Pod) Stops() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.stops...)
}

// terminate deletes the pod gracefully: not ready from now on, preStop, SIGTERM,
// grace, SIGKILL; then its probes stop.
func (p *Pod) terminate(ctx context.Context) error {
	p.mu.Lock()
	if p.terminating {
		p.mu.Unlock()
		return nil
	}
	p.terminating = true
	p.mu.Unlock()
	p.c.changed()
	err := p.stopContainer(ctx, p.Plan.TerminationGrace)
	p.mu.Lock()
	cancel := p.stopProbes
	p.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	p.probesDone.Wait()
	p.mu.Lock()
	p.gone, p.ready = true, false
	p.mu.Unlock()
	p.c.changed()
	return err
}

// kill SIGKILLs the container at once (cleanup).
func (p *Pod) kill() {
	p.mu.Lock()
	p.terminating = true
	proc, cancel := p.proc, p.stopProbes
	p.mu.Unlock()
	if proc != nil {
		_ = proc.Kill()
	}
	if cancel != nil {
		cancel()
	}
	p.probesDone.Wait()
	p.mu.Lock()
	p.gone = true
	p.mu.Unlock()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
