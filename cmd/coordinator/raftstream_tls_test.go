package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/shardmatch/shardmatch/internal/fsutil"
	"github.com/shardmatch/shardmatch/internal/pki"
	"github.com/shardmatch/shardmatch/internal/testutil"
)

// recordFSM is a trivial state machine: the data of every applied command.
type recordFSM struct {
	mu   sync.Mutex
	data [][]byte
}

func (f *recordFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data = append(f.data, bytes.Clone(l.Data))
	return nil
}

func (f *recordFSM) applied() (n int, has func(string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := append([][]byte(nil), f.data...)
	return len(d), func(s string) bool {
		for _, b := range d {
			if string(b) == s {
				return true
			}
		}
		return false
	}
}

func (f *recordFSM) Snapshot() (raft.FSMSnapshot, error) { return recordSnapshot{}, nil }
func (f *recordFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type recordSnapshot struct{}

func (recordSnapshot) Persist(s raft.SnapshotSink) error { return s.Close() }
func (recordSnapshot) Release()                          {}

// refusals records the failed handshakes a stream layer reports.
type refusals struct {
	mu   sync.Mutex
	errs []error
}

func (r *refusals) add(_ string, err error) { r.mu.Lock(); r.errs = append(r.errs, err); r.mu.Unlock() }

func (r *refusals) list() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

// find returns the first recorded error match accepts.
func (r *refusals) find(match func(error) bool) error {
	for _, e := range r.list() {
		if match(e) {
			return e
		}
	}
	return nil
}

// tlsNode is one in-process Raft node over the name stream layer.
type tlsNode struct {
	id      string
	addr    string
	files   raftTLSFiles
	stream  *nameStreamLayer
	trans   *raft.NetworkTransport
	r       *raft.Raft
	fsm     *recordFSM
	refused *refusals
	reloads *refusals
}

// testPKI is a CA and, per node, a directory with cert.pem, key.pem and ca.pem.
type testPKI struct {
	dir string
	ca  *pki.CA
}

func newTestPKI(t testing.TB) *testPKI {
	ca, err := pki.NewCA("raft test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{dir: t.TempDir(), ca: ca}
}

// files issues a certificate from ca for hosts with o's validity into a new
// directory name, with caPEM as the trusted CA file.
func (p *testPKI) files(t testing.TB, name string, ca *pki.CA, o pki.LeafOptions, caPEM []byte) raftTLSFiles {
	t.Helper()
	f := raftTLSFiles{cert: filepath.Join(p.dir, name+"-cert.pem"), key: filepath.Join(p.dir, name+"-key.pem"),
		ca: filepath.Join(p.dir, name+"-ca.pem")}
	writeLeaf(t, ca, o, f)
	if err := fsutil.WriteFileAtomic(f.ca, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func writeLeaf(t testing.TB, ca *pki.CA, o pki.LeafOptions, f raftTLSFiles) *pki.Leaf {
	t.Helper()
	l, err := ca.Issue(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WriteFiles(f.cert, f.key); err != nil {
		t.Fatal(err)
	}
	return l
}

func fastRaftConfig(id string) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(id)
	c.HeartbeatTimeout, c.ElectionTimeout = 300*time.Millisecond, 300*time.Millisecond
	c.LeaderLeaseTimeout, c.CommitTimeout = 150*time.Millisecond, 5*time.Millisecond
	c.LogOutput = io.Discard
	return c
}

// startNodes starts len(files) nodes (plain TCP where files[i] is empty) bootstrapped
// as one cluster, with o's options besides the files.
func startNodes(t testing.TB, files []raftTLSFiles, o raftStreamOptions) []*tlsNode {
	t.Helper()
	nodes := make([]*tlsNode, len(files))
	var servers []raft.Server
	for i, f := range files {
		n := &tlsNode{id: fmt.Sprintf("n%d", i+1), files: f, fsm: &recordFSM{}, refused: &refusals{}, reloads: &refusals{}}
		so := o
		so.tls, so.refused = f, n.refused.add
		so.reloadError = func(err error) { n.reloads.add("", err) }
		s, err := listenRaft("127.0.0.1:0", "", so)
		if err != nil {
			t.Fatal(err)
		}
		n.addr = s.ln.Addr().String()
		s.advertise = advertised(n.addr)
		n.stream = s
		n.trans = raft.NewNetworkTransport(s, 3, 2*time.Second, io.Discard)
		nodes[i] = n
		servers = append(servers, raft.Server{ID: raft.ServerID(n.id), Address: raft.ServerAddress(n.addr)})
	}
	for _, n := range nodes {
		store := raft.NewInmemStore()
		c := fastRaftConfig(n.id)
		if err := raft.BootstrapCluster(c, store, store, raft.NewInmemSnapshotStore(), n.trans, raft.Configuration{Servers: servers}); err != nil {
			t.Fatal(err)
		}
		r, err := raft.NewRaft(c, n.fsm, store, store, raft.NewInmemSnapshotStore(), n.trans)
		if err != nil {
			t.Fatal(err)
		}
		n.r = r
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			_ = n.r.Shutdown().Error()
			_ = n.trans.Close()
		}
	})
	return nodes
}

// waitLeader returns the leader all nodes agree on.
func waitLeader(t testing.TB, nodes []*tlsNode) *tlsNode {
	t.Helper()
	var leader *tlsNode
	testutil.WaitFor(t, 20*time.Second, "a leader all nodes know", func() error {
		leader = nil
		for _, n := range nodes {
			if n.r.State() == raft.Leader {
				leader = n
			}
		}
		if leader == nil {
			return errors.New("no leader")
		}
		for _, n := range nodes {
			if addr, _ := n.r.LeaderWithID(); string(addr) != leader.addr {
				return fmt.Errorf("%s sees leader %q, not %s", n.id, addr, leader.addr)
			}
		}
		return nil
	})
	return leader
}

// replicate applies count entries named prefix-i on the leader and waits for every
// node's FSM to have them.
func replicate(t testing.TB, leader *tlsNode, nodes []*tlsNode, prefix string, count int) {
	t.Helper()
	for i := range count {
		if err := leader.r.Apply([]byte(fmt.Sprintf("%s-%d", prefix, i)), 5*time.Second).Error(); err != nil {
			t.Fatalf("apply on %s: %v", leader.id, err)
		}
	}
	testutil.WaitFor(t, 20*time.Second, prefix+" entries on every node", func() error {
		for _, n := range nodes {
			if _, has := n.fsm.applied(); !has(fmt.Sprintf("%s-%d", prefix, count-1)) {
				return fmt.Errorf("%s lacks %s-%d", n.id, prefix, count-1)
			}
		}
		return nil
	})
}

// tlsCluster is a 3-node TLS cluster sharing one CA, each node with its own
// certificate for 127.0.0.1.
func tlsCluster(t testing.TB, p *testPKI, o raftStreamOptions) []*tlsNode {
	t.Helper()
	var files []raftTLSFiles
	for i := range 3 {
		files = append(files, p.files(t, fmt.Sprintf("n%d", i+1), p.ca, pki.LeafOptions{Hosts: []string{"127.0.0.1"}}, p.ca.CertPEM()))
	}
	return startNodes(t, files, o)
}

// TestRaftTLSClusterReplicates: three nodes over mutual TLS elect a leader and
// replicate, and the connections between them are TLS 1.3 (a plain TCP client gets
// a TLS alert, not Raft).
func TestRaftTLSClusterReplicates(t *testing.T) {
	p := newTestPKI(t)
	nodes := tlsCluster(t, p, raftStreamOptions{})
	leader := waitLeader(t, nodes)
	replicate(t, leader, nodes, "m", 20)

	c, err := nodes[0].stream.Dial(raft.ServerAddress(nodes[1].addr), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st := c.(*tls.Conn).ConnectionState(); st.Version != tls.VersionTLS13 || len(st.PeerCertificates) == 0 {
		t.Errorf("dialled connection: version %x, %d peer certificates", st.Version, len(st.PeerCertificates))
	}
	for _, n := range nodes {
		if errs := n.refused.list(); len(errs) > 0 {
			t.Errorf("%s refused a cluster member: %v", n.id, errs)
		}
	}
}

// rogueStream is an attacker's stream layer: plain TCP, or TLS presenting cert (none
// when nil) and trusting any server.
type rogueStream struct {
	ln   net.Listener
	tls  bool
	cert *tls.Certificate
}

func (r *rogueStream) Accept() (net.Conn, error) { return r.ln.Accept() }
func (r *rogueStream) Close() error              { return r.ln.Close() }
func (r *rogueStream) Addr() net.Addr            { return r.ln.Addr() }
func (r *rogueStream) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if !r.tls {
		return net.DialTimeout("tcp", string(a), timeout)
	}
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	if r.cert != nil { // sent whatever CAs the server asks for
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return r.cert, nil }
	}
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(a), cfg)
}

// attack is what a rogue peer achieved against one follower.
type attack struct {
	appendErr, voteErr      error
	voteGranted             bool
	indexBefore, indexNow   uint64
	termBefore, termNow     uint64
	leaderBefore, leaderNow raft.ServerAddress
	confBefore, confNow     []raft.Server
	rogueApplied            bool
}

// breached reports what the rogue changed ("" when nothing).
func (a attack) breached() string {
	var out []string
	if a.appendErr == nil || a.voteErr == nil {
		out = append(out, fmt.Sprintf("RPCs answered (append: %v, vote: %v)", a.appendErr, a.voteErr))
	}
	if a.voteGranted {
		out = append(out, "vote granted")
	}
	if a.indexNow != a.indexBefore {
		out = append(out, fmt.Sprintf("last index %d -> %d", a.indexBefore, a.indexNow))
	}
	if a.termNow != a.termBefore {
		out = append(out, fmt.Sprintf("term %d -> %d", a.termBefore, a.termNow))
	}
	if a.leaderNow != a.leaderBefore {
		out = append(out, fmt.Sprintf("leader %s -> %s", a.leaderBefore, a.leaderNow))
	}
	if fmt.Sprint(a.confNow) != fmt.Sprint(a.confBefore) {
		out = append(out, "configuration changed")
	}
	if a.rogueApplied {
		out = append(out, "rogue entry applied")
	}
	return strings.Join(out, "; ")
}

func termOf(r *raft.Raft) uint64 {
	var t uint64
	fmt.Sscan(r.Stats()["term"], &t)
	return t
}

func configOf(t testing.TB, r *raft.Raft) []raft.Server {
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	return f.Configuration().Servers
}

// attackFollower has rogue append an entry at a higher term to a follower of the
// cluster, claiming leadership, and ask for its vote (as a leadership transfer, which
// a follower grants despite knowing a leader), posing as the third member (Raft
// refuses votes to ids outside its configuration).
func attackFollower(t *testing.T, nodes []*tlsNode, rogue *rogueStream) attack {
	t.Helper()
	leader := waitLeader(t, nodes)
	var target, posing *tlsNode // the rogue attacks target posing as the third node
	for _, n := range nodes {
		switch {
		case n == leader:
		case target == nil:
			target = n
		default:
			posing = n
		}
	}
	trans := raft.NewNetworkTransport(rogue, 1, 2*time.Second, io.Discard)
	defer trans.Close()
	a := attack{indexBefore: target.r.LastIndex(), termBefore: termOf(target.r), confBefore: configOf(t, target.r)}
	a.leaderBefore, _ = target.r.LeaderWithID()
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(posing.id), Addr: []byte(trans.LocalAddr())}
	lastTerm := a.termBefore // entries of the current term (the leader's no-op at least)
	var aresp raft.AppendEntriesResponse
	a.appendErr = trans.AppendEntries(raft.ServerID(target.id), raft.ServerAddress(target.addr), &raft.AppendEntriesRequest{
		RPCHeader: hdr, Term: a.termBefore + 1, PrevLogEntry: a.indexBefore, PrevLogTerm: lastTerm,
		Entries:           []*raft.Log{{Index: a.indexBefore + 1, Term: a.termBefore + 1, Type: raft.LogCommand, Data: []byte("rogue")}},
		LeaderCommitIndex: a.indexBefore + 1,
	}, &aresp)
	var vresp raft.RequestVoteResponse
	a.voteErr = trans.RequestVote(raft.ServerID(target.id), raft.ServerAddress(target.addr), &raft.RequestVoteRequest{
		RPCHeader: hdr, Term: a.termBefore + 5, LastLogIndex: a.indexBefore + 100, LastLogTerm: a.termBefore + 4, LeadershipTransfer: true,
	}, &vresp)
	a.voteGranted = vresp.Granted
	a.indexNow, a.termNow, a.confNow = target.r.LastIndex(), termOf(target.r), configOf(t, target.r)
	a.leaderNow, _ = target.r.LeaderWithID()
	// The entry, if taken, is applied asynchronously: give it the commit path's time.
	if a.appendErr == nil {
		testutil.WaitFor(t, 5*time.Second, "the rogue entry to be applied", func() error {
			if _, has := target.fsm.applied(); !has("rogue") {
				return errors.New("not yet")
			}
			return nil
		})
	}
	_, has := target.fsm.applied()
	a.rogueApplied = has("rogue")
	return a
}

func listenRogue(t *testing.T, useTLS bool, cert *tls.Certificate) *rogueStream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &rogueStream{ln: ln, tls: useTLS, cert: cert}
}

func loadPair(t *testing.T, l *pki.Leaf) *tls.Certificate {
	key, err := l.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(l.CertPEM(), key)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

// TestRaftTLSRefusesPeers: a peer without a valid client certificate (none, plain
// TCP, one from another CA, an expired one) is refused at the handshake with the
// matching error, and its AppendEntries and RequestVote change nothing on the
// follower it targets: same last index, term, leader and configuration.
func TestRaftTLSRefusesPeers(t *testing.T) {
	p := newTestPKI(t)
	nodes := tlsCluster(t, p, raftStreamOptions{})
	replicate(t, waitLeader(t, nodes), nodes, "m", 5)
	other, err := pki.NewCA("another CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Issue(pki.LeafOptions{Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := p.ca.Issue(pki.LeafOptions{Hosts: []string{"127.0.0.1"},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		rogue  *rogueStream
		refuse func(error) bool
	}{
		{"plain TCP", listenRogue(t, false, nil), func(err error) bool { var e tls.RecordHeaderError; return errors.As(err, &e) }},
		{"no client certificate", listenRogue(t, true, nil), func(err error) bool {
			return strings.Contains(err.Error(), "client didn't provide a certificate")
		}},
		{"certificate from another CA", listenRogue(t, true, loadPair(t, foreign)), func(err error) bool {
			var e x509.UnknownAuthorityError
			return errors.As(err, &e)
		}},
		{"expired certificate", listenRogue(t, true, loadPair(t, expired)), func(err error) bool {
			var e x509.CertificateInvalidError
			return errors.As(err, &e) && e.Reason == x509.Expired
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := map[*tlsNode]int{}
			for _, n := range nodes {
				before[n] = len(n.refused.list())
			}
			a := attackFollower(t, nodes, c.rogue)
			if b := a.breached(); b != "" {
				t.Errorf("the rogue got through: %s", b)
			}
			var seen []error
			for _, n := range nodes {
				seen = append(seen, n.refused.list()[before[n]:]...)
			}
			found := false
			for _, e := range seen {
				found = found || c.refuse(e)
			}
			if !found {
				t.Errorf("no handshake refused with the expected error; refusals: %v", seen)
			}
		})
	}
}

// TestRaftTLSRefusalControl is the negative control of TestRaftTLSRefusesPeers: with
// client certificates not verified, the same certificate-less rogue is answered,
// gets its vote and rewrites the follower's log and term, and no handshake is
// refused. So the refusal test fails when verification is off.
func TestRaftTLSRefusalControl(t *testing.T) {
	p := newTestPKI(t)
	nodes := tlsCluster(t, p, raftStreamOptions{insecureNoClientAuth: true})
	replicate(t, waitLeader(t, nodes), nodes, "m", 5)
	a := attackFollower(t, nodes, listenRogue(t, true, nil))
	if a.breached() == "" || !a.rogueApplied || !a.voteGranted {
		t.Fatalf("without client verification the rogue should get through: %+v", a)
	}
	for _, n := range nodes {
		if errs := n.refused.list(); len(errs) > 0 {
			t.Errorf("%s refused: %v", n.id, errs)
		}
	}
}

// TestRaftTLSRefusesImpostorServer: a server at a member's address with a
// certificate from the cluster's CA but for another name is refused by the nodes
// dialling it (x509.HostnameError): the leader sends it nothing, and the others
// still commit.
func TestRaftTLSRefusesImpostorServer(t *testing.T) {
	p := newTestPKI(t)
	nodes := tlsCluster(t, p, raftStreamOptions{})
	leader := waitLeader(t, nodes)
	var victim *tlsNode
	var rest []*tlsNode
	for _, n := range nodes {
		if n != leader && victim == nil {
			victim = n
		} else {
			rest = append(rest, n)
		}
	}
	if err := victim.r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	_ = victim.trans.Close()
	impostorFiles := p.files(t, "impostor", p.ca, pki.LeafOptions{Hosts: []string{"evil.example", "10.9.9.9"}}, p.ca.CertPEM())
	var is *nameStreamLayer
	testutil.WaitFor(t, 10*time.Second, "the victim's port to be free", func() (err error) {
		is, err = listenRaft(victim.addr, victim.addr, raftStreamOptions{tls: impostorFiles})
		return err
	})
	impostor := raft.NewNetworkTransport(is, 1, 2*time.Second, io.Discard)
	defer impostor.Close()
	replicate(t, leader, rest, "after", 5)
	testutil.WaitFor(t, 20*time.Second, "the leader to refuse the impostor", func() error {
		if e := leader.refused.find(func(err error) bool { var h x509.HostnameError; return errors.As(err, &h) }); e == nil {
			return fmt.Errorf("refusals so far: %v", leader.refused.list())
		}
		return nil
	})
	select {
	case rpc := <-impostor.Consumer():
		t.Fatalf("the impostor received %T", rpc.Command)
	default:
	}
}

// TestRaftTLSRotation: new certificate files (same CA; then a CA bundle old+new and a
// certificate from the new CA) are used by the next connection without a restart,
// the cluster keeps replicating, and files that do not match (a certificate without
// its key) are refused while the previous certificate stays in use.
func TestRaftTLSRotation(t *testing.T) {
	p := newTestPKI(t)
	nodes := tlsCluster(t, p, raftStreamOptions{})
	leader := waitLeader(t, nodes)
	replicate(t, leader, nodes, "a", 3)
	n1, n2 := nodes[0], nodes[1]

	// served is the serial of the certificate n1 presents to n2 on a new connection,
	// and presented the one n1 presents when it dials n2 (as seen by n2's verifier).
	served := func() string {
		t.Helper()
		c, err := n2.stream.Dial(raft.ServerAddress(n1.addr), 2*time.Second)
		if err != nil {
			t.Fatalf("n2 -> n1: %v", err)
		}
		defer c.Close()
		return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	presented := func() string {
		t.Helper()
		ln, err := tls.Listen("tcp", "127.0.0.1:0", n2.stream.tls.serverConfig(tls.RequireAndVerifyClientCert))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		got := make(chan string, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- err.Error()
				return
			}
			defer c.Close()
			tc := c.(*tls.Conn)
			if err := tc.Handshake(); err != nil {
				got <- err.Error()
				return
			}
			got <- tc.ConnectionState().PeerCertificates[0].SerialNumber.String()
		}()
		c, err := n1.stream.Dial(raft.ServerAddress(ln.Addr().String()), 2*time.Second)
		if err != nil {
			t.Fatalf("n1 -> test server: %v", err)
		}
		defer c.Close()
		return <-got
	}

	l := writeLeaf(t, p.ca, pki.LeafOptions{Hosts: []string{"127.0.0.1"}}, n1.files)
	want := l.Cert.SerialNumber.String()
	if s, c := served(), presented(); s != want || c != want {
		t.Fatalf("after rotation n1 serves %s and presents %s, want %s", s, c, want)
	}
	replicate(t, leader, nodes, "b", 3)

	// CA rotation: every node trusts old+new first, then n1 moves to the new CA.
	newCA, err := pki.NewCA("raft test CA 2", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := fsutil.WriteFileAtomic(n.files.ca, pki.Bundle(p.ca, newCA), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l = writeLeaf(t, newCA, pki.LeafOptions{Hosts: []string{"127.0.0.1"}}, n1.files)
	want = l.Cert.SerialNumber.String()
	if s, c := served(), presented(); s != want || c != want {
		t.Fatalf("after CA rotation n1 serves %s and presents %s, want %s", s, c, want)
	}
	replicate(t, leader, nodes, "c", 3)

	// A certificate without its key: refused, the previous one still served.
	bad, err := newCA.Issue(pki.LeafOptions{Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := fsutil.WriteFileAtomic(n1.files.cert, bad.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if s := served(); s != want {
		t.Fatalf("with a mismatched key n1 serves %s, want the previous %s", s, want)
	}
	if e := n1.reloads.find(func(error) bool { return true }); e == nil || !strings.Contains(e.Error(), "private key does not match") {
		t.Errorf("reload errors: %v", n1.reloads.list())
	}
	for _, n := range nodes {
		if errs := n.refused.list(); len(errs) > 0 {
			t.Errorf("%s refused during rotation: %v", n.id, errs)
		}
	}
}

// TestRaftTLSSilentPeer: a peer that connects and never speaks holds neither the
// accept loop nor Accept itself: Accept returns at once and other peers still connect.
func TestRaftTLSSilentPeer(t *testing.T) {
	p := newTestPKI(t)
	f := p.files(t, "solo", p.ca, pki.LeafOptions{Hosts: []string{"127.0.0.1"}}, p.ca.CertPEM())
	s, err := listenRaft("127.0.0.1:0", "127.0.0.1:1", raftStreamOptions{tls: f})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	silent, err := net.Dial("tcp", s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c, err := s.Accept() // would block here if the handshake ran in Accept
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		c2, err := s.Accept()
		if err == nil {
			_, err = c2.Read(make([]byte, 1))
			c2.Close()
		}
		done <- err
	}()
	d, err := s.Dial(raft.ServerAddress(s.ln.Addr().String()), 2*time.Second)
	if err != nil {
		t.Fatalf("a second peer could not connect while the first is silent: %v", err)
	}
	_, _ = d.Write([]byte{1})
	d.Close()
	if err := <-done; err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("second connection: %v", err)
	}
}
