package netns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/shardmatch/shardmatch/clock"
)

// killWait bounds how long Kill and Stop wait for a SIGKILLed process to be reaped.
const killWait = 10 * time.Second

// ProcSpec describes a process to run, and to run again on Restart.
type ProcSpec struct {
	// Name identifies the process in logs and errors.
	Name string
	// Host is the namespace to run in; nil runs in the root namespace.
	Host *Host
	// Path is the program; Args its arguments (without argv[0]).
	Path string
	Args []string
	// Env is appended to the caller's environment (a later entry for a key wins).
	Env []string
	// LogPath receives stdout and stderr, appended, across restarts; "" discards.
	LogPath string
	// Logger receives start and exit lines; nil discards.
	Logger *slog.Logger
	// Clock times Stop's grace period and Kill's bounded wait; nil is the real clock.
	Clock clock.Clock
}

// Proc is a running (or exited) process started by StartProc. It lives in a process
// group of its own, which every signal is sent to, and dies by SIGKILL if the
// starting process dies. Its lifetime is bound to Kill and Stop, not to a context.
// Its methods are safe for concurrent use.
type Proc struct {
	spec ProcSpec
	log  *slog.Logger
	clk  clock.Clock

	restartMu sync.Mutex // serialises Restart
	mu        sync.Mutex
	cur       *incarnation
}

// incarnation is one start of the process.
type incarnation struct {
	pid  int
	done chan struct{}
	err  error // Wait's result, set before done is closed
}

func (in *incarnation) exited() bool {
	select {
	case <-in.done:
		return true
	default:
		return false
	}
}

// StartProc starts spec's program. ctx only bounds the start: cancelling it later
// does not stop the process.
func StartProc(ctx context.Context, spec ProcSpec) (*Proc, error) {
	if spec.Path == "" {
		return nil, fmt.Errorf("%w: ProcSpec %q: Path is empty", ErrConfig, spec.Name)
	}
	if spec.Host != nil && spec.Host.NS == "" {
		return nil, fmt.Errorf("%w: ProcSpec %q: Host has no namespace", ErrConfig, spec.Name)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := &Proc{spec: spec, log: spec.Logger, clk: spec.Clock}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.clk == nil {
		p.clk = clock.NewReal()
	}
	in, err := p.start()
	if err != nil {
		return nil, err
	}
	p.cur = in
	return p, nil
}

// start starts a new incarnation.
func (p *Proc) start() (*incarnation, error) {
	ns := ""
	if p.spec.Host != nil {
		ns = p.spec.Host.NS
	}
	path, argv := nsCommand(ns, p.spec.Path, p.spec.Args)
	cmd := exec.Command(path, argv...)
	cmd.SysProcAttr = procAttr()
	if len(p.spec.Env) > 0 {
		cmd.Env = append(os.Environ(), p.spec.Env...)
	}
	if p.spec.LogPath != "" {
		f, err := os.OpenFile(p.spec.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("netns: start %s: log: %w", p.spec.Name, err)
		}
		defer f.Close() // the child has its own copy
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("netns: start %s: %w", p.spec.Name, err)
	}
	in := &incarnation{pid: cmd.Process.Pid, done: make(chan struct{})}
	p.log.Info("netns: process started", "proc", p.spec.Name, "pid", in.pid, "ns", ns)
	go func() {
		in.err = cmd.Wait()
		p.log.Info("netns: process exited", "proc", p.spec.Name, "pid", in.pid, "status", in.err)
		close(in.done)
	}()
	return in, nil
}

func (p *Proc) current() *incarnation {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// PID is the current incarnation's process id (also its process group id).
func (p *Proc) PID() int { return p.current().pid }

// Exited is closed when the current incarnation exits. After Restart it is a new
// channel.
func (p *Proc) Exited() <-chan struct{} { return p.current().done }

// Running reports whether the current incarnation has not exited (a paused process
// is running).
func (p *Proc) Running() bool { return !p.current().exited() }

// Err is the current incarnation's exit status (as exec.Cmd.Wait reports it) once
// it has exited, nil before.
func (p *Proc) Err() error {
	in := p.current()
	if !in.exited() {
		return nil
	}
	return in.err
}

// sendGroup sends sig to in's process group.
func sendGroup(in *incarnation, sig syscall.Signal) error {
	if in.exited() {
		return ErrNotRunning
	}
	if err := syscall.Kill(-in.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("netns: signal %v to group %d: %w", sig, in.pid, err)
	}
	return nil
}

// wait waits until in exits, d passes (ErrStuck) or ctx ends.
func (p *Proc) wait(ctx context.Context, in *incarnation, d time.Duration) error {
	t := p.clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-in.done:
		return nil
	case <-t.C():
		return fmt.Errorf("%w: %s (pid %d)", ErrStuck, p.spec.Name, in.pid)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Kill sends SIGKILL to the whole process group and waits until the process has been
// reaped. Killing a process that has already exited does nothing and returns nil.
func (p *Proc) Kill() error {
	in := p.current()
	if err := sendGroup(in, syscall.SIGKILL); err != nil {
		if errors.Is(err, ErrNotRunning) {
			return nil
		}
		return err
	}
	return p.wait(context.Background(), in, killWait)
}

// Pause stops the whole process group (SIGSTOP); Resume continues it. It returns
// ErrNotRunning if the process has exited.
func (p *Proc) Pause() error { return sendGroup(p.current(), syscall.SIGSTOP) }

// Resume continues a paused process group (SIGCONT). It returns ErrNotRunning if the
// process has exited.
func (p *Proc) Resume() error { return sendGroup(p.current(), syscall.SIGCONT) }

// Stop asks the process group to exit (SIGTERM, followed by SIGCONT so that a paused
// process sees it), waits up to grace, then sends SIGKILL and waits for the exit.
// Stopping a process that has already exited returns nil. If ctx ends first, Stop
// sends SIGKILL and returns ctx.Err().
func (p *Proc) Stop(ctx context.Context, grace time.Duration) error {
	in := p.current()
	if err := sendGroup(in, syscall.SIGTERM); err != nil {
		if errors.Is(err, ErrNotRunning) {
			return nil
		}
		return err
	}
	_ = sendGroup(in, syscall.SIGCONT)
	err := p.wait(ctx, in, grace)
	if err == nil {
		return nil
	}
	p.log.Warn("netns: process ignored SIGTERM; killing", "proc", p.spec.Name, "pid", in.pid, "grace", grace)
	if kerr := sendGroup(in, syscall.SIGKILL); kerr != nil && !errors.Is(kerr, ErrNotRunning) {
		return kerr
	}
	if werr := p.wait(context.Background(), in, killWait); werr != nil {
		return werr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// Restart starts the process again with the same spec, appending to the same log.
// A current incarnation still running is killed first.
func (p *Proc) Restart(ctx context.Context) error {
	p.restartMu.Lock()
	defer p.restartMu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.Kill(); err != nil {
		return err
	}
	in, err := p.start()
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.cur = in
	p.mu.Unlock()
	return nil
}
