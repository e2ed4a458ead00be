package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shardmatch/shardmatch/chaos/netns"
	"github.com/shardmatch/shardmatch/chaos/scenario"
	"github.com/shardmatch/shardmatch/coordinator/admin"
)

// Node kinds.
const (
	kindNATS        = "nats"
	kindCoordinator = "coordinator"
	kindShard       = "shard"
)

// node is one process of the deployment in its own namespace.
type node struct {
	name  string // "nats", "c1".., "s1"..
	kind  string
	host  *netns.Host
	proc  *netns.Proc
	admin string // http://ip:port of its admin API ("" for nats)
	// down is set while a fault keeps the process killed on purpose.
	down bool
}

// deployment is the system under test: the namespaces and the processes in them.
type deployment struct {
	cfg     *Config
	sc      *scenario.Scenario
	log     *slog.Logger
	net     *netns.Net
	work    string
	histDir string
	epoch   time.Time // the reference clock's zero, on the machine's wall clock
	http    *http.Client
	sec     *security // nil unless Config.Secure

	nats   *node
	coords []*node
	shards []*node
	byName map[string]*node
	// proxies are the latency proxies (in the root namespace) through which the
	// nodes that have a latency fault on their NATS link reach NATS, by node.
	proxies map[string]*netns.Proxy
}

func (d *deployment) natsURL() string {
	return fmt.Sprintf("nats://%s", netipPort(d.nats.host.IP.String(), natsPort))
}

// natsURLFor is the NATS URL node n dials: through its latency proxy if it has one.
func (d *deployment) natsURLFor(n *node) string {
	if p := d.proxies[n.name]; p != nil {
		return "nats://" + p.Addr()
	}
	return d.natsURL()
}

// startProxies puts a latency proxy on the NATS link of every node that a latency
// fault names. The link's other end must be "nats"; this end must be named statically
// (node names, coordinators, shards, all), because the proxy is wired at start.
func (d *deployment) startProxies() error {
	d.proxies = map[string]*netns.Proxy{}
	for _, f := range d.sc.Faults {
		if f.Kind != scenario.FaultLatency {
			continue
		}
		ends, err := d.latencyEnds(f)
		if err != nil {
			return err
		}
		for _, n := range ends {
			if d.proxies[n.name] != nil {
				continue
			}
			p, err := netns.NewProxy("nats-"+n.name, netipPort(d.net.BridgeIP().String(), 0), netipPort(d.nats.host.IP.String(), natsPort))
			if err != nil {
				return fmt.Errorf("%w: latency proxy for %s: %v", ErrSetup, n.name, err)
			}
			d.proxies[n.name] = p
		}
	}
	return nil
}

// latencyEnds resolves the non-NATS end of a latency fault's link.
func (d *deployment) latencyEnds(f scenario.Fault) ([]*node, error) {
	var other string
	switch {
	case len(f.Link) == 2 && f.Link[0] == "nats":
		other = f.Link[1]
	case len(f.Link) == 2 && f.Link[1] == "nats":
		other = f.Link[0]
	default:
		return nil, fmt.Errorf("%w: latency link %v: this runner puts latency only on a node's link to nats", ErrConfig, f.Link)
	}
	switch other {
	case "coordinators":
		return d.coords, nil
	case "shards":
		return d.shards, nil
	case "all":
		return append(slices.Clone(d.coords), d.shards...), nil
	}
	if n := d.byName[other]; n != nil && n != d.nats {
		return []*node{n}, nil
	}
	return nil, fmt.Errorf("%w: latency link %v: name the nodes (c1, s2, coordinators, shards, all), not a role: the proxy is wired at start", ErrConfig, f.Link)
}

func netipPort(ip string, port int) string { return ip + ":" + strconv.Itoa(port) }

// names lists the deployment's nodes in a stable order: nats, coordinators, shards.
func (d *deployment) names() []string {
	out := []string{d.nats.name}
	for _, n := range d.coords {
		out = append(out, n.name)
	}
	for _, n := range d.shards {
		out = append(out, n.name)
	}
	return out
}

// start creates the namespaces and starts every process, then waits until a leader
// leads and every shard is registered.
func (d *deployment) start(ctx context.Context) error {
	d.byName = map[string]*node{}
	add := func(name, kind string) (*node, error) {
		h, err := d.net.AddHost(ctx, name)
		if err != nil {
			return nil, err
		}
		n := &node{name: name, kind: kind, host: h}
		d.byName[name] = n
		return n, nil
	}
	var err error
	if d.nats, err = add("nats", kindNATS); err != nil {
		return err
	}
	for i := 1; i <= d.sc.Topology.Coordinators; i++ {
		n, err := add(fmt.Sprintf("c%d", i), kindCoordinator)
		if err != nil {
			return err
		}
		n.admin = "http://" + netipPort(n.host.IP.String(), coordAdminPort)
		d.coords = append(d.coords, n)
	}
	for i := 1; i <= d.sc.Topology.Shards; i++ {
		n, err := add(fmt.Sprintf("s%d", i), kindShard)
		if err != nil {
			return err
		}
		n.admin = "http://" + netipPort(n.host.IP.String(), shardAdminPort)
		d.shards = append(d.shards, n)
	}
	if err := os.MkdirAll(filepath.Join(d.work, "logs"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(d.histDir, 0o755); err != nil {
		return err
	}

	if err := d.startProxies(); err != nil {
		return err
	}
	if d.cfg.Secure {
		hosts := map[string]string{}
		for _, c := range d.coords {
			hosts[c.name] = c.host.IP.String()
		}
		var err error
		if d.sec, err = newSecurity(filepath.Join(d.work, "secure"), hosts); err != nil {
			return fmt.Errorf("%w: credentials: %v", ErrSetup, err)
		}
		for _, c := range d.coords {
			c.admin = "https://" + netipPort(c.host.IP.String(), coordAdminPort)
		}
		d.http = d.sec.adminClient
	}
	natsArgs := []string{"nats", "--addr", netipPort(d.nats.host.IP.String(), natsPort), "--store", filepath.Join(d.work, "nats")}
	if d.sec != nil {
		natsArgs = append(natsArgs, d.sec.natsArgs()...)
	}
	if err := d.launch(ctx, d.nats, d.cfg.CoordinatorBin, natsArgs); err != nil {
		return err
	}
	var peers []string
	for _, c := range d.coords {
		peers = append(peers, c.name+"="+netipPort(c.host.IP.String(), raftPort))
	}
	for _, c := range d.coords {
		args := []string{"serve", "--id", c.name, "--data", filepath.Join(d.work, c.name),
			"--raft-addr", netipPort(c.host.IP.String(), raftPort), "--peers", strings.Join(peers, ","), "--bootstrap",
			"--nats-url", d.natsURLFor(c), "--admin-addr", netipPort(c.host.IP.String(), coordAdminPort),
			"--prepare-timeout", time.Duration(d.sc.Topology.PrepareTimeout).String(),
			"--retention", retentionFor(d.sc).String(),
			"--raft-heartbeat-timeout", raftHeartbeat.String(), "--raft-election-timeout", raftElection.String(),
			"--log-format", "json", "--enable-fault-injection",
			"--history-dir", d.histDir, "--history-epoch", strconv.FormatInt(d.epoch.UnixNano(), 10)}
		if d.sc.Unsafe != "" {
			args = append(args, "--unsafe", d.sc.Unsafe)
		}
		var env []string
		if d.sec != nil {
			extra, err := d.sec.coordinatorArgs(c.name)
			if err != nil {
				return fmt.Errorf("%w: credentials of %s: %v", ErrSetup, c.name, err)
			}
			args, env = append(args, extra...), d.sec.coordinatorEnv()
		}
		if err := d.launchEnv(ctx, c, d.cfg.CoordinatorBin, args, env); err != nil {
			return err
		}
	}
	for _, s := range d.shards {
		args := []string{"--id", s.name, "--journal", filepath.Join(d.work, s.name+".journal"),
			"--players", strconv.Itoa(d.sc.Topology.PlayersPerShard), "--seed", strconv.FormatInt(d.cfg.Seed, 10),
			"--admin-addr", netipPort(s.host.IP.String(), shardAdminPort), "--nats-url", d.natsURLFor(s),
			"--match-ttl", time.Duration(d.sc.Workload.MatchTTL).String(), "--compact-every", "0",
			"--log-format", "json", "--enable-fault-injection",
			"--history-dir", d.histDir, "--history-epoch", strconv.FormatInt(d.epoch.UnixNano(), 10)}
		if d.sc.Checks.MinCommitRatio > 0 {
			args = append(args, "--always-available")
		}
		if d.sec != nil {
			extra, err := d.sec.shardArgs(s.name)
			if err != nil {
				return fmt.Errorf("%w: credentials of %s: %v", ErrSetup, s.name, err)
			}
			args = append(args, extra...)
		}
		if err := d.launch(ctx, s, d.cfg.ShardsvcBin, args); err != nil {
			return err
		}
	}
	if err := d.waitReady(ctx); err != nil {
		return err
	}
	if d.sec != nil {
		return d.sec.verifyInEffect(ctx, d)
	}
	return nil
}

func (d *deployment) launch(ctx context.Context, n *node, bin string, args []string) error {
	return d.launchEnv(ctx, n, bin, args, nil)
}

// launchEnv is launch with extra environment variables.
func (d *deployment) launchEnv(ctx context.Context, n *node, bin string, args, env []string) error {
	p, err := netns.StartProc(ctx, netns.ProcSpec{Name: n.name, Host: n.host, Path: bin, Args: args, Env: env,
		LogPath: filepath.Join(d.work, "logs", n.name+".log")})
	if err != nil {
		return fmt.Errorf("%w: start %s: %v", ErrSetup, n.name, err)
	}
	n.proc = p
	return nil
}

// waitReady polls until one coordinator leads, every coordinator knows it, and the
// leader lists every shard as registered.
func (d *deployment) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var last string
	for {
		if dead := d.deadProcs(); len(dead) > 0 {
			return fmt.Errorf("%w: %s exited (see %s)", ErrSetup, strings.Join(dead, ", "), filepath.Join(d.work, "logs"))
		}
		leader, why := d.readyLeader(ctx)
		if leader != nil {
			missing, err := d.unregistered(ctx, leader)
			if err == nil && len(missing) == 0 {
				return nil
			}
			why = fmt.Sprintf("shards not registered: %v %v", missing, err)
		}
		last = why
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s", ErrSetup, last)
		case <-time.After(pollEvery):
		}
	}
}

func (d *deployment) deadProcs() []string {
	var dead []string
	for _, name := range d.names() {
		if n := d.byName[name]; n.proc != nil && !n.down && !n.proc.Running() {
			dead = append(dead, name)
		}
	}
	return dead
}

// statuses fetches /v1/status from every coordinator (unreachable ones carry Err).
func (d *deployment) statuses(ctx context.Context) []*admin.Status {
	sc := admin.StatusClient{HTTP: d.http}
	urls := make([]string, len(d.coords))
	for i, c := range d.coords {
		urls[i] = c.admin
	}
	return sc.FetchAll(ctx, urls)
}

// readyLeader returns the coordinator that leads (finished taking over) with every
// reachable coordinator agreeing, or why there is none.
func (d *deployment) readyLeader(ctx context.Context) (*node, string) {
	var leader *node
	var term uint64
	for i, st := range d.statuses(ctx) {
		if st == nil || st.Err != nil {
			continue
		}
		if st.Leading && st.Term >= term {
			leader, term = d.coords[i], st.Term
		}
	}
	if leader == nil {
		return nil, "no coordinator leads yet"
	}
	return leader, ""
}

// leader returns the current leader, waiting up to leaderLookupFor for one.
func (d *deployment) leader(ctx context.Context) (*node, error) {
	ctx, cancel := context.WithTimeout(ctx, leaderLookupFor)
	defer cancel()
	for {
		if l, _ := d.readyLeader(ctx); l != nil {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, errors.New("runner: no leader")
		case <-time.After(pollEvery):
		}
	}
}

func (d *deployment) unregistered(ctx context.Context, leader *node) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, leader.admin+"/v1/shards", nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list struct {
		Shards []struct {
			ShardID string `json:"shard_id"`
		} `json:"shards"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, err
	}
	var missing []string
	for _, s := range d.shards {
		if !slices.ContainsFunc(list.Shards, func(x struct {
			ShardID string `json:"shard_id"`
		}) bool {
			return x.ShardID == s.name
		}) {
			missing = append(missing, s.name)
		}
	}
	return missing, nil
}

// stop ends every process (SIGTERM, then SIGKILL) and removes the namespaces.
func (d *deployment) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, name := range slices.Backward(d.names()) {
		n := d.byName[name]
		if n != nil && n.proc != nil {
			_ = n.proc.Resume()
			if err := n.proc.Stop(ctx, 5*time.Second); err != nil {
				d.log.Warn("stop", "node", name, "err", err)
			}
		}
	}
	for name, p := range d.proxies {
		if err := p.Close(); err != nil {
			d.log.Warn("latency proxy", "node", name, "err", err)
		}
	}
	d.proxies = nil
	if d.net != nil {
		if err := d.net.Close(); err != nil {
			d.log.Warn("network teardown", "err", err)
		}
	}
}
