package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// probeAll runs the startup probe until it succeeds, then readiness and liveness,
// each at its period. A startup or liveness failure sends the reason on killed.
func (p *Pod) probeAll(ctx context.Context, killed chan<- string) {
	m := p.Plan.Main
	if m.Startup != nil {
		ok, why := p.probeUntil(ctx, m.Startup, true)
		if !ok {
			if ctx.Err() == nil {
				killed <- "startup probe failed: " + why
			}
			return
		}
		p.mu.Lock()
		p.started = true
		p.mu.Unlock()
	}
	var wg sync.WaitGroup
	if m.Readiness != nil {
		wg.Go(func() { p.readiness(ctx, m.Readiness) })
	} else {
		p.setReady(true)
	}
	if m.Liveness != nil {
		wg.Go(func() {
			if ok, why := p.probeUntil(ctx, m.Liveness, false); !ok && ctx.Err() == nil {
				killed <- "liveness probe failed: " + why
			}
		})
	}
	wg.Wait()
}

// probeUntil probes every period. For a startup probe (untilSuccess) it returns true
// at the first success; otherwise it runs until ctx ends and returns false when
// FailureThreshold consecutive probes failed.
func (p *Pod) probeUntil(ctx context.Context, pr *Probe, untilSuccess bool) (bool, string) {
	if !sleepCtx(ctx, pr.InitialDelay) {
		return false, "stopped"
	}
	fails := 0
	for {
		err := p.probe(ctx, pr)
		switch {
		case err == nil && untilSuccess:
			return true, ""
		case err == nil:
			fails = 0
		case ctx.Err() != nil:
			return false, "stopped"
		default:
			fails++
			if fails >= pr.FailureThreshold {
				return false, err.Error()
			}
		}
		if !sleepCtx(ctx, pr.Period) {
			return false, "stopped"
		}
	}
}

// readiness keeps the pod's Ready condition as the kubelet does: SuccessThreshold
// consecutive successes make it ready, FailureThreshold consecutive failures unready.
func (p *Pod) readiness(ctx context.Context, pr *Probe) {
	if !sleepCtx(ctx, pr.InitialDelay) {
		return
	}
	ok, bad := 0, 0
	for {
		if err := p.probe(ctx, pr); err == nil {
			ok, bad = ok+1, 0
			if ok >= pr.SuccessThreshold {
				p.setReady(true)
			}
		} else if ctx.Err() == nil {
			ok, bad = 0, bad+1
			if bad >= pr.FailureThreshold {
				p.setReady(false)
			}
		}
		if !sleepCtx(ctx, pr.Period) {
			return
		}
	}
}

func (p *Pod) setReady(r bool) {
	p.mu.Lock()
	changed := p.ready != r
	p.ready = r
	if r && p.readyAt.IsZero() {
		p.readyAt = time.Now()
	}
	p.mu.Unlock()
	if changed {
		p.log.Info("e2e: pod readiness", "pod", p.Name(), "ready", r)
		p.c.changed()
	}
}

// probe runs one probe from the node (the root namespace), as the kubelet does.
func (p *Pod) probe(ctx context.Context, pr *Probe) error {
	ctx, cancel := context.WithTimeout(ctx, pr.Timeout)
	defer cancel()
	host := pr.Host
	if host == "" {
		host = p.IP()
	}
	switch {
	case pr.Exec != nil:
		out, err := p.execIn(ctx, p.Plan.Main, pr.Exec)
		if err != nil {
			return fmt.Errorf("exec %v: %v: %s", pr.Exec, err, bytes.TrimSpace(out))
		}
		return nil
	case pr.HTTPPath != "":
		scheme := "http"
		if pr.Scheme == "HTTPS" {
			scheme = "https"
		}
		url := scheme + "://" + net.JoinHostPort(host, strconv.Itoa(pr.Port)) + pr.HTTPPath
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "kube-probe/1.37")
		for k, v := range pr.HTTPHeaders {
			req.Header.Set(k, v)
		}
		resp, err := probeClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			var b bytes.Buffer
			_, _ = b.ReadFrom(http.MaxBytesReader(nil, resp.Body, 512))
			return fmt.Errorf("GET %s: %s %s", url, resp.Status, bytes.TrimSpace(b.Bytes()))
		}
		return nil
	default:
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(pr.Port)))
		if err != nil {
			return err
		}
		return conn.Close()
	}
}

// probeClient is the kubelet's prober: no keep-alive, certificates not verified.
var probeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // as the kubelet probes
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
