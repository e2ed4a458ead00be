package netns

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The test binary doubles as the helper process that runs inside the namespaces, so
// the tests need nothing installed: with helperEnv set, TestMain runs a helper
// instead of the tests.
const helperEnv = "SMC_NETNS_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

func runHelper(mode string, args []string) int {
	var err error
	switch mode {
	case "echo":
		err = helperEcho(args[0])
	case "dial":
		err = helperDial(args[0])
	case "udpsink":
		err = helperUDPSink(args[0])
	case "udpsend":
		err = helperUDPSend(args[0], args[1], args[2])
	case "heartbeat":
		err = helperHeartbeat(args[0])
	default:
		err = fmt.Errorf("unknown helper %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

// helperEcho echoes every TCP connection on addr until killed.
func helperEcho(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

// helperDial connects to an echo server and checks one round trip.
func helperDial(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 400*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		return fmt.Errorf("echo: %q %v", line, err)
	}
	return nil
}

// helperUDPSink counts datagrams "d <run> <seq>" per run and answers "f <run>" with
// the number of distinct sequence numbers seen in that run.
func helperUDPSink(addr string) error {
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return err
	}
	// A big receive buffer, so that only the injected loss drops datagrams.
	if rc, err := pc.(*net.UDPConn).SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 8<<20)
		})
	}
	seen := map[string]map[string]bool{}
	buf := make([]byte, 256)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		f := strings.Fields(string(buf[:n]))
		switch {
		case len(f) == 3 && f[0] == "d":
			if seen[f[1]] == nil {
				seen[f[1]] = map[string]bool{}
			}
			seen[f[1]][f[2]] = true
		case len(f) == 2 && f[0] == "f":
			_, _ = pc.WriteTo([]byte(strconv.Itoa(len(seen[f[1]]))), from)
		}
	}
}

// helperUDPSend sends count datagrams of one run to addr, then asks the sink how many
// arrived (retrying, since the question and the answer may be lost too) and prints
// the number.
func helperUDPSend(addr, run, count string) error {
	n, err := strconv.Atoi(count)
	if err != nil {
		return err
	}
	c, err := net.Dial("udp4", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	for i := range n {
		if _, err := fmt.Fprintf(c, "d %s %d", run, i); err != nil {
			return err
		}
		time.Sleep(100 * time.Microsecond) // pace, so that no queue overflows
	}
	buf := make([]byte, 64)
	for range 1000 {
		if _, err := fmt.Fprintf(c, "f %s", run); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		if m, err := c.Read(buf); err == nil {
			fmt.Println(string(buf[:m]))
			return nil
		}
	}
	return fmt.Errorf("the sink never answered")
}

// helperHeartbeat prints its network namespace, then writes an increasing counter to
// file every few milliseconds. With SMC_IGNORE_TERM=1 it ignores SIGTERM.
func helperHeartbeat(file string) error {
	if os.Getenv("SMC_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
	}
	ns, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return err
	}
	fmt.Printf("netns=%s pid=%d\n", ns, os.Getpid())
	tmp := file + ".tmp"
	for i := 1; ; i++ {
		if err := os.WriteFile(tmp, []byte(strconv.Itoa(i)), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, file); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// --- test-side helpers ---

// needRoot skips the test unless it can create namespaces and nftables rules.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, nftables)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: apt-get install -y iproute2 nftables", tool)
		}
	}
}

// testPrefix is a fresh run prefix: "t" and 4 random hex digits.
func testPrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "t" + hex.EncodeToString(b)
}

// newNet creates a Net with hosts; cleanup closes it and checks nothing is left.
func newNet(t *testing.T, hosts ...string) *Net {
	t.Helper()
	prefix := testPrefix(t)
	n, err := New(t.Context(), Config{Prefix: prefix})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if left := leftovers(t, prefix); len(left) > 0 {
			t.Errorf("left after Close: %v", left)
		}
	})
	for _, h := range hosts {
		if _, err := n.AddHost(t.Context(), h); err != nil {
			t.Fatalf("AddHost %s: %v", h, err)
		}
	}
	return n
}

// leftovers lists every namespace, link and nft table named for prefix.
func leftovers(t *testing.T, prefix string) []string {
	t.Helper()
	var left []string
	mine := func(name string) bool {
		return name == Tag+prefix || strings.HasPrefix(name, Tag+prefix+"-")
	}
	for _, args := range [][]string{{"ip", "netns", "list"}, {"ip", "-o", "link", "show"}, {"nft", "list", "tables"}} {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			var names []string
			switch {
			case args[1] == "netns" && len(f) > 0:
				names = f[:1]
			case args[1] == "-o":
				names = parseLinkNames(line)
			case len(f) == 3:
				names = f[2:]
			}
			for _, name := range names {
				if mine(name) {
					left = append(left, strings.Join(args[:2], " ")+": "+name)
				}
			}
		}
	}
	return left
}

// startHelper runs a helper mode in host h (nil: the root namespace) until the test ends.
func startHelper(t *testing.T, h *Host, logPath string, env []string, mode string, args ...string) *Proc {
	t.Helper()
	p, err := StartProc(t.Context(), ProcSpec{Name: mode, Host: h, Path: os.Args[0], Args: args,
		Env: append([]string{helperEnv + "=" + mode}, env...), LogPath: logPath})
	if err != nil {
		t.Fatalf("StartProc %s: %v", mode, err)
	}
	t.Cleanup(func() { _ = p.Kill() })
	return p
}

// canDial reports whether a process in from's namespace completes a TCP round trip
// with the echo server at addr.
func canDial(t *testing.T, from *Host, addr string) bool {
	t.Helper()
	cmd := from.Command(t.Context(), os.Args[0], addr)
	cmd.Env = append(os.Environ(), helperEnv+"=dial")
	out, err := cmd.CombinedOutput()
	t.Logf("dial %s -> %s: err=%v %s", from.Name, addr, err, strings.TrimSpace(string(out)))
	return err == nil
}

// rootDial reports whether the test process (root namespace) completes a round trip.
func rootDial(addr string) bool { return helperDial(addr) == nil }

// readCounter reads a heartbeat file; 0 if it does not exist yet.
func readCounter(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatalf("heartbeat %q: %v", b, err)
	}
	return n
}

// procState is the state letter of /proc/PID/stat (R, S, T, Z ...).
func procState(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// hostAddr is host:port.
func hostAddr(h *Host, port int) string { return net.JoinHostPort(h.IP.String(), strconv.Itoa(port)) }
