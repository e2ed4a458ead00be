package memlimit

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultRatio is the share of the container's limit the runtime aims to stay under;
// the rest is for memory the Go heap does not count (stacks, mmapped files, the
// kernel's page cache charged to the cgroup) and for bursts.
const DefaultRatio = 0.9

// cgroup v1 reports "no limit" as a huge number rounded to the page size; anything at
// or above this is treated as unlimited.
const v1Unlimited = int64(1) << 62

// CgroupLimit returns the memory limit of the cgroup whose files are under root (the
// container's view, normally /sys/fs/cgroup): cgroup v2's memory.max, else v1's
// memory/memory.limit_in_bytes. ok is false when there is no limit or no cgroup file.
func CgroupLimit(root string) (limit int64, ok bool, err error) {
	for _, f := range []string{"memory.max", filepath.Join("memory", "memory.limit_in_bytes")} {
		b, rerr := os.ReadFile(filepath.Join(root, f))
		if errors.Is(rerr, os.ErrNotExist) {
			continue
		}
		if rerr != nil {
			return 0, false, fmt.Errorf("memlimit: %w", rerr)
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, false, nil
		}
		n, perr := strconv.ParseInt(s, 10, 64)
		if perr != nil || n <= 0 {
			return 0, false, fmt.Errorf("memlimit: %s: unexpected content %q", f, s)
		}
		if n >= v1Unlimited {
			return 0, false, nil
		}
		return n, true, nil
	}
	return 0, false, nil
}

// Result says what Apply did.
type Result struct {
	// Limit is the soft limit now in force (bytes), 0 when Apply set none.
	Limit int64
	// Source is "GOMEMLIMIT" (the environment's, left alone), "cgroup" (set from the
	// container's limit) or "" (no limit found, or ratio 0: nothing set).
	Source string
	// Cgroup is the container's limit Apply read (0 if none).
	Cgroup int64
}

// Apply sets the runtime's soft memory limit to ratio × the cgroup's limit under root,
// unless GOMEMLIMIT is set or ratio is 0. ratio must be in [0, 1].
func Apply(root string, ratio float64) (Result, error) {
	if math.IsNaN(ratio) || ratio < 0 || ratio > 1 {
		return Result{}, fmt.Errorf("memlimit: ratio %v is not between 0 and 1", ratio)
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return Result{Limit: debug.SetMemoryLimit(-1), Source: "GOMEMLIMIT"}, nil
	}
	if ratio == 0 {
		return Result{}, nil
	}
	limit, ok, err := CgroupLimit(root)
	if err != nil || !ok {
		return Result{}, err
	}
	soft := int64(float64(limit) * ratio)
	debug.SetMemoryLimit(soft)
	return Result{Limit: soft, Source: "cgroup", Cgroup: limit}, nil
}
