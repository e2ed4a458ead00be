package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// InitEnv names the environment variable that turns a re-exec of the test binary
// into a pod's init: the variable holds the path of an initSpec file. A test binary
// that uses Cluster must call RunPodInitIfAsked first thing in TestMain.
const InitEnv = "SHARDMATCH_E2E_POD_INIT"

// initSpec is what the init does inside the pod's network namespace before it
// becomes the container's program: a mount namespace of its own with the image's
// files and the volumes at their mountPaths, the pod's hostname, the container's
// user, and exactly the container's environment.
type initSpec struct {
	Hostname string `json:"hostname"`
	// ImageDirs are covered with an empty tmpfs (the image's directories that the
	// host does not have, or whose host content must not show), then ImageFiles are
	// bind-mounted in them.
	ImageDirs  []string          `json:"image_dirs"`
	ImageFiles map[string]string `json:"image_files"` // path in the image -> host file
	Mounts     []bindMount       `json:"mounts"`
	ReadOnly   bool              `json:"read_only_root"`
	UID        *int64            `json:"uid,omitempty"`
	GID        *int64            `json:"gid,omitempty"`
	Groups     []int64           `json:"groups,omitempty"`
	WorkDir    string            `json:"workdir,omitempty"`
	Argv       []string          `json:"argv"`
	Env        []string          `json:"env"`
}

// bindMount is one volume mount: Source (a host directory or file) at Target.
type bindMount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only"`
}

// RunPodInitIfAsked does nothing unless InitEnv is set. Then it runs the pod's init
// and execs the container's program; it never returns (it exits 127 on failure,
// as a runtime does for a container that cannot start).
func RunPodInitIfAsked() {
	p := os.Getenv(InitEnv)
	if p == "" {
		return
	}
	err := podInit(p)
	fmt.Fprintf(os.Stderr, "e2e pod init: %v\n", err)
	os.Exit(127)
}

func podInit(specPath string) error {
	b, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	var s initSpec
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	// Namespaces are per thread until exec: keep this goroutine on its thread.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_NEWUTS); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	// Every source is opened (in this mount namespace: a bind from another one is
	// refused) before anything is mounted: a volume at /tmp would
	// otherwise hide sources that live under the host's /tmp.
	srcs := map[string]string{}
	for _, src := range append(slices.Collect(maps.Values(s.ImageFiles)), mountSources(s.Mounts)...) {
		if _, ok := srcs[src]; ok {
			continue
		}
		fd, err := unix.Open(src, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", src, err)
		}
		srcs[src] = "/proc/self/fd/" + strconv.Itoa(fd)
	}
	for dst, src := range s.ImageFiles {
		s.ImageFiles[dst] = srcs[src]
	}
	for i := range s.Mounts {
		s.Mounts[i].Source = srcs[s.Mounts[i].Source]
	}
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("sethostname: %w", err)
		}
	}
	for _, d := range s.ImageDirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			return fmt.Errorf("tmpfs %s: %w", d, err)
		}
	}
	for _, dst := range sortedKeys(s.ImageFiles) {
		if err := bind(s.ImageFiles[dst], dst); err != nil {
			return err
		}
	}
	mounts := slices.Clone(s.Mounts)
	slices.SortStableFunc(mounts, func(a, b bindMount) int {
		return strings.Count(filepath.Clean(a.Target), "/") - strings.Count(filepath.Clean(b.Target), "/")
	})
	for _, m := range mounts {
		if err := bind(m.Source, m.Target); err != nil {
			return err
		}
	}
	// Read-only last, so that nested mountpoints could still be created.
	for _, m := range mounts {
		if m.ReadOnly {
			if err := remountRO(m.Target); err != nil {
				return err
			}
		}
	}
	for dst := range s.ImageFiles {
		if err := remountRO(dst); err != nil {
			return err
		}
	}
	if s.ReadOnly {
		if err := remountRO("/"); err != nil {
			return err
		}
	}
	if s.GID != nil || len(s.Groups) > 0 {
		groups := make([]int, 0, len(s.Groups))
		for _, g := range s.Groups {
			groups = append(groups, int(g))
		}
		if err := syscall.Setgroups(groups); err != nil {
			return fmt.Errorf("setgroups: %w", err)
		}
	}
	if s.GID != nil {
		if err := syscall.Setgid(int(*s.GID)); err != nil {
			return fmt.Errorf("setgid: %w", err)
		}
	}
	if s.UID != nil {
		if err := syscall.Setuid(int(*s.UID)); err != nil {
			return fmt.Errorf("setuid: %w", err)
		}
	}
	// A credential change clears the parent-death signal; the pod must still die
	// with the test.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("pdeathsig: %w", err)
	}
	if os.Getppid() == 1 {
		return fmt.Errorf("the test process is gone")
	}
	wd := s.WorkDir
	if wd == "" {
		wd = "/"
	}
	if err := os.Chdir(wd); err != nil {
		return fmt.Errorf("workingDir %s: %w", wd, err)
	}
	prog, err := lookPath(s.Argv[0], s.Env)
	if err != nil {
		return err
	}
	return syscall.Exec(prog, s.Argv, s.Env)
}

func mountSources(ms []bindMount) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Source)
	}
	return out
}

// bind bind-mounts src at dst, creating dst (an empty file or directory, as src is).
func bind(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(dst); os.IsNotExist(err) {
		if fi.IsDir() {
			err = os.MkdirAll(dst, 0o755)
		} else {
			if err = os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
				var f *os.File
				if f, err = os.Create(dst); err == nil {
					err = f.Close()
				}
			}
		}
		if err != nil {
			return fmt.Errorf("mountpoint %s: %w", dst, err)
		}
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s at %s: %w", src, dst, err)
	}
	return nil
}

func remountRO(dst string) error {
	if err := unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("read-only %s: %w", dst, err)
	}
	return nil
}

// lookPath finds a command without a slash on the container's PATH, as the runtime
// does.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	pathVar := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	for _, d := range filepath.SplitList(pathVar) {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found on PATH %s", name, pathVar)
}
