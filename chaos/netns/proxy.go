package netns

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// Proxy is a TCP proxy that adds latency to a link; the kernel has no netem, so link
// latency is a hop through this proxy. It runs toxiproxy in-process as a library (no
// HTTP API server). Every accepted connection is relayed to the upstream address.
//
// A proxy in the root namespace (listening on BridgeIP) relays host↔root traffic on
// both legs, so Net's partitions and loss do not apply to the proxied path.
type Proxy struct {
	mu      sync.Mutex
	p       *toxiproxy.Proxy
	addr    string
	latency time.Duration
	jitter  time.Duration
	closed  bool
}

// toxic names, one per direction.
var latencyToxics = map[string]string{"upstream": "smc_latency_up", "downstream": "smc_latency_down"}

// NewProxy starts a proxy listening on listen (for example BridgeIP:0) that relays to
// upstream. Addr returns the bound address.
func NewProxy(name, listen, upstream string) (*Proxy, error) {
	if name == "" || listen == "" || upstream == "" {
		return nil, fmt.Errorf("%w: NewProxy needs a name, a listen and an upstream address", ErrConfig)
	}
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	tp := toxiproxy.NewProxy(srv, name, listen, upstream)
	if err := tp.Start(); err != nil {
		return nil, fmt.Errorf("netns: proxy %s on %s: %w", name, listen, err)
	}
	tp.Lock()
	addr := tp.Listen
	tp.Unlock()
	return &Proxy{p: tp, addr: addr}, nil
}

// Addr is the address the proxy listens on.
func (p *Proxy) Addr() string { return p.addr }

// Latency returns the latency and jitter currently set.
func (p *Proxy) Latency() (latency, jitter time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latency, p.jitter
}

// SetLatency delays the data in each direction by latency ± jitter (a one-way delay,
// so a request-response round trip takes about 2×latency longer), on existing and new
// connections alike. Toxiproxy works in whole milliseconds: a positive value is rounded
// to the nearest millisecond, and to at least 1 ms. SetLatency(0, 0) removes the
// delay.
func (p *Proxy) SetLatency(latency, jitter time.Duration) error {
	if latency < 0 || jitter < 0 {
		return fmt.Errorf("%w: latency %v and jitter %v must not be negative", ErrConfig, latency, jitter)
	}
	if jitter > latency {
		return fmt.Errorf("%w: jitter %v exceeds latency %v", ErrConfig, jitter, latency)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	for stream, name := range latencyToxics {
		err := p.p.Toxics.RemoveToxic(context.Background(), name)
		if err != nil && !errors.Is(err, toxiproxy.ErrToxicNotFound) {
			return fmt.Errorf("netns: proxy %s: remove latency: %w", p.p.Name, err)
		}
		if latency == 0 {
			continue
		}
		body := fmt.Sprintf(`{"name":%q,"type":"latency","stream":%q,"toxicity":1,"attributes":{"latency":%d,"jitter":%d}}`,
			name, stream, millis(latency), millis(jitter))
		if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
			return fmt.Errorf("netns: proxy %s: add latency: %w", p.p.Name, err)
		}
	}
	p.latency, p.jitter = latency, jitter
	return nil
}

// millis rounds d to whole milliseconds, at least 1 if d is positive.
func millis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return max(1, d.Round(time.Millisecond).Milliseconds())
}

// Close stops listening and closes every relayed connection. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.p.Stop()
	return nil
}
