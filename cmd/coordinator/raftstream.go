package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// nameStreamLayer is the Raft stream layer of `serve`: a TCP listener on --raft-addr
// that advertises --raft-advertise exactly as given, and dials peers by the address
// string they advertise. raft.NewTCPTransport resolves its advertised address once, at
// start, and hands Raft the IP; in Kubernetes a pod's DNS name may not resolve until
// the pod is running, and a restarted pod comes back with a new IP behind the same
// name. Here nothing is resolved up front: every new connection resolves the peer's
// name again (net.Dialer), so a peer that moved is found at its new IP.
//
// With --raft-tls-* every connection is TLS 1.3 with mutual authentication: an
// accepted peer must present a certificate the CA signed, and a dialled peer must
// present one the CA signed for the host of its advertised address.
type nameStreamLayer struct {
	ln        net.Listener
	advertise advertised
	tls       *tlsReloader // nil: plain TCP
	opts      raftStreamOptions

	mu       sync.Mutex
	accepted map[*acceptedConn]struct{} // open accepted connections, closed with the layer
	closed   bool
}

// acceptedConn is an accepted connection the layer closes when it closes itself:
// hashicorp/raft's NetworkTransport.Close stops the listener but leaves the
// goroutines serving accepted connections blocked reading them.
type acceptedConn struct {
	net.Conn
	l    *nameStreamLayer
	once sync.Once
}

// Close closes the connection and forgets it.
func (c *acceptedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.accepted, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// raftStreamOptions are the stream layer's settings besides its addresses.
type raftStreamOptions struct {
	// tls are the --raft-tls-* files (none: plain TCP).
	tls raftTLSFiles
	// refused is told of every failed TLS handshake, accepted or dialled (may be nil).
	refused func(peer string, err error)
	// reloadError is told when rotated files could not be loaded (may be nil).
	reloadError func(error)
	// insecureNoClientAuth accepts peers without verifying a client certificate: only
	// for the test showing that the refusal tests catch verification turned off.
	insecureNoClientAuth bool
}

var _ raft.StreamLayer = (*nameStreamLayer)(nil)

// listenRaft listens on bind and advertises advertise.
func listenRaft(bind, advertise string, o raftStreamOptions) (*nameStreamLayer, error) {
	l := &nameStreamLayer{advertise: advertised(advertise), opts: o, accepted: map[*acceptedConn]struct{}{}}
	if o.tls.enabled() {
		var err error
		if l.tls, err = newTLSReloader(o.tls); err != nil {
			return nil, err
		}
		l.tls.onReloadError = o.reloadError
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	l.ln = ln
	return l, nil
}

// Accept waits for a peer's connection. With TLS the handshake is left to the
// connection's first Read or Write (see lazyServerConn), so it never blocks here.
func (l *nameStreamLayer) Accept() (net.Conn, error) {
	c, err := l.ln.Accept()
	if err != nil {
		return nil, err
	}
	if l.tls != nil {
		auth := tls.RequireAndVerifyClientCert
		if l.opts.insecureNoClientAuth {
			auth = tls.NoClientCert
		}
		lc := &lazyServerConn{Conn: tls.Server(c, l.tls.serverConfig(auth))}
		if l.opts.refused != nil {
			lc.refused = func(a net.Addr, err error) { l.opts.refused(a.String(), err) }
		}
		c = lc
	}
	ac := &acceptedConn{Conn: c, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	l.accepted[ac] = struct{}{}
	return ac, nil
}

// Close stops listening and closes the connections it accepted.
func (l *nameStreamLayer) Close() error {
	err := l.ln.Close()
	l.mu.Lock()
	l.closed = true
	conns := make([]*acceptedConn, 0, len(l.accepted))
	for c := range l.accepted {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return err
}

// Addr is the advertised address: what the transport reports as this node's own
// and sends to peers.
func (l *nameStreamLayer) Addr() net.Addr { return l.advertise }

// Dial connects to a peer by its advertised host:port, resolving a name afresh.
func (l *nameStreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if l.tls == nil {
		c, err := d.Dial("tcp", string(addr))
		if err != nil {
			return nil, fmt.Errorf("raft: dial %s: %w", addr, err)
		}
		return c, nil
	}
	cfg, err := l.tls.clientConfig(string(addr))
	if err != nil {
		return nil, fmt.Errorf("raft: dial %s: %w", addr, err)
	}
	if timeout <= 0 || timeout > raftHandshakeTimeout {
		timeout = raftHandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	raw, err := d.DialContext(ctx, "tcp", string(addr))
	if err != nil {
		return nil, fmt.Errorf("raft: dial %s: %w", addr, err)
	}
	c := tls.Client(raw, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		if l.opts.refused != nil {
			l.opts.refused(string(addr), err)
		}
		return nil, fmt.Errorf("raft: TLS handshake with %s: %w", addr, err)
	}
	return c, nil
}

// advertised is a host:port as given, name or IP, as a net.Addr.
type advertised string

func (a advertised) Network() string { return "tcp" }
func (a advertised) String() string  { return string(a) }

// newRaftTransport is the node's Raft transport: the name stream layer under
// hashicorp/raft's NetworkTransport (3 pooled connections per peer, 10s I/O timeout),
// over mutual TLS when files are set. Refused peers and failed certificate reloads
// are logged to log at warn level.
func newRaftTransport(bind, advertise string, files raftTLSFiles, log *slog.Logger, logOut io.Writer) (*raft.NetworkTransport, error) {
	o := raftStreamOptions{tls: files}
	if log != nil {
		o.refused = func(peer string, err error) {
			log.Warn("raft peer refused: TLS handshake failed", "peer", peer, "error", err)
		}
		o.reloadError = func(err error) {
			log.Warn("raft TLS files changed but could not be loaded; keeping the previous certificate", "error", err)
		}
	}
	stream, err := listenRaft(bind, advertise, o)
	if err != nil {
		return nil, err
	}
	return raft.NewNetworkTransport(stream, 3, 10*time.Second, logOut), nil
}
