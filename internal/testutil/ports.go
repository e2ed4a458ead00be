package testutil

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Ports for child processes are picked below the kernel's ephemeral range. A port
// that net.Listen(":0") hands out and the test then closes is in that range, and
// before the child binds it the kernel may give it to any outgoing connection of any
// process on the machine (a Raft dial, a NATS reconnect): the child then fails with
// "address already in use". Nothing takes a port below the range unless asked for it
// by number, so a port checked free there stays free; the only rivals are other test
// processes picking at random from the same ~20,000 ports.
const (
	lowestPort           = 10000
	defaultEphemeralLow  = 32768
	ephemeralRangeSysctl = "/proc/sys/net/ipv4/ip_local_port_range"
)

var (
	portsMu sync.Mutex
	given   = map[int]bool{} // ports this process has handed out, never handed out again
)

// FreePort returns a port of 127.0.0.1 that is free now, is outside the kernel's
// ephemeral range, and has not been returned before in this process. Give it to a
// child process to listen on.
func FreePort(tb testing.TB) int {
	tb.Helper()
	p, err := freePort(lowestPort, EphemeralLow())
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// FreePorts returns n distinct ports as FreePort does.
func FreePorts(tb testing.TB, n int) []int {
	tb.Helper()
	out := make([]int, n)
	for i := range out {
		out[i] = FreePort(tb)
	}
	return out
}

// EphemeralLow is the first port of the kernel's ephemeral range (32768 if it cannot
// be read): ports below it are never handed to outgoing connections.
func EphemeralLow() int {
	b, err := os.ReadFile(ephemeralRangeSysctl)
	if err != nil {
		return defaultEphemeralLow
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return defaultEphemeralLow
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low <= lowestPort+1000 {
		return defaultEphemeralLow
	}
	return low
}

// freePort tries random ports in [from, below) until one binds.
func freePort(from, below int) (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := from + rand.IntN(below-from)
		if given[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		_ = l.Close()
		given[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("testutil: no free port in [%d, %d) after 1000 tries", from, below)
}
