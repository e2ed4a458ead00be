package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// checkEnv reports ErrNotRoot or ErrMissingTool before anything is changed.
func checkEnv() error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s (install iproute2 and nftables)", ErrMissingTool, tool)
		}
	}
	return nil
}

// run runs one ip or nft command, feeding it stdin if not empty, and returns its
// standard output. A failure wraps ErrCommand and quotes the command and its stderr.
func run(ctx context.Context, log *slog.Logger, stdin string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	log.Debug("netns exec", "cmd", name+" "+strings.Join(args, " "), "err", err)
	if err != nil {
		return stdout.String(), fmt.Errorf("%w: %s %s: %v: %s", ErrCommand, name, strings.Join(args, " "), err,
			strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// notFound reports whether a failed ip/nft command failed only because the object
// it was to delete does not exist (any more): deletions are idempotent.
func notFound(err error) bool {
	if err == nil || !errors.Is(err, ErrCommand) {
		return false
	}
	msg := err.Error()
	for _, s := range []string{"Cannot find device", "No such file or directory"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// procAttr is the process attributes of every child this package starts: a process
// group of its own, so that signals reach its children too, and SIGKILL when the
// parent dies, so that an interrupted runner leaves no node running.
//
// Pdeathsig fires when the OS thread that forked the child exits; the Go runtime
// keeps its threads alive except when a goroutine exits while locked to its thread
// (LockOSThread), which this package never does.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// nsCommand returns the argv that runs name with args in network namespace ns
// (the root namespace when ns is empty).
func nsCommand(ns, name string, args []string) (string, []string) {
	if ns == "" {
		return name, args
	}
	return "ip", append([]string{"netns", "exec", ns, name}, args...)
}

// Command returns a command that runs name with args inside the host's network
// namespace (through `ip netns exec`, which execs in place, so the command's PID is
// the program's). It runs in a process group of its own and is sent SIGKILL if the
// calling process dies. Cancelling ctx kills the whole process group.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	path, argv := nsCommand(h.NS, name, args)
	cmd := exec.CommandContext(ctx, path, argv...)
	cmd.SysProcAttr = procAttr()
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	return cmd
}
