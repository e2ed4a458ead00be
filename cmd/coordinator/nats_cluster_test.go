package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/internal/config"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/shardsvc"
)

// natsMember is one `coordinator nats` process of a cluster.
type natsMember struct {
	*proc
	name, clientURL, monitorURL string
}

// healthz asks the member's HTTP monitoring /healthz (with query, if any).
func (m *natsMember) healthz(query string) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(m.monitorURL + "/healthz" + query)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return fmt.Errorf("%s /healthz%s: %s %s", m.name, query, resp.Status, strings.TrimSpace(b.String()))
	}
	return nil
}

// metaLeader is the JetStream meta leader as the member sees it (/jsz).
func (m *natsMember) metaLeader() (string, error) {
	var jsz struct {
		Meta *struct {
			Leader string `json:"leader"`
		} `json:"meta_cluster"`
	}
	if err := getJSON(m.monitorURL+"/jsz", &jsz); err != nil {
		return "", err
	}
	if jsz.Meta == nil || jsz.Meta.Leader == "" {
		return "", fmt.Errorf("%s knows no meta leader", m.name)
	}
	return jsz.Meta.Leader, nil
}

// clientNames are the names of the client connections to the member (/connz).
func (m *natsMember) clientNames() ([]string, error) {
	var connz struct {
		Conns []struct {
			Name string `json:"name"`
		} `json:"connections"`
	}
	if err := getJSON(m.monitorURL+"/connz?limit=4096", &connz); err != nil {
		return nil, err
	}
	var out []string
	for _, c := range connz.Conns {
		out = append(out, c.Name)
	}
	return out, nil
}

// startNATSCluster runs n `coordinator nats` servers nats-0..nats-<n-1> on loopback,
// clustered: every one gets the same --routes, its own included, and the same route
// credentials (--cluster-auth-file). It points the deployment's URL (nodes, shards,
// the test's connections) at all of them and waits until every server is current
// with the cluster (/healthz).
func (d *deployment) startNATSCluster(n int) []*natsMember {
	d.t.Helper()
	var clientAddrs, clusterAddrs, monitorAddrs, routes, urls []string
	for range n {
		clientAddrs = append(clientAddrs, fmt.Sprintf("127.0.0.1:%d", freePort(d.t)))
		clusterAddrs = append(clusterAddrs, fmt.Sprintf("127.0.0.1:%d", freePort(d.t)))
		monitorAddrs = append(monitorAddrs, fmt.Sprintf("127.0.0.1:%d", freePort(d.t)))
		routes = append(routes, "nats://"+clusterAddrs[len(clusterAddrs)-1])
		urls = append(urls, "nats://"+clientAddrs[len(clientAddrs)-1])
	}
	// The route credentials every server shares (a ':' and a '%' in the password, which
	// the seed routes' URLs must escape).
	auth := filepath.Join(d.dir, "routes.auth")
	if err := os.WriteFile(auth, []byte("route:multi%proc:"+fmt.Sprint(time.Now().UnixNano())+"\n"), 0o600); err != nil {
		d.t.Fatal(err)
	}
	var members []*natsMember
	for i := range n {
		name := fmt.Sprintf("nats-%d", i)
		m := &natsMember{name: name, clientURL: urls[i], monitorURL: "http://" + monitorAddrs[i]}
		m.proc = d.add(&proc{name: name, bin: d.coord, args: []string{"nats", "--name", name,
			"--addr", clientAddrs[i], "--store", filepath.Join(d.dir, name), "--cluster-addr", clusterAddrs[i],
			"--cluster-auth-file", auth, "--routes", strings.Join(routes, ","), "--monitor-addr", monitorAddrs[i]}})
		members = append(members, m)
	}
	d.natsURL = strings.Join(urls, ",")
	d.natsConf = config.NATS{URL: d.natsURL}
	for _, m := range members {
		testutil.WaitFor(d.t, 30*time.Second, m.name+" current with the cluster", func() error { return m.healthz("") })
	}
	return members
}

// streamInfo is a stream's info, fresh from its leader.
func streamInfo(js jetstream.JetStream, name string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return st.Info(ctx)
}

// replicasCurrent checks that name has want replicas, a leader, and every replica
// current and online; it returns the leader's name.
func replicasCurrent(js jetstream.JetStream, name string, want int) (string, error) {
	info, err := streamInfo(js, name)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	cl := info.Cluster
	switch {
	case info.Config.Replicas != want:
		return "", fmt.Errorf("%s: configured with %d replicas, want %d", name, info.Config.Replicas, want)
	case cl == nil || cl.Leader == "":
		return "", fmt.Errorf("%s: no leader", name)
	case len(cl.Replicas) != want-1:
		return "", fmt.Errorf("%s: leader %s and %d other replicas, want %d", name, cl.Leader, len(cl.Replicas), want-1)
	}
	for _, r := range cl.Replicas {
		if !r.Current || r.Offline {
			return "", fmt.Errorf("%s: replica %s current=%v offline=%v lag=%d", name, r.Name, r.Current, r.Offline, r.Lag)
		}
	}
	return cl.Leader, nil
}

// stepDownTo asks a JetStream Raft group (a stream's or a consumer's, by API
// subject) to hand its leadership to the server named target.
func stepDownTo(nc *nats.Conn, subject, target string) error {
	msg, err := nc.Request(subject, fmt.Appendf(nil, `{"placement":{"preferred":%q}}`, target), 5*time.Second)
	if err != nil {
		return err
	}
	var resp struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return err
	}
	if resp.Error != nil {
		return errors.New(resp.Error.Description)
	}
	return nil
}

// timedProposer records, besides every call, when each decided call started and
// when its decision came back.
type timedProposer struct {
	*recordingProposer
	mu    sync.Mutex
	spans [][2]time.Time // start, decided
}

func (p *timedProposer) Propose(ctx context.Context, pr *smv1.Proposal) (*smv1.Decision, error) {
	start := time.Now()
	d, err := p.recordingProposer.Propose(ctx, pr)
	if d != nil {
		p.mu.Lock()
		p.spans = append(p.spans, [2]time.Time{start, time.Now()})
		p.mu.Unlock()
	}
	return d, err
}

// longestGap is the longest time without a decision in [from, to].
func (p *timedProposer) longestGap(from, to time.Time) time.Duration {
	ts := []time.Time{from, to}
	p.mu.Lock()
	for _, s := range p.spans {
		ts = append(ts, s[1])
	}
	p.mu.Unlock()
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	var gap time.Duration
	for i := 1; i < len(ts); i++ {
		if ts[i].Before(from) || ts[i-1].After(to) {
			continue
		}
		gap = max(gap, ts[i].Sub(maxTime(ts[i-1], from)))
	}
	return gap
}

// firstDecidedAfter is how long after t the first call started after t was decided
// (-1 if none was).
func (p *timedProposer) firstDecidedAfter(t time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := time.Duration(-1)
	for _, s := range p.spans {
		if s[0].After(t) && (first < 0 || s[1].Sub(t) < first) {
			first = s[1].Sub(t)
		}
	}
	return first
}

// slowest is the longest time a call started in [from, to] took to be decided.
func (p *timedProposer) slowest(from, to time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var d time.Duration
	for _, s := range p.spans {
		if !s[0].Before(from) && !s[0].After(to) {
			d = max(d, s[1].Sub(s[0]))
		}
	}
	return d
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// TestMultiProcessNATSCluster runs the production NATS shape: three `coordinator
// nats` servers clustered over loopback routes, three `coordinator serve` nodes with
// --stream-replicas 3 and --nats-url listing the three servers, two shards, and load
// through the client SDK, every call recorded. The streams must have three current
// replicas. Then it makes one server the harshest one to lose (the JetStream meta
// leader, given the leadership of every stream and consumer, and, when a coordinator
// is connected to it, the Raft leader too) and kills it with SIGKILL under load. Every
// call must still get a decision within the proposer's timeout (none unknown), every
// decision must stand (Status by proposal id), the streams must elect new leaders,
// the server restarted on its store must rejoin with every replica current again,
// and the audit of every node's FSM and shard's journal must be clean.
func TestMultiProcessNATSCluster(t *testing.T) {
	d := newDeployment(t)
	testutil.Exclusive(t, testutil.HeavyProcesses) // judged by failover timing
	t0 := time.Now()
	members := d.startNATSCluster(3)
	d.startCluster(3, "--stream-replicas", "3")
	for _, id := range []string{"s1", "s2"} {
		d.startShard(id, "--compact-every", "1h") // the audit reads whole journals
	}
	d.waitRegistered("s1", "s2")
	t.Logf("3 NATS servers, 3 coordinators, 2 shards up in %s", time.Since(t0).Round(time.Millisecond))

	nc, err := nats.Connect(d.natsURL, d.natsConf.Options("test", slog.New(slog.DiscardHandler))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	streams := []string{"SM_REQ", "SM_CMD", "SM_EVENTS"}
	testutil.WaitFor(t, 20*time.Second, "three current replicas of every stream", func() error {
		for _, s := range streams {
			if _, err := replicasCurrent(js, s, 3); err != nil {
				return err
			}
		}
		return nil
	})

	cl, err := client.New(client.Config{Conn: nc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	rec := &timedProposer{recordingProposer: &recordingProposer{c: cl}}
	// The proposer's timeout outlasts a JetStream leader election: a call that still
	// ends without a decision is a lost proposal, not a slow one.
	driver := newTestDriver(t, rec, func(dc *shardsvc.LoadGenConfig) {
		dc.Seed, dc.Rate, dc.MaxInFlight, dc.ProposeTimeout = 11, 40, 16, 25*time.Second
	})
	stopLoad := runDriver(t, driver)
	progress := func(what string, more int) {
		t.Helper()
		waitDecided(t, rec.recordingProposer, 30*time.Second, what, more)
	}
	progress("decisions on the cluster", 20)

	// The victim is the server the Raft leader is connected to, given the leadership
	// of every stream and every replicated consumer: its death stops intake, commands,
	// events, the consumers and the leader's own connection at once. If a coordinator
	// is connected to the JetStream meta leader (which cannot be moved without a
	// system account), the Raft leadership goes to that coordinator first, so that the
	// victim is the meta leader too.
	victim, roles := pickVictim(t, d, members)
	for _, s := range streams {
		moveLeader(t, nc, "stream "+s, "$JS.API.STREAM.LEADER.STEPDOWN."+s, victim.name, func() (string, error) {
			return replicasCurrent(js, s, 3)
		})
		roles = append(roles, s+" leader")
		moveConsumerLeaders(t, nc, js, s, victim.name, &roles)
	}
	progress("decisions with the roles moved", 20)

	// Kill it under load.
	t.Logf("kill -9 %s: %s", victim.name, strings.Join(roles, ", "))
	killed := time.Now()
	victim.kill()
	var newLeader string
	testutil.WaitUntilEvery(t, 30*time.Second, 50*time.Millisecond, "SM_REQ and SM_CMD led by a live server", func() bool {
		for _, s := range []string{"SM_REQ", "SM_CMD"} {
			info, err := streamInfo(js, s)
			if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || info.Cluster.Leader == victim.name {
				return false
			}
			newLeader = info.Cluster.Leader
		}
		return true
	})
	electedIn := time.Since(killed)
	progress("decisions after the kill", 30)

	// Restart it on its store: it rejoins, and every replica is current again.
	restarted := time.Now()
	victim.start(t)
	testutil.WaitFor(t, 30*time.Second, victim.name+" rejoined, current with the cluster", func() error {
		if err := victim.healthz(""); err != nil {
			return err
		}
		for _, s := range streams {
			if _, err := replicasCurrent(js, s, 3); err != nil {
				return err
			}
		}
		return nil
	})
	rejoinedIn := time.Since(restarted)
	progress("decisions after the rejoin", 20)
	if err := stopLoad(); err != nil {
		t.Errorf("driver: %v", err)
	}
	loadEnd := time.Now()

	calls := rec.snapshot()
	unknown := 0
	for _, c := range calls {
		if c.d == nil {
			unknown++
			t.Errorf("proposal %s (started %s after the kill) got no decision: %v", c.p.GetProposalId(),
				c.start.Sub(killed).Round(time.Millisecond), c.err)
		}
	}
	t.Logf("killed %s; SM_REQ and SM_CMD seen led by %s %s later; first call started after the kill decided %s after it; "+
		"slowest call started around the kill %s; longest gap between decisions %s; rejoined in %s; %d calls, %d unknown",
		victim.name, newLeader, electedIn.Round(time.Millisecond), rec.firstDecidedAfter(killed).Round(time.Millisecond),
		rec.slowest(killed.Add(-5*time.Second), killed.Add(5*time.Second)).Round(time.Millisecond),
		rec.longestGap(killed.Add(-time.Second), restarted).Round(time.Millisecond), rejoinedIn.Round(time.Millisecond),
		len(calls), unknown)
	checkProposeCalls(t, cl, calls)
	d.waitSettled(30 * time.Second)
	for _, p := range d.procs {
		if !p.running() {
			t.Errorf("%s exited", p.name)
		}
	}
	nodes := d.auditClean()
	checkOneTxnPerProposal(t, nodes, eventsBySeq(t, js))
	t.Logf("load ran %s; whole test %s", loadEnd.Sub(killed).Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
}

// pickVictim chooses the NATS server to kill (see TestMultiProcessNATSCluster),
// moving the Raft leadership if that makes it the meta leader too, and returns it
// with the roles it has so far.
func pickVictim(t *testing.T, d *deployment, members []*natsMember) (*natsMember, []string) {
	t.Helper()
	var meta string
	testutil.WaitFor(t, 10*time.Second, "the meta leader", func() (err error) {
		meta, err = members[0].metaLeader()
		return err
	})
	serverOf := map[string]*natsMember{} // coordinator id → its NATS server
	for _, m := range members {
		names, err := m.clientNames()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range d.nodes {
			if slices.Contains(names, "shardmatch-coordinator-"+n.id) {
				serverOf[n.id] = m
			}
		}
	}
	leader := d.nodes[d.waitLeader("")]
	for _, n := range d.nodes {
		if m := serverOf[n.id]; m != nil && m.name == meta && serverOf[leader.id] != m {
			transferLeader(t, leader, n)
			leader = d.nodes[d.waitLeader(leader.id)]
			break
		}
	}
	victim := serverOf[leader.id]
	if victim == nil {
		t.Fatalf("the Raft leader %s is connected to no NATS server: %v", leader.id, serverOf)
	}
	roles := []string{"server of the Raft leader " + leader.id}
	if victim.name == meta {
		roles = append(roles, "JetStream meta leader")
	} else {
		t.Logf("no coordinator is connected to the meta leader %s: the victim is not the meta leader", meta)
	}
	return victim, roles
}

// eventsBySeq reads the whole events stream, message by message through the
// stream leader (an ordered consumer, which eventsByProposal uses, is an R1 consumer
// that may need re-creating while a cluster settles): proposal id → txids published.
func eventsBySeq(t *testing.T, js jetstream.JetStream) map[string]map[string]smv1.Outcome {
	t.Helper()
	var info *jetstream.StreamInfo
	testutil.WaitFor(t, 20*time.Second, "SM_EVENTS info", func() (err error) {
		info, err = streamInfo(js, "SM_EVENTS")
		return err
	})
	out := map[string]map[string]smv1.Outcome{}
	if info.State.Msgs == 0 {
		return out
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		var m *jetstream.RawStreamMsg
		testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("event %d", seq), func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			st, err := js.Stream(ctx, "SM_EVENTS")
			if err == nil {
				m, err = st.GetMsg(ctx, seq)
			}
			return err
		})
		if !strings.HasPrefix(m.Subject, "sm.v1.events.match.") {
			continue // operator audit records (JSON) share the stream
		}
		var dec smv1.Decision
		if err := proto.Unmarshal(m.Data, &dec); err != nil {
			t.Fatalf("event %d: %v", seq, err)
		}
		if out[dec.GetProposalId()] == nil {
			out[dec.GetProposalId()] = map[string]smv1.Outcome{}
		}
		out[dec.GetProposalId()][dec.GetTxid()] = dec.GetOutcome()
	}
	return out
}

// moveConsumerLeaders moves the leadership of stream's replicated consumers to
// target, noting each in roles.
func moveConsumerLeaders(t *testing.T, nc *nats.Conn, js jetstream.JetStream, stream, target string, roles *[]string) {
	t.Helper()
	var st jetstream.Stream
	var names []string
	testutil.WaitFor(t, 10*time.Second, "the consumers of "+stream, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		if st, err = js.Stream(ctx, stream); err != nil {
			return err
		}
		names = names[:0]
		lister := st.ListConsumers(ctx)
		for ci := range lister.Info() {
			if ci.Cluster != nil && len(ci.Cluster.Replicas) > 0 { // R1 consumers cannot move
				names = append(names, ci.Name)
			}
		}
		return lister.Err()
	})
	for _, name := range names {
		moveLeader(t, nc, "consumer "+stream+"/"+name, "$JS.API.CONSUMER.LEADER.STEPDOWN."+stream+"."+name, target,
			func() (string, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				c, err := st.Consumer(ctx, name)
				if err != nil {
					return "", err
				}
				ci, err := c.Info(ctx)
				if err != nil {
					return "", err
				}
				if ci.Cluster == nil || ci.Cluster.Leader == "" {
					return "", errors.New("no leader")
				}
				return ci.Cluster.Leader, nil
			})
		*roles = append(*roles, "consumer "+stream+"/"+name+" leader")
	}
}

// moveLeader asks a JetStream Raft group (by its stepdown API subject) to hand its
// leadership to target until leader reports target, asking again only if the
// previous request has not worked within 3 s (every request is an election).
func moveLeader(t *testing.T, nc *nats.Conn, what, subject, target string, leader func() (string, error)) {
	t.Helper()
	var asked time.Time
	testutil.WaitFor(t, 30*time.Second, what+" led by "+target, func() error {
		l, err := leader()
		if err != nil || l == target {
			return err
		}
		if time.Since(asked) > 3*time.Second {
			asked = time.Now()
			if err := stepDownTo(nc, subject, target); err != nil {
				return fmt.Errorf("led by %s; step down: %w", l, err)
			}
		}
		return fmt.Errorf("led by %s", l)
	})
}

// transferLeader asks the Raft leader from to hand its leadership to to.
func transferLeader(t *testing.T, from, to *coordNode) {
	t.Helper()
	body := fmt.Sprintf(`{"id":%q,"addr":%q}`, to.id, to.raftAddr)
	req, err := http.NewRequest(http.MethodPost, from.adminURL+"/v1/leader/transfer", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		t.Fatalf("transfer leadership %s → %s: %s %s", from.id, to.id, resp.Status, b.String())
	}
}
