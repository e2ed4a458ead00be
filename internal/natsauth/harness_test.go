package natsauth_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/natsapi"
	"github.com/shardmatch/shardmatch/coordinator/natsnode"
	"github.com/shardmatch/shardmatch/internal/config"
	"github.com/shardmatch/shardmatch/internal/natsauth"
	"github.com/shardmatch/shardmatch/internal/natsembed"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

// authEnv is an embedded NATS server in operator mode for a fresh deployment.
type authEnv struct {
	t   *testing.T
	d   *natsauth.Deployment
	srv *server.Server
	dir string
}

func startAuthEnv(t *testing.T) *authEnv {
	t.Helper()
	d, err := natsauth.Init("", natsauth.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	e := &authEnv{t: t, d: d, dir: t.TempDir()}
	e.srv, err = natsembed.StartEmbedded(natsembed.EmbeddedConfig{StoreDir: filepath.Join(e.dir, "nats"),
		ServerName: "natsauth-test", Configure: d.ConfigureServer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { natsembed.Shutdown(e.srv) })
	return e
}

// creds signs a user of role and id and writes its creds file.
func (e *authEnv) creds(role natsauth.Role, id string) string {
	e.t.Helper()
	u, err := e.d.NewUser(role, id, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.dir, u.Name+".creds")
	if err := os.WriteFile(path, u.Creds, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// authConn is a connection made as shardmatch's commands make it (internal/config,
// so the inbox prefix comes from the creds), recording its async errors.
type authConn struct {
	*nats.Conn
	name      string
	credsPath string
	mu        sync.Mutex
	errs      []error
}

func (e *authEnv) connect(role natsauth.Role, id string) *authConn {
	e.t.Helper()
	n := config.NATS{URL: e.srv.ClientURL(), Creds: e.creds(role, id)}
	c := &authConn{name: string(role) + "-" + id, credsPath: n.Creds}
	opts := append(n.Options(c.name, slog.New(slog.DiscardHandler)),
		nats.ReconnectWait(20*time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err)
			c.mu.Unlock()
		}))
	nc, err := nats.Connect(n.URL, opts...)
	if err != nil {
		e.t.Fatalf("connect as %s: %v", c.name, err)
	}
	c.Conn = nc
	e.t.Cleanup(nc.Close)
	return c
}

// violations returns the permission violations seen so far that name subject.
func (c *authConn) violations(subject string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, err := range c.errs {
		if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
			n++
		}
	}
	return n
}

// waitViolation waits until the server has told c that using subject was denied.
func (c *authConn) waitViolation(t *testing.T, subject string) {
	t.Helper()
	_ = c.FlushTimeout(5 * time.Second)
	waitFor(t, 5*time.Second, c.name+" told "+subject+" is denied", func() bool { return c.violations(subject) > 0 })
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recShard is a shard's game state: it accepts every player and counts what it saw.
type recShard struct {
	prepares, commits, aborts atomic.Int64
}

func (s *recShard) Prepare(context.Context, string, []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error) {
	s.prepares.Add(1)
	return nil, nil
}
func (s *recShard) Commit(context.Context, string, []*smv1.ShardPlayer) error {
	s.commits.Add(1)
	return nil
}
func (s *recShard) Abort(context.Context, string, []*smv1.ShardPlayer) error {
	s.aborts.Add(1)
	return nil
}

// stack is a whole deployment over the operator-mode server, every party with its own
// credentials: one coordinator node (real Raft), shards over natstransport, proposers.
type stack struct {
	*authEnv
	coord  *authConn
	tr     *natstransport.Coordinator
	api    *natsapi.Server
	lc     *coordinator.LocalCluster
	shards map[string]*stackShard
}

type stackShard struct {
	id   string
	conn *authConn
	game *recShard
	srv  *natstransport.ShardServer
	cli  *client.Client
	part *twophase.Participant
}

func startStack(t *testing.T, shards ...string) *stack {
	t.Helper()
	s := &stack{authEnv: startAuthEnv(t), shards: map[string]*stackShard{}}
	s.coord = s.connect(natsauth.RoleCoordinator, "c1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stack *natsnode.Assembly
	lc, err := coordinator.NewLocalCluster(coordinator.LocalClusterConfig{Nodes: 1, DataDir: filepath.Join(s.dir, "raft"),
		AttemptTimeout: 2 * time.Second,
		NewNode: func(cfg coordinator.Config, opts ...coordinator.Option) (*coordinator.Node, error) {
			a, err := natsnode.New(ctx, natsnode.Config{Conn: s.coord.Conn,
				Transport: natstransport.CoordinatorConfig{Streams: natsutil.StreamConfig{Storage: jetstream.MemoryStorage}},
				API:       natsapi.Config{NodeID: "c1", SkipEnsureStreams: true}}, cfg, opts...)
			if err != nil {
				return nil, err
			}
			stack = a
			return a.Node, nil
		},
		Configure: func(_ string, c *coordinator.Config) {
			c.Clock = clock.NewReal()
			c.ResendInitial, c.ResendMax = 50*time.Millisecond, 500*time.Millisecond
			c.Limits.DefaultPrepareTimeout = 5 * time.Second
		}})
	if err != nil {
		t.Fatal(err)
	}
	s.lc, s.api, s.tr = lc, stack.API, stack.Transport
	t.Cleanup(func() { lc.Shutdown(); stack.Close() }) // the node first, then what it talks through
	waitFor(t, 30*time.Second, "the coordinator serving", s.api.Serving)
	for _, id := range shards {
		s.addShard(id)
	}
	return s
}

// addShard starts a shard with fresh credentials and registers it, as shardsvc does.
func (s *stack) addShard(id string) *stackShard {
	s.t.Helper()
	sh := &stackShard{id: id, conn: s.connect(natsauth.RoleShard, id), game: &recShard{}}
	var err error
	if sh.part, err = twophase.NewParticipant(twophase.ParticipantConfig{ShardID: id, Handler: sh.game,
		Journal: twophase.NewMemJournal(), Clock: clock.NewReal()}); err != nil {
		s.t.Fatal(err)
	}
	if sh.cli, err = client.New(client.Config{Conn: sh.conn.Conn}); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = sh.cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := sh.cli.RegisterShard(ctx, &smv1.ShardInfo{ShardId: id, Region: "eu-west", Capacity: 100, ProtocolVersion: 1}); err != nil {
		s.t.Fatalf("register %s: %v", id, err)
	}
	if sh.srv, err = natstransport.Serve(ctx, natstransport.ParticipantConfig{Conn: sh.conn.Conn, ShardID: id, Handler: sh.part,
		Querier: client.StatusQuerier{Client: sh.cli, Timeout: 2 * time.Second}}); err != nil {
		s.t.Fatalf("serve %s: %v", id, err)
	}
	s.t.Cleanup(func() { _ = sh.srv.Close() })
	s.shards[id] = sh
	return sh
}

func (s *stack) node() *coordinator.Node { return s.lc.Node(0) }

// proposer connects a proposer and its client.
func (s *stack) proposer(id string) (*authConn, *client.Client) {
	s.t.Helper()
	c := s.connect(natsauth.RoleProposer, id)
	cli, err := client.New(client.Config{Conn: c.Conn, AttemptTimeout: 2 * time.Second})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = cli.Close() })
	return c, cli
}

var matchSeq atomic.Int64

func duel(pid string, shards ...string) *smv1.Proposal {
	n := matchSeq.Add(1)
	p := &smv1.Proposal{ProposalId: pid, Mode: "duel", MatchTtlMs: 600_000}
	for _, sh := range shards {
		p.Teams = append(p.Teams, &smv1.Team{Players: []*smv1.Player{{PlayerId: fmt.Sprintf("p%d-%s", n, sh), ShardId: sh}}})
	}
	return p
}
