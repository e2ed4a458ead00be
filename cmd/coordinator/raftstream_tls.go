package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// raftTLSFiles are the PEM files of --raft-tls-cert, --raft-tls-key and
// --raft-tls-ca; all empty means plain TCP.
type raftTLSFiles struct {
	cert, key, ca string
}

// enabled reports whether Raft traffic is to use mutual TLS.
func (f raftTLSFiles) enabled() bool { return f.cert != "" }

// raftHandshakeTimeout bounds one TLS handshake on a Raft connection, accepted or
// dialled, so a silent or slow peer holds nothing for long.
const raftHandshakeTimeout = 10 * time.Second

// fileStamp is what tells a file changed: its modification time, size and identity
// (a file renamed into place is another file even within one mtime tick). os.Stat
// follows symlinks, so a Kubernetes secret volume's ..data swap shows too.
type fileStamp struct {
	mod  time.Time
	size int64
	info os.FileInfo
}

func stampOf(path string) (fileStamp, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{st.ModTime(), st.Size(), st}, nil
}

func (s fileStamp) same(o fileStamp) bool {
	return s.info != nil && o.info != nil && s.mod.Equal(o.mod) && s.size == o.size && os.SameFile(s.info, o.info)
}

func sameStamps(a, b [3]fileStamp) bool {
	return a[0].same(b[0]) && a[1].same(b[1]) && a[2].same(b[2])
}

// tlsReloader holds this node's certificate and the trusted CAs, re-read from the
// files when any of them changed: checked at every handshake, so a certificate
// rotated on disk (cert-manager, kubelet secret refresh) is used by the next
// connection without a restart. A half-written or mismatched set is refused and the
// last good one kept (and reported), never a broken state.
type tlsReloader struct {
	files raftTLSFiles
	// onReloadError is told when changed files could not be loaded (may be nil).
	onReloadError func(error)

	mu     sync.Mutex
	stamps [3]fileStamp
	cert   *tls.Certificate
	pool   *x509.CertPool
}

// newTLSReloader loads the files once; an error here is a start-up error.
func newTLSReloader(files raftTLSFiles) (*tlsReloader, error) {
	r := &tlsReloader{files: files}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *tlsReloader) stampsNow() ([3]fileStamp, error) {
	var s [3]fileStamp
	for i, p := range []string{r.files.cert, r.files.key, r.files.ca} {
		var err error
		if s[i], err = stampOf(p); err != nil {
			return s, err
		}
	}
	return s, nil
}

// reload reads all three files; r.mu held or r not yet shared.
func (r *tlsReloader) reload() error {
	stamps, err := r.stampsNow()
	if err != nil {
		return fmt.Errorf("raft TLS: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.files.cert, r.files.key)
	if err != nil {
		return fmt.Errorf("raft TLS: --raft-tls-cert %s / --raft-tls-key %s: %w", r.files.cert, r.files.key, err)
	}
	caPEM, err := os.ReadFile(r.files.ca)
	if err != nil {
		return fmt.Errorf("raft TLS: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("raft TLS: --raft-tls-ca %s holds no PEM certificate", r.files.ca)
	}
	r.cert, r.pool, r.stamps = &cert, pool, stamps
	return nil
}

// current is the certificate and CA pool to use now, re-read first if a file changed.
func (r *tlsReloader) current() (*tls.Certificate, *x509.CertPool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, err := r.stampsNow(); err != nil || !sameStamps(s, r.stamps) {
		if err == nil {
			err = r.reload()
		}
		if err != nil && r.onReloadError != nil {
			r.onReloadError(err)
		}
	}
	return r.cert, r.pool
}

// serverConfig is the configuration of accepted connections: TLS 1.3, our
// certificate, and a client certificate required and verified against the CA, both
// as current at the handshake. clientAuth is tls.RequireAndVerifyClientCert except
// in the test that shows what turning verification off would let in.
func (r *tlsReloader) serverConfig(clientAuth tls.ClientAuthType) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool := r.current()
			return &tls.Config{
				MinVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{*cert},
				ClientCAs:    pool,
				ClientAuth:   clientAuth,
			}, nil
		},
	}
}

// clientConfig is the configuration of a connection dialled to addr: TLS 1.3, the
// peer's certificate verified against the CA for addr's host (a DNS name, or an IP
// that must then be an IP SAN), and our certificate presented.
func (r *tlsReloader) clientConfig(addr string) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	cert, pool := r.current()
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: host,
		RootCAs:    pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		},
	}, nil
}

// lazyServerConn is an accepted TLS connection whose handshake runs on first use,
// in the goroutine raft's NetworkTransport gives each connection, not in Accept:
// a peer that connects and says nothing cannot stall the accept loop, and is cut
// off after raftHandshakeTimeout.
type lazyServerConn struct {
	*tls.Conn
	once    sync.Once
	err     error
	refused func(net.Addr, error)
}

func (c *lazyServerConn) handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), raftHandshakeTimeout)
		defer cancel()
		if c.err = c.Conn.HandshakeContext(ctx); c.err != nil && c.refused != nil {
			c.refused(c.RemoteAddr(), c.err)
		}
	})
	return c.err
}

// Read completes the handshake, then reads.
func (c *lazyServerConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// Write completes the handshake, then writes.
func (c *lazyServerConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// errRaftTLSFlags is the error of a partial --raft-tls-* set.
var errRaftTLSFlags = errors.New("--raft-tls-cert, --raft-tls-key and --raft-tls-ca go together (all three or none)")
