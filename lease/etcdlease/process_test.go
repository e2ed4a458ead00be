package etcdlease_test

// Tests against real etcd processes: a 3-member cluster of the etcd binary on PATH
// (Debian 12's etcd-server is etcd 3.4), driven by the v3.7 client the store is built
// on. They skip when there is no etcd binary, except in CI, which installs it.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shardmatch/shardmatch/lease"
	"github.com/shardmatch/shardmatch/lease/etcdlease"
	"github.com/shardmatch/shardmatch/lease/leasetest"
)

// procCommitLatency bounds a revoke proposal's commit and apply on the 3-member
// cluster: a peer round trip and an fsync on two members, under -race on a loaded
// 2-core machine.
const procCommitLatency = time.Second

// etcdProc is one etcd member process.
type etcdProc struct {
	name       string
	cURL, pURL url.URL
	log        string // its stdout and stderr
	id         uint64 // member ID, once a Status call has told it
	cmd        *exec.Cmd
	waited     chan struct{} // closed once cmd.Wait returned
}

// etcdCluster is a cluster of etcd processes on 127.0.0.1 in a t.TempDir, each in
// its own process group, killed and reaped when the test ends.
type etcdCluster struct {
	tb      testing.TB
	bin     string
	dir     string
	members []*etcdProc
}

// etcdBinary returns the etcd binary on PATH. Without one the test skips, unless CI is
// set: CI installs etcd-server, so there a missing binary is a failure, not a skip.
func etcdBinary(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("etcd")
	if err == nil {
		return bin
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("no etcd binary on PATH (%v), yet CI is set: .ci/run installs the etcd-server package", err)
	}
	tb.Skipf("no etcd binary on PATH (%v): install one (Debian: apt-get install etcd-server) to test against real etcd processes", err)
	return ""
}

// startCluster starts an n-member etcd cluster with the embedded server's timings
// (50ms heartbeat, 500ms election timeout, so a 1s minimum lease TTL) and waits until
// every member agrees on a leader.
func startCluster(tb testing.TB, n int) *etcdCluster {
	tb.Helper()
	c := &etcdCluster{tb: tb, bin: etcdBinary(tb), dir: tb.TempDir()}
	var initial []string
	for i := range n {
		m := &etcdProc{name: fmt.Sprintf("m%d", i), cURL: freeURL(tb), pURL: freeURL(tb)}
		m.log = filepath.Join(c.dir, m.name+".log")
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.pURL.String())
	}
	tb.Cleanup(c.stopAll)
	for _, m := range c.members {
		c.start(m, strings.Join(initial, ","))
	}
	start := time.Now()
	if _, err := c.waitLeader(30*time.Second, nil); err != nil {
		tb.Fatalf("etcd cluster not ready: %v", err)
	}
	tb.Logf("%d-member etcd cluster ready %v after start", n, time.Since(start).Round(time.Millisecond))
	return c
}

func (c *etcdCluster) start(m *etcdProc, initialCluster string) {
	c.tb.Helper()
	f, err := os.Create(m.log)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer f.Close() // the child has its own copy
	cmd := exec.Command(c.bin,
		"--name", m.name,
		"--data-dir", filepath.Join(c.dir, m.name),
		"--listen-client-urls", m.cURL.String(), "--advertise-client-urls", m.cURL.String(),
		"--listen-peer-urls", m.pURL.String(), "--initial-advertise-peer-urls", m.pURL.String(),
		"--initial-cluster", initialCluster,
		"--initial-cluster-state", "new",
		"--initial-cluster-token", filepath.Base(c.dir),
		"--heartbeat-interval", fmt.Sprint(tickMs),
		"--election-timeout", fmt.Sprint(electionMs),
		"--logger", "zap", "--log-outputs", "stderr",
	)
	for _, kv := range os.Environ() { // ETCD_* variables would override the flags
		if !strings.HasPrefix(kv, "ETCD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so cleanup kills everything it started; and killed
	// with the test binary, so a test timeout leaks no etcd.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.tb.Fatalf("start etcd %s: %v", m.name, err)
	}
	m.cmd, m.waited = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(m.waited)
	}()
}

// running reports whether m's process has not exited.
func (m *etcdProc) running() bool {
	select {
	case <-m.waited:
		return false
	default:
		return true
	}
}

// kill sends sig to m's process group and waits up to grace for it to exit, then
// SIGKILLs the group and reaps it. It reports a process group left behind.
func (c *etcdCluster) kill(m *etcdProc, sig syscall.Signal, grace time.Duration) {
	c.tb.Helper()
	pgid := m.cmd.Process.Pid
	_ = syscall.Kill(-pgid, sig)
	select {
	case <-m.waited:
	case <-time.After(grace):
		c.tb.Errorf("etcd %s did not exit %v after %v; SIGKILL", m.name, grace, sig)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-m.waited
	}
	if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
		c.tb.Errorf("etcd %s's process group %d still exists after it was reaped (kill 0: %v)", m.name, pgid, err)
	}
}

// stopAll stops every member still running (SIGTERM, then SIGKILL after 10s), and
// shows the end of each member's log if the test failed.
func (c *etcdCluster) stopAll() {
	for _, m := range c.members {
		if m.cmd != nil && m.running() {
			c.kill(m, syscall.SIGTERM, 10*time.Second)
		}
	}
	if c.tb.Failed() {
		for _, m := range c.members {
			c.tb.Logf("----- last lines of etcd %s's log:\n%s", m.name, tail(m.log, 15))
		}
	}
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// endpoints are the client URLs of the members still running.
func (c *etcdCluster) endpoints() []string {
	var eps []string
	for _, m := range c.members {
		if m.cmd == nil || m.running() {
			eps = append(eps, m.cURL.String())
		}
	}
	return eps
}

// client returns a client of every member, closed when tb ends.
func (c *etcdCluster) client(tb testing.TB) *clientv3.Client {
	tb.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   c.endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cli.Close() })
	return cli
}

// memberStatus is one running member's Status answer.
type memberStatus struct {
	m          *etcdProc
	id, leader uint64
	version    string
}

// status asks every running member for its Status (the Maintenance API), 1s each.
func (c *etcdCluster) status(cli *clientv3.Client) ([]memberStatus, error) {
	var out []memberStatus
	for _, m := range c.members {
		if !m.running() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := cli.Status(ctx, m.cURL.String())
		cancel()
		if err != nil {
			return nil, fmt.Errorf("status of %s: %w", m.name, err)
		}
		m.id = r.Header.MemberId
		out = append(out, memberStatus{m: m, id: r.Header.MemberId, leader: r.Leader, version: r.Version})
	}
	return out, nil
}

// waitLeader polls every running member's Status until they all name the same
// leader, which is running and is not old; it returns the leader's process.
func (c *etcdCluster) waitLeader(limit time.Duration, old *etcdProc) (*etcdProc, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	var last error
	start := time.Now()
	for time.Since(start) < limit {
		if leader, err := c.agreedLeader(cli); err != nil {
			last = err
		} else if leader != old {
			return leader, nil
		} else {
			last = fmt.Errorf("members still follow %s", old.name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, fmt.Errorf("no agreed leader after %v: %w", limit, last)
}

func (c *etcdCluster) agreedLeader(cli *clientv3.Client) (*etcdProc, error) {
	st, err := c.status(cli)
	if err != nil {
		return nil, err
	}
	var leader *etcdProc
	for _, s := range st {
		if s.leader == 0 || s.leader != st[0].leader {
			return nil, fmt.Errorf("members disagree on the leader: %+v", st)
		}
		if s.id == s.leader {
			leader = s.m
		}
	}
	if leader == nil {
		return nil, fmt.Errorf("leader %x is not a running member", st[0].leader)
	}
	return leader, nil
}

// The whole conformance suite against a 3-member cluster of real etcd processes,
// through a client that knows every member.
func TestProcessConformance(t *testing.T) {
	c := startCluster(t, 3)
	cli := c.client(t)
	if st, err := c.status(cli); err == nil {
		t.Logf("etcd server version %s (client v3.7)", st[0].version)
	}
	leasetest.Run(t, harnessOn(func(t *testing.T) *clientv3.Client { return c.client(t) }, procCommitLatency,
		func(t *testing.T, c *clientv3.Client) lease.Store { return newStore(t, c, etcdlease.Options{}) }))
}

// acquireAttempt is one Acquire sent while the cluster elected a new leader.
type acquireAttempt struct {
	txid    string
	players []string
	start   time.Time
	took    time.Duration
	err     error
}

// The etcd leader is killed with SIGKILL right after a match is activated. The ACTIVE
// lease is not expired early (it is still held, same grant, ttl·(1−ρ) after Activate
// returned), Renew then works through the new leader, and the lease afterwards ends
// within the usual bound of that renew. A reservation survives the change. Acquires
// sent from the moment of the kill until the new leader is settled each return within
// OpTimeout plus scheduling, granted or with ErrUnavailable, never anything else and
// never half-granted; tokens granted after the change are higher than before it.
func TestProcessLeaderKilled(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	cli := c.client(t)
	prefix := uniquePrefix()
	const (
		ttl       = 3 * time.Second
		opTimeout = time.Second
		// opBound is what one Acquire may take: one round trip of at most OpTimeout,
		// plus scheduling on a loaded machine.
		opBound = opTimeout + time.Second
	)
	ctx := context.Background()
	s := newStore(t, cli, etcdlease.Options{Prefix: prefix, OpTimeout: opTimeout, SessionTTL: 5 * time.Second})

	reserved, err := s.Acquire(ctx, "txR", []string{"r1", "r2"}, ttl)
	if err != nil {
		t.Fatal(err)
	}
	granted, err := s.Acquire(ctx, "txA", []string{"a1", "a2"}, ttl)
	if err != nil {
		t.Fatal(err)
	}
	tok := granted[0].Token
	if _, err := s.Acquire(ctx, "txB", []string{"b1"}, ttl); err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(ctx, "txB"); err != nil {
		t.Fatal(err)
	}
	activatedB := time.Now()
	if err := s.Activate(ctx, "txA"); err != nil {
		t.Fatal(err)
	}
	activated := time.Now()

	old, err := c.waitLeader(5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.kill(old, syscall.SIGKILL, 5*time.Second)
	killed := time.Now()
	t.Logf("killed leader %s (SIGKILL) %v after Activate", old.name, killed.Sub(activated).Round(time.Millisecond))

	// Acquire new matches, one after another, from the kill until the new leader
	// has been in charge for a while.
	stop := make(chan struct{})
	collect := acquireDuring(s, ttl, 10*time.Millisecond, stop)

	leader, err := c.waitLeader(15*time.Second, old)
	elected := time.Now()
	if err != nil {
		close(stop)
		collect()
		t.Fatalf("after killing %s: %v", old.name, err)
	}
	t.Logf("new leader %s agreed by the survivors %v after the kill", leader.name, elected.Sub(killed).Round(time.Millisecond))
	// Keep acquiring past the longest Acquire sent before the election, so some are
	// sent to the new leader.
	time.AfterFunc(opBound, func() { close(stop) })

	// I7 through the leader change: the same grant is still held by a read that
	// began ttl·(1−ρ) after Activate returned. (Expiry is final, so it was held
	// throughout.) Reads fail with ErrUnavailable while there is no leader.
	i7 := activated.Add(time.Duration(float64(ttl) * (1 - etcdlease.Rho)))
	var unavailable int
	for {
		start := time.Now()
		l, err := s.Get(ctx, "a1")
		switch {
		case errors.Is(err, etcdlease.ErrUnavailable):
			unavailable++
		case errors.Is(err, lease.ErrNotFound):
			t.Fatalf("ACTIVE lease of txA expired early: gone %v after Activate, before ttl·(1−ρ) = %v",
				time.Since(activated).Round(time.Millisecond), i7.Sub(activated))
		case err != nil:
			t.Fatalf("Get(a1) during the leader change: %v", err)
		case l.TxID != "txA" || l.Token != tok || l.State != lease.Active:
			t.Fatalf("Get(a1) = %+v, want txA's ACTIVE grant, token %d", l, tok)
		}
		if err == nil && !start.Before(i7) {
			break
		}
		if time.Since(activated) > ttl+20*time.Second {
			t.Fatalf("no read of a1 succeeded after the kill (%d unavailable)", unavailable)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("ACTIVE lease still held %v after Activate (ttl %v, ρ %v; %d reads unavailable during the election)",
		time.Since(activated).Round(time.Millisecond), ttl, etcdlease.Rho, unavailable)

	// Renew works through the new leader. The client may first try a connection to
	// the dead member; that is ErrUnavailable, and the caller retries.
	var renewStart, renewed time.Time
	for try := 0; ; try++ {
		renewStart = time.Now()
		err := s.Renew(ctx, "txA")
		renewed = time.Now()
		if err == nil {
			t.Logf("Renew through the new leader succeeded (try %d, %v after Activate)", try+1, renewed.Sub(activated).Round(time.Millisecond))
			break
		}
		if !errors.Is(err, etcdlease.ErrUnavailable) || try == 4 {
			t.Fatalf("Renew after the leader change, try %d: %v", try+1, err)
		}
	}

	// The renewed lease lives ttl·(1−ρ) from the renew and, with no further leader
	// change, is gone by ttl·(1+ρ) + ExpirySlack of it. txB, activated before the
	// kill and never renewed, is given a fresh TTL plus the election timeout by the
	// new leader (etcd's lessor Promote): it lives longer than ttl, never shorter, and
	// is gone by ttl·(1+ρ) + election timeout + ExpirySlack from the takeover.
	slack := etcdlease.ExpirySlack(ttl, procCommitLatency)
	upper := time.Duration(float64(ttl) * (1 + etcdlease.Rho))
	watch := []struct {
		player, txid string
		from         time.Time // when its TTL last (re)started, as the caller knows it
		lo, hi       time.Time
		gone         time.Time
	}{
		{"a2", "txA", renewStart, renewed.Add(time.Duration(float64(ttl) * (1 - etcdlease.Rho))), renewStart.Add(upper + slack), time.Time{}},
		{"b1", "txB", activatedB, activatedB.Add(time.Duration(float64(ttl) * (1 - etcdlease.Rho))),
			elected.Add(upper + electionMs*time.Millisecond + slack), time.Time{}},
	}
	for pending := len(watch); pending > 0; {
		for i := range watch {
			w := &watch[i]
			if !w.gone.IsZero() {
				continue
			}
			start := time.Now()
			l, err := s.Get(ctx, w.player)
			switch {
			case errors.Is(err, lease.ErrNotFound):
				if start.Before(w.lo) {
					t.Fatalf("%s's ACTIVE lease gone %v after its TTL started, before ttl·(1−ρ)", w.txid, start.Sub(w.from))
				}
				w.gone = start
				pending--
			case err != nil:
				t.Fatalf("Get(%s) after the renew: %v", w.player, err)
			case l.TxID != w.txid || l.State != lease.Active:
				t.Fatalf("Get(%s) = %+v, want %s's ACTIVE grant", w.player, l, w.txid)
			case start.After(w.hi):
				t.Fatalf("%s's lease still held %v after its TTL started, bound %v", w.txid, start.Sub(w.from), w.hi.Sub(w.from))
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, w := range watch {
		t.Logf("%s's lease gone %v after its TTL started (bounds [%v, %v])", w.txid, w.gone.Sub(w.from).Round(time.Millisecond),
			w.lo.Sub(w.from).Round(time.Millisecond), w.hi.Sub(w.from).Round(time.Millisecond))
	}
	if err := s.Renew(ctx, "txA"); !errors.Is(err, lease.ErrNotFound) {
		t.Errorf("Renew after expiry = %v, want ErrNotFound", err)
	}

	// The reservation, on the owner session, survived the change.
	for _, p := range []string{"r1", "r2"} {
		if l, err := s.Get(ctx, p); err != nil || l.TxID != "txR" || l.Token != reserved[0].Token || l.State != lease.Reserved {
			t.Errorf("Get(%s) after the leader change = %+v, %v; want txR's reservation", p, l, err)
		}
	}
	if err := s.Release(ctx, "txR"); err != nil {
		t.Errorf("Release(txR): %v", err)
	}

	// Acquires during the election: bounded, typed, all or none.
	attempts := collect()
	held, unav, slowest := auditAttempts(t, cli, prefix, attempts, opBound, tok)
	for _, a := range held { // Release works after the change too
		if err := s.Release(ctx, a.txid); err != nil {
			t.Errorf("Release(%s): %v", a.txid, err)
		}
	}
	duringElection, grantedAfter := 0, 0
	for _, a := range attempts {
		if a.start.Before(elected) {
			duringElection++
		} else if a.err == nil {
			grantedAfter++
		}
	}
	t.Logf("%d Acquires from the kill to %v after the election (%d sent before it): %d ErrUnavailable, %d hold their players, slowest %v",
		len(attempts), opBound, duringElection, unav, len(held), slowest.Round(time.Millisecond))
	if duringElection == 0 {
		t.Errorf("no Acquire was sent before the new leader took over")
	}
	if grantedAfter == 0 {
		t.Errorf("no Acquire sent after the new leader took over was granted")
	}
	if n := countKeys(t, cli, prefix); n != 0 {
		t.Errorf("%d keys left under %s after every grant was released or expired", n, prefix)
	}
}

// acquireDuring starts 4 goroutines that each Acquire fresh 3-player matches on s, one
// after another with pause between, until stop is closed. The returned func waits for
// them and returns every attempt.
func acquireDuring(s *etcdlease.Store, ttl, pause time.Duration, stop <-chan struct{}) func() []acquireAttempt {
	const acquirers = 4
	done := make(chan []acquireAttempt, acquirers)
	for g := range acquirers {
		go func() {
			var as []acquireAttempt
			defer func() { done <- as }()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a := acquireAttempt{txid: fmt.Sprintf("txE%d.%d", g, i), start: time.Now()}
				for _, p := range []string{"x", "y", "z"} {
					a.players = append(a.players, fmt.Sprintf("e%d.%d%s", g, i, p))
				}
				_, a.err = s.Acquire(context.Background(), a.txid, a.players, ttl)
				a.took = time.Since(a.start)
				as = append(as, a)
				time.Sleep(time.Duration(g+1) * pause) // spread the sends out
			}
		}()
	}
	return func() []acquireAttempt {
		var all []acquireAttempt
		for range acquirers {
			all = append(all, <-done...)
		}
		return all
	}
}

// grantKey is what a raw read of one player or txid key under a prefix shows.
type grantKey struct {
	tx      string   // the holder (player keys)
	players []string // the players (txid keys)
	create  int64    // the token
}

// readGrants reads every player and txid key under prefix directly from etcd, both in
// one revision.
func readGrants(t *testing.T, cli *clientv3.Client, prefix string) (players, txns map[string]grantKey) {
	t.Helper()
	resp, err := cli.Txn(context.Background()).Then(
		clientv3.OpGet(prefix+"/players/", clientv3.WithPrefix()),
		clientv3.OpGet(prefix+"/txns/", clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		t.Fatal(err)
	}
	players, txns = map[string]grantKey{}, map[string]grantKey{}
	for i, into := range []map[string]grantKey{players, txns} {
		for _, kv := range resp.Responses[i].GetResponseRange().Kvs {
			var r struct {
				Tx string   `json:"tx"`
				P  []string `json:"p"`
			}
			if err := json.Unmarshal(kv.Value, &r); err != nil {
				t.Fatalf("%s: %v", kv.Key, err)
			}
			name := string(kv.Key)[strings.LastIndex(string(kv.Key), "/")+1:]
			into[name] = grantKey{tx: r.Tx, players: r.P, create: kv.CreateRevision}
		}
	}
	return players, txns
}

// auditAttempts checks, once the cluster is settled, that every attempt returned
// within bound, granted or with ErrUnavailable and nothing else; and, from one raw
// read of every key under prefix, that each holds all of its players or none (a
// timed-out write may have gone through, but never in part), with tokens above
// minToken, and that no key anywhere under prefix belongs to a partial grant. It
// returns the attempts that hold their players, the count of ErrUnavailable, and the
// slowest attempt.
func auditAttempts(t *testing.T, cli *clientv3.Client, prefix string, attempts []acquireAttempt, bound time.Duration, minToken uint64) (held []acquireAttempt, unav int, slowest time.Duration) {
	t.Helper()
	players, txns := readGrants(t, cli, prefix)
	for _, a := range attempts {
		slowest = max(slowest, a.took)
		switch {
		case a.err == nil:
		case errors.Is(a.err, etcdlease.ErrUnavailable):
			unav++
			t.Logf("Acquire %s: %v after %v", a.txid, a.err, a.took.Round(time.Millisecond))
		default:
			t.Errorf("Acquire %s: %v; want success or ErrUnavailable", a.txid, a.err)
		}
		if a.took > bound {
			t.Errorf("Acquire %s took %v, want at most %v", a.txid, a.took, bound)
		}
		n := 0
		for _, p := range a.players {
			if k, ok := players[p]; ok && k.tx == a.txid {
				n++
				if uint64(k.create) <= minToken {
					t.Errorf("%s granted %s token %d, not above %d granted before", a.txid, p, k.create, minToken)
				}
			}
		}
		switch {
		case n == len(a.players):
			held = append(held, a)
		case a.err == nil:
			t.Errorf("Acquire %s succeeded but holds %d of its %d players", a.txid, n, len(a.players))
		case n != 0:
			t.Errorf("Acquire %s (%v) half-granted: holds %d of %v", a.txid, a.err, n, a.players)
		}
	}
	// Globally: every player key belongs to a txid key of the same grant, and every
	// txid key's players all point back at it.
	for p, k := range players {
		if tk, ok := txns[k.tx]; !ok || tk.create != k.create {
			t.Errorf("player %s held by %s (token %d) without that grant's txid key", p, k.tx, k.create)
		}
	}
	for tx, tk := range txns {
		for _, p := range tk.players {
			if k, ok := players[p]; !ok || k.tx != tx || k.create != tk.create {
				t.Errorf("txid %s (token %d) lacks its player %s", tx, tk.create, p)
			}
		}
	}
	return held, unav, slowest
}

// memberClient returns a client of m alone, closed when tb ends.
func (c *etcdCluster) memberClient(tb testing.TB, m *etcdProc) *clientv3.Client {
	tb.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.cURL.String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cli.Close() })
	return cli
}

// Leadership is moved (MoveLeader) ten times while Acquires run and an ACTIVE match
// is renewed. While a transfer is under way the leader drops proposals, which etcd
// reports as "raft proposal dropped" with gRPC code Unknown; the store must call that
// ErrUnavailable (it was the one untyped error this test found). Every Acquire is
// bounded, typed and all-or-none, no Renew reports the lease lost, and the match is
// still held, same grant, after the moves.
func TestProcessLeaderMoved(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	cli := c.client(t)
	prefix := uniquePrefix()
	const (
		ttl       = 2 * time.Second
		opTimeout = time.Second
		opBound   = opTimeout + time.Second
		moves     = 10
	)
	ctx := context.Background()
	s := newStore(t, cli, etcdlease.Options{Prefix: prefix, OpTimeout: opTimeout})
	granted, err := s.Acquire(ctx, "txA", []string{"a1", "a2"}, ttl)
	if err != nil {
		t.Fatal(err)
	}
	tok := granted[0].Token
	if err := s.Activate(ctx, "txA"); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	collect := acquireDuring(s, ttl, 0, stop)
	var renewsUnavailable int
	for i := range moves {
		from, err := c.waitLeader(10*time.Second, nil)
		if err != nil {
			close(stop)
			collect()
			t.Fatal(err)
		}
		var to *etcdProc
		for _, m := range c.members {
			if m != from && m.id != 0 {
				to = m
				break
			}
		}
		start := time.Now()
		if _, err := c.memberClient(t, from).MoveLeader(ctx, to.id); err != nil {
			t.Errorf("move %d, %s to %s: %v", i, from.name, to.name, err)
		}
		if _, err := c.waitLeader(10*time.Second, from); err != nil {
			t.Errorf("move %d: %v", i, err)
		}
		t.Logf("move %d: leadership %s → %s in %v", i, from.name, to.name, time.Since(start).Round(time.Millisecond))
		if err := s.Renew(ctx, "txA"); errors.Is(err, etcdlease.ErrUnavailable) {
			renewsUnavailable++
		} else if err != nil {
			t.Errorf("Renew after move %d: %v", i, err)
		}
	}
	close(stop)
	attempts := collect()
	for _, p := range []string{"a1", "a2"} {
		if l, err := s.Get(ctx, p); err != nil || l.TxID != "txA" || l.Token != tok || l.State != lease.Active {
			t.Errorf("Get(%s) after the moves = %+v, %v; want txA's ACTIVE grant, token %d", p, l, err, tok)
		}
	}
	held, unav, slowest := auditAttempts(t, cli, prefix, attempts, opBound, tok)
	t.Logf("%d Acquires across %d moves: %d ErrUnavailable, %d hold their players, slowest %v; %d of %d renews unavailable",
		len(attempts), moves, unav, len(held), slowest.Round(time.Millisecond), renewsUnavailable, moves)
}

// The errors etcd returns while leadership changes are ErrUnavailable; refusals are not.
func TestTransientErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{status.Error(codes.Unknown, "raft proposal dropped"), true}, // a leadership transfer, seen in TestProcessLeaderMoved
		{rpctypes.ErrGRPCTimeoutDueToLeaderFail, true},
		{rpctypes.ErrGRPCNoLeader, true},
		{context.DeadlineExceeded, true},
		{rpctypes.ErrGRPCLeaseNotFound, false},
		{rpctypes.ErrGRPCTooManyOps, false},
		{errors.New("etcdlease: corrupt record"), false},
	} {
		if got := etcdlease.Transient(tc.err); got != tc.want {
			t.Errorf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
