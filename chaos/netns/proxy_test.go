package netns

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// rtt times one one-byte round trip on c.
func rtt(t *testing.T, c net.Conn) time.Duration {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := c.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// minRTT is the fastest of a few round trips, which filters scheduling noise.
func minRTT(t *testing.T, c net.Conn) time.Duration {
	best := time.Hour
	for range 3 {
		best = min(best, rtt(t, c))
	}
	return best
}

// TestProxyAddsLatency: a round trip through the proxy takes at least the configured
// latency, on a connection opened before and one opened after SetLatency, and
// SetLatency(0) removes it. Needs no root: the proxy is plain TCP.
func TestProxyAddsLatency(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	p, err := NewProxy("t", "127.0.0.1:0", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Addr() == "127.0.0.1:0" {
		t.Fatalf("Addr %s is not the bound address", p.Addr())
	}
	old, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	const latency = 80 * time.Millisecond
	if base := minRTT(t, old); base >= latency {
		t.Skipf("machine too slow: baseline round trip %v", base)
	}

	if err := p.SetLatency(latency, 0); err != nil {
		t.Fatal(err)
	}
	fresh, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	for name, c := range map[string]net.Conn{"existing": old, "new": fresh} {
		if got := minRTT(t, c); got < latency {
			t.Errorf("%s connection: round trip %v with latency %v", name, got, latency)
		}
	}
	if l, j := p.Latency(); l != latency || j != 0 {
		t.Errorf("Latency() = %v, %v", l, j)
	}

	if err := p.SetLatency(0, 0); err != nil {
		t.Fatal(err)
	}
	if got := minRTT(t, old); got >= latency {
		t.Errorf("round trip %v after SetLatency(0)", got)
	}

	if err := p.SetLatency(-time.Millisecond, 0); !errors.Is(err, ErrConfig) {
		t.Errorf("negative latency: %v, want ErrConfig", err)
	}
	if err := p.SetLatency(time.Millisecond, time.Second); !errors.Is(err, ErrConfig) {
		t.Errorf("jitter above latency: %v, want ErrConfig", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.SetLatency(latency, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("SetLatency after Close: %v, want ErrClosed", err)
	}
	if _, err := NewProxy("", "127.0.0.1:0", "x:1"); !errors.Is(err, ErrConfig) {
		t.Errorf("NewProxy without a name: %v, want ErrConfig", err)
	}
}

func TestMillis(t *testing.T) {
	for d, want := range map[time.Duration]int64{0: 0, -time.Second: 0, time.Microsecond: 1,
		1400 * time.Microsecond: 1, 1600 * time.Microsecond: 2, time.Second: 1000} {
		if got := millis(d); got != want {
			t.Errorf("millis(%v) = %d, want %d", d, got, want)
		}
	}
}
