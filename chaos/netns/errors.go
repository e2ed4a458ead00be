package netns

import "errors"

// Errors returned by this package. Failures of the ip and nft commands wrap
// ErrCommand and carry the command line and its output.
var (
	// ErrNotRoot means the caller is not root: namespaces and nftables need
	// CAP_NET_ADMIN (and CAP_SYS_ADMIN for `ip netns`).
	ErrNotRoot = errors.New("netns: needs root (CAP_NET_ADMIN)")
	// ErrMissingTool means the ip or nft command is not installed.
	ErrMissingTool = errors.New("netns: required command not found")
	// ErrConfig means a Config, host name, fault or ProcSpec is invalid.
	ErrConfig = errors.New("netns: invalid configuration")
	// ErrCommand means an ip or nft command failed.
	ErrCommand = errors.New("netns: command failed")
	// ErrUnknownHost means a fault named a host that AddHost never created.
	ErrUnknownHost = errors.New("netns: unknown host")
	// ErrHostExists means AddHost was called twice with one name.
	ErrHostExists = errors.New("netns: host already exists")
	// ErrNoSubnet means no free /24 was found for the run's bridge.
	ErrNoSubnet = errors.New("netns: no free subnet")
	// ErrSubnetFull means the subnet has no address left for another host.
	ErrSubnetFull = errors.New("netns: subnet full")
	// ErrClosed means the Net or Proxy was closed.
	ErrClosed = errors.New("netns: closed")
	// ErrUnknownFault means Heal was given an id that is not active.
	ErrUnknownFault = errors.New("netns: unknown fault id")
	// ErrFaultExists means Partition or Loss was given an id that is already active.
	ErrFaultExists = errors.New("netns: fault id already active")
	// ErrNotRunning means a signal was asked of a process that has exited.
	ErrNotRunning = errors.New("netns: process not running")
	// ErrStuck means a process did not exit after SIGKILL within a bounded time.
	ErrStuck = errors.New("netns: process did not exit after SIGKILL")
)
