package admin

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// ServerTLSConfig names the admin listener's certificate files.
type ServerTLSConfig struct {
	// CertFile and KeyFile are the server certificate (chain) and its key, PEM.
	CertFile, KeyFile string
	// ClientCAFile, if set, verifies client certificates when a client presents one
	// (tls.VerifyClientCertIfGiven); a verified certificate's subject CN is an identity
	// with the operate role. Clients without one (kubelet probes) still connect.
	ClientCAFile string
	// Logger receives reload failures (default: discarded).
	Logger *slog.Logger
}

// ServerTLS returns the admin listener's TLS configuration. The files are read now (an
// error fails the start) and again at a handshake after any of them changed (size or
// modification time), so a renewed certificate or CA is served without a restart. A
// reload that fails (a half-written file) keeps the previous certificate and logs.
func ServerTLS(cfg ServerTLSConfig) (*tls.Config, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("admin: TLS needs both a certificate and a key file")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &tlsReloader{cfg: cfg, log: cfg.Logger.With("component", "admin-tls")}
	if err := r.load(r.stamp()); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: r.forClient}, nil
}

// tlsReloader holds the current server configuration and rebuilds it when the files
// change.
type tlsReloader struct {
	cfg     ServerTLSConfig
	log     *slog.Logger
	mu      sync.Mutex
	current *tls.Config
	seen    string // the files' stamp current was loaded from
}

// stamp summarizes the files' sizes and modification times ("" parts for missing files).
func (r *tlsReloader) stamp() string {
	var b strings.Builder
	for _, f := range []string{r.cfg.CertFile, r.cfg.KeyFile, r.cfg.ClientCAFile} {
		if f == "" {
			continue
		}
		if fi, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
		} else {
			b.WriteString("?;")
		}
	}
	return b.String()
}

func (r *tlsReloader) load(stamp string) error {
	cert, err := tls.LoadX509KeyPair(r.cfg.CertFile, r.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("admin TLS certificate (--admin-tls-cert %s, --admin-tls-key %s): %w", r.cfg.CertFile, r.cfg.KeyFile, err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if r.cfg.ClientCAFile != "" {
		pool, err := loadPool(r.cfg.ClientCAFile)
		if err != nil {
			return fmt.Errorf("admin TLS client CA (--admin-tls-client-ca): %w", err)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	r.mu.Lock()
	r.current, r.seen = c, stamp
	r.mu.Unlock()
	return nil
}

func (r *tlsReloader) forClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	st := r.stamp()
	r.mu.Lock()
	cur, changed := r.current, st != r.seen
	r.mu.Unlock()
	if changed {
		if err := r.load(st); err != nil {
			r.log.Warn("admin TLS files changed but cannot be loaded; serving the previous certificate", "err", err)
			r.mu.Lock()
			r.seen = st // do not retry at every handshake; the next change retries
			r.mu.Unlock()
		} else {
			r.log.Info("admin TLS certificate reloaded", "cert", r.cfg.CertFile)
			r.mu.Lock()
			cur = r.current
			r.mu.Unlock()
		}
	}
	return cur, nil
}

// loadPool reads a PEM bundle of CA certificates.
func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// ClientTLS is the TLS configuration of an admin API client that trusts the CA
// certificates in caFile (the `--admin-ca` flag of status, snapshot, prestop and serve's
// --join). Empty caFile: nil, the system's roots.
func ClientTLS(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pool, err := loadPool(caFile)
	if err != nil {
		return nil, fmt.Errorf("admin CA (--admin-ca): %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
}

// NewHTTPClient is an HTTP client for the admin API that trusts caFile (see
// ClientTLS), with an overall timeout per request (0: none). Close its idle
// connections when done.
func NewHTTPClient(caFile string, timeout time.Duration) (*http.Client, error) {
	tc, err := ClientTLS(caFile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

// BaseURL is addr as an admin API base URL: a bare host:port gets https:// when
// secure (a CA is given), else http://; a trailing slash is dropped.
func BaseURL(addr string, secure bool) string {
	u := strings.TrimRight(strings.TrimSpace(addr), "/")
	if !strings.Contains(u, "://") {
		if secure {
			return "https://" + u
		}
		return "http://" + u
	}
	return u
}

// ExplainTLS adds what to check (--admin-ca, the URL's scheme, the certificate's names)
// to a TLS or scheme error of an admin API call; other errors are returned as they are.
func ExplainTLS(err error) error {
	if err == nil {
		return nil
	}
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var inv x509.CertificateInvalidError
	var ve *tls.CertificateVerificationError
	switch {
	case errors.As(err, &hn):
		return fmt.Errorf("%w (the admin API's certificate does not name this host: dial a name or IP in its SANs)", err)
	case errors.As(err, &ua), errors.As(err, &ve), errors.As(err, &inv):
		return fmt.Errorf("%w (check --admin-ca: it must name the CA that signed the admin API's certificate)", err)
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("%w (this admin API serves plain HTTP: use an http:// URL)", err)
	}
	return err
}
