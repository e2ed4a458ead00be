package main

import (
	"fmt"
	"io"
	"net"
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
type nameStreamLayer struct {
	ln        net.Listener
	advertise advertised
}

var _ raft.StreamLayer = (*nameStreamLayer)(nil)

// listenRaft listens on bind and advertises advertise.
func listenRaft(bind, advertise string) (*nameStreamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	return &nameStreamLayer{ln: ln, advertise: advertised(advertise)}, nil
}

// Accept waits for a peer's connection.
func (l *nameStreamLayer) Accept() (net.Conn, error) { return l.ln.Accept() }

// Close stops listening.
func (l *nameStreamLayer) Close() error { return l.ln.Close() }

// Addr is the advertised address: what the transport reports as this node's own
// and sends to peers.
func (l *nameStreamLayer) Addr() net.Addr { return l.advertise }

// Dial connects to a peer by its advertised host:port, resolving a name afresh.
func (l *nameStreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("tcp", string(addr))
	if err != nil {
		return nil, fmt.Errorf("raft: dial %s: %w", addr, err)
	}
	return c, nil
}

// advertised is a host:port as given, name or IP, as a net.Addr.
type advertised string

func (a advertised) Network() string { return "tcp" }
func (a advertised) String() string  { return string(a) }

// newRaftTransport is the node's Raft transport: the name stream layer under
// hashicorp/raft's NetworkTransport (3 pooled connections per peer, 10s I/O timeout).
func newRaftTransport(bind, advertise string, logOut io.Writer) (*raft.NetworkTransport, error) {
	stream, err := listenRaft(bind, advertise)
	if err != nil {
		return nil, err
	}
	return raft.NewNetworkTransport(stream, 3, 10*time.Second, logOut), nil
}
