package natsembed_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardmatch/shardmatch/internal/natsembed"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/natsutil/natstest"
	"github.com/shardmatch/shardmatch/internal/testutil"
)

func mustRoutes(t *testing.T, list string) []*url.URL {
	t.Helper()
	r, err := natsembed.ParseRoutes(list)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestEmbeddedConfigValidate(t *testing.T) {
	routes := mustRoutes(t, "nats://127.0.0.1:6222")
	ok := natsembed.EmbeddedConfig{StoreDir: "d", ServerName: "n1",
		Cluster: natsembed.ClusterConfig{Name: "c", Port: 6222, Routes: routes}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid cluster config refused: %v", err)
	}
	if err := (natsembed.EmbeddedConfig{StoreDir: "d", MonitorPort: -1}).Validate(); err != nil {
		t.Fatalf("valid single-server config refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*natsembed.EmbeddedConfig)
		want string
	}{
		{"no store", func(c *natsembed.EmbeddedConfig) { c.StoreDir = "" }, "StoreDir is empty"},
		{"client port", func(c *natsembed.EmbeddedConfig) { c.Port = 70000 }, "Port (70000)"},
		{"monitor port", func(c *natsembed.EmbeddedConfig) { c.MonitorPort = -2 }, "MonitorPort (-2)"},
		{"server name with a space", func(c *natsembed.EmbeddedConfig) { c.ServerName = "a b" }, "white space"},
		{"cluster without a server name", func(c *natsembed.EmbeddedConfig) { c.ServerName = "" }, "needs a ServerName"},
		{"cluster without a name", func(c *natsembed.EmbeddedConfig) { c.Cluster.Name = "" }, "Cluster.Name is empty"},
		{"cluster name with a space", func(c *natsembed.EmbeddedConfig) { c.Cluster.Name = "x y" }, "white space"},
		{"cluster port", func(c *natsembed.EmbeddedConfig) { c.Cluster.Port = 65536 }, "Cluster.Port (65536)"},
		{"cluster without routes", func(c *natsembed.EmbeddedConfig) { c.Cluster.Routes = nil }, "no Routes"},
		{"a bad route", func(c *natsembed.EmbeddedConfig) {
			c.Cluster.Routes = []*url.URL{{Scheme: "http", Host: "h:1"}}
		}, "want nats://host:port"},
	} {
		cfg := ok
		tc.edit(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, natsembed.ErrEmbeddedConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrEmbeddedConfig with %q", tc.name, err, tc.want)
		}
		if _, err := natsembed.StartEmbedded(cfg); !errors.Is(err, natsembed.ErrEmbeddedConfig) {
			t.Errorf("%s: StartEmbedded: %v, want ErrEmbeddedConfig", tc.name, err)
		}
	}
}

func TestParseHostPort(t *testing.T) {
	for in, want := range map[string]string{"127.0.0.1:4222": "127.0.0.1 4222", ":0": " 0",
		"nats-0.nats.ns.svc:6222": "nats-0.nats.ns.svc 6222", "[::1]:8222": "::1 8222"} {
		h, p, err := natsembed.ParseHostPort(in)
		if got := fmt.Sprint(h, " ", p); err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "4222", "host:", "host:x", "host:65536", "host:-1", "a:b:c"} {
		if _, _, err := natsembed.ParseHostPort(in); !errors.Is(err, natsembed.ErrEmbeddedConfig) ||
			!strings.Contains(err.Error(), "is not host:port") {
			t.Errorf("%q: %v, want ErrEmbeddedConfig", in, err)
		}
	}
}

func TestParseRoutes(t *testing.T) {
	r, err := natsembed.ParseRoutes("nats://n-0.h.ns.svc.cluster.local:6222, nats-route://10.0.0.2:6222,nats://u:p@[::1]:7")
	if err != nil || len(r) != 3 || r[0].Host != "n-0.h.ns.svc.cluster.local:6222" || r[1].Scheme != "nats-route" ||
		r[2].Hostname() != "::1" {
		t.Fatalf("%v, %v", r, err)
	}
	for in, want := range map[string]string{
		"":                             "empty entry",
		"nats://a:1,":                  "empty entry",
		"a:6222":                       "want nats://host:port",
		"http://a:6222":                "want nats://host:port",
		"nats://:6222":                 "no host",
		"nats://a":                     "needs a port",
		"nats://a:0":                   "needs a port",
		"nats://a:99999":               "needs a port",
		"nats://a:6222/x":              "nothing after it",
		"nats://a:6222?x=1":            "nothing after it",
		"nats://a:6222,nats://b:6222 ": "",
		"nats://%zz:1":                 "route",
	} {
		_, err := natsembed.ParseRoutes(in)
		if want == "" {
			if err != nil {
				t.Errorf("%q: %v", in, err)
			}
			continue
		}
		if !errors.Is(err, natsembed.ErrEmbeddedConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want ErrEmbeddedConfig with %q", in, err, want)
		}
	}
	// Credentials are redacted from the messages.
	if _, err := natsembed.ParseRoutes("nats://u:secret@a"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("credentials in %v", err)
	}
}

// A listener that cannot bind fails StartEmbedded at once with the server's reason,
// not after ReadyTimeout.
func TestStartEmbeddedPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	for name, cfg := range map[string]natsembed.EmbeddedConfig{
		"client":  {Port: busy},
		"monitor": {MonitorPort: busy},
		"cluster": {ServerName: "n1", Cluster: natsembed.ClusterConfig{Name: "c", Port: busy,
			Routes: mustRoutes(t, fmt.Sprintf("nats://127.0.0.1:%d", busy))}},
	} {
		cfg.StoreDir, cfg.ReadyTimeout = t.TempDir(), time.Minute
		start := time.Now()
		s, err := natsembed.StartEmbedded(cfg)
		if err == nil {
			natsembed.Shutdown(s)
			t.Errorf("%s port in use: started", name)
			continue
		}
		if !strings.Contains(err.Error(), "address already in use") || time.Since(start) > 20*time.Second {
			t.Errorf("%s port in use: %v after %s, want the bind error at once", name, err, time.Since(start))
		}
	}
}

// Three embedded servers given the same route list (each one's own route included)
// form one cluster, JetStream runs clustered, and the three streams are created with
// three replicas, one on each server. EnsureStreams, called when only one server is
// up, waits for the others. Monitoring answers the probes the chart uses.
func TestEmbeddedClusterR3Streams(t *testing.T) {
	ports := testutil.FreePorts(t, 3)
	var list []string
	for _, p := range ports {
		list = append(list, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	routes := mustRoutes(t, strings.Join(list, ","))
	var servers []*server.Server
	t.Cleanup(func() {
		for _, s := range servers {
			natsembed.Shutdown(s)
		}
	})
	startServer := func(i int) {
		t.Helper()
		s, err := natsembed.StartEmbedded(natsembed.EmbeddedConfig{StoreDir: t.TempDir(), ServerName: fmt.Sprintf("n%d", i),
			MonitorPort: -1, Cluster: natsembed.ClusterConfig{Name: "test", Port: ports[i], Routes: routes}})
		if err != nil {
			t.Fatal(err)
		}
		if natsembed.ClusterPort(s) != ports[i] {
			t.Fatalf("n%d: cluster port %d, want %d", i, natsembed.ClusterPort(s), ports[i])
		}
		if code := httpStatus(t, natsembed.MonitorURL(s)+"/healthz?js-enabled-only=true"); code != http.StatusOK {
			t.Fatalf("%s: /healthz?js-enabled-only=true: %d", s.Name(), code)
		}
		servers = append(servers, s)
	}
	startServer(0)
	nc, err := nats.Connect(servers[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ensured := make(chan error, 1)
	go func() { ensured <- natsutil.EnsureStreams(ctx, js, natsutil.StreamConfig{Replicas: 3}) }()
	select {
	case err := <-ensured:
		t.Fatalf("R3 streams ensured on one server of three: %v", err)
	case <-time.After(500 * time.Millisecond): // still waiting, as it should
	}
	startServer(1)
	startServer(2)
	if err := <-ensured; err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"SM_REQ", "SM_CMD", "SM_EVENTS"} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info := st.CachedInfo()
		if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Name != "test" || info.Cluster.Leader == "" ||
			len(info.Cluster.Replicas) != 2 {
			t.Fatalf("%s: replicas %d, cluster %+v", name, info.Config.Replicas, info.Cluster)
		}
	}
	// Every server is current with the cluster: the full health check passes.
	for _, s := range servers {
		testutil.WaitFor(t, 20*time.Second, s.Name()+" /healthz", func() error {
			if code := httpStatus(t, natsembed.MonitorURL(s)+"/healthz"); code != http.StatusOK {
				return fmt.Errorf("status %d", code)
			}
			return nil
		})
	}
}

// Three replicas on a server on its own is refused at once, not retried until the
// context ends.
func TestEnsureStreamsR3OnOneServerFails(t *testing.T) {
	_, js := natstest.Connect(t, natstest.Start(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := natsutil.EnsureStreams(ctx, js, natsutil.StreamConfig{Replicas: 3})
	if err == nil || !strings.Contains(err.Error(), "SM_REQ") || time.Since(start) > 10*time.Second {
		t.Fatalf("R3 on one server: %v after %s", err, time.Since(start))
	}
	t.Logf("R3 on one server: %v", err)
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// peers are the names of the servers s has routes to.
func peers(t *testing.T, s *server.Server) []string {
	t.Helper()
	rz, err := s.Routez(&server.RoutezOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rz.Routes {
		if !slices.Contains(out, r.RemoteName) {
			out = append(out, r.RemoteName)
		}
	}
	slices.Sort(out)
	return out
}

// Three servers with route credentials form a cluster and run R3 JetStream; a fourth
// server that dials them with the wrong password, or with none, is refused: it gets no
// route, the cluster keeps its three members, and what is published on it (a forged
// shard command) reaches no subscriber of the cluster. The password has characters a
// URL must escape, as the seed routes carry it in their user info.
func TestEmbeddedClusterRouteAuth(t *testing.T) {
	const user, password = "route", "p@ss:w/rd%3F?#x"
	ports := testutil.FreePorts(t, 3)
	var list []string
	for _, p := range ports {
		list = append(list, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	routes := mustRoutes(t, strings.Join(list, ","))
	var servers []*server.Server
	t.Cleanup(func() {
		for _, s := range servers {
			natsembed.Shutdown(s)
		}
	})
	start := func(name string, port int, cluster natsembed.ClusterConfig, log *slog.Logger) *server.Server {
		t.Helper()
		cluster.Name, cluster.Port, cluster.Routes = "test", port, routes
		s, err := natsembed.StartEmbedded(natsembed.EmbeddedConfig{StoreDir: t.TempDir(), ServerName: name,
			Cluster: cluster, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, s)
		return s
	}
	// The members' logs, where a refused route shows as an authentication error.
	var logs testutil.Buffer
	memberLog := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError}))
	auth := natsembed.ClusterConfig{Username: user, Password: password}
	var members []*server.Server
	for i, p := range ports {
		members = append(members, start(fmt.Sprintf("n%d", i), p, auth, memberLog))
	}
	for i, s := range members {
		want := slices.DeleteFunc([]string{"n0", "n1", "n2"}, func(n string) bool { return n == fmt.Sprintf("n%d", i) })
		testutil.WaitFor(t, 20*time.Second, s.Name()+" routed to the two others", func() error {
			if got := peers(t, s); !slices.Equal(got, want) {
				return fmt.Errorf("routes to %v, want %v", got, want)
			}
			return nil
		})
	}

	// JetStream runs clustered over the authenticated routes: an R3 stream takes a
	// message, and both followers are current.
	nc, err := nats.Connect(members[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var st jetstream.Stream
	testutil.WaitFor(t, 20*time.Second, "an R3 stream", func() (err error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		st, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "AUTH", Subjects: []string{"auth.>"}, Replicas: 3})
		return err
	})
	if _, err := js.Publish(ctx, "auth.x", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "two current followers", func() error {
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != 1 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			return fmt.Errorf("msgs %d, cluster %+v", info.State.Msgs, info.Cluster)
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current {
				return fmt.Errorf("replica %s not current", r.Name)
			}
		}
		return nil
	})

	// A subscriber on the command subject of shard s1, on n0.
	const subject = "sm.v1.cmd.s1"
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	control, err := nats.Connect(members[2].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer control.Close()

	const refusal = "authentication error" // how a member logs a refused route
	for _, tc := range []struct {
		name    string
		cluster natsembed.ClusterConfig
	}{
		{"intruder-wrong-password", natsembed.ClusterConfig{Username: user, Password: "guess"}},
		{"intruder-no-credentials", natsembed.ClusterConfig{}},
	} {
		before := strings.Count(logs.String(), refusal)
		intruder := start(tc.name, -1, tc.cluster, nil)
		// It dials every member; wait until one has refused it, or it got in.
		testutil.WaitFor(t, 20*time.Second, tc.name+" refused, or in the cluster", func() error {
			for _, s := range members {
				if slices.Contains(peers(t, s), tc.name) {
					return nil
				}
			}
			if strings.Count(logs.String(), refusal) > before {
				return nil
			}
			return fmt.Errorf("neither yet; the members logged:\n%s", logs.String())
		})
		for _, s := range members {
			if got := peers(t, s); len(got) != 2 || slices.Contains(got, tc.name) {
				t.Errorf("%s: %s has routes to %v, want the two other members only", tc.name, s.Name(), got)
			}
		}
		if got := peers(t, intruder); len(got) != 0 {
			t.Errorf("%s has routes to %v, want none", tc.name, got)
		}
		// A command forged on the intruder does not reach the subscriber; the same
		// subject published on a member does (the subscription's interest has
		// reached the other members by then).
		in, err := nats.Connect(intruder.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		forged, delivered := 0, 0
		for deadline := time.Now().Add(20 * time.Second); delivered < 5 && time.Now().Before(deadline); {
			if err := in.Publish(subject, []byte("forged COMMIT")); err != nil {
				t.Fatal(err)
			}
			if err := control.Publish(subject, []byte("control")); err != nil {
				t.Fatal(err)
			}
			if err := errors.Join(in.Flush(), control.Flush()); err != nil {
				t.Fatal(err)
			}
			for {
				m, err := sub.NextMsg(100 * time.Millisecond)
				if err != nil {
					break
				}
				if string(m.Data) == "control" {
					delivered++
				} else {
					forged++
				}
			}
		}
		in.Close()
		if delivered < 5 || forged > 0 {
			t.Errorf("%s: %d messages published on a member delivered (want 5), %d published on the intruder (want 0)",
				tc.name, delivered, forged)
		}
		t.Logf("%s: %d route refusals (%q) logged by the members; %d forged messages delivered, %d from a member",
			tc.name, strings.Count(logs.String(), refusal)-before, refusal, forged, delivered)
		natsembed.Shutdown(intruder)
	}
}

// Route credentials are checked with the rest of the cluster's configuration.
func TestEmbeddedConfigRouteCredentials(t *testing.T) {
	ok := natsembed.EmbeddedConfig{StoreDir: "d", ServerName: "n1", Cluster: natsembed.ClusterConfig{Name: "c",
		Routes: mustRoutes(t, "nats://127.0.0.1:6222"), Username: "u", Password: "p"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*natsembed.ClusterConfig)
		want string
	}{
		{"user without password", func(c *natsembed.ClusterConfig) { c.Password = "" }, "go together"},
		{"password without user", func(c *natsembed.ClusterConfig) { c.Username = "" }, "go together"},
		{"bcrypt-like password", func(c *natsembed.ClusterConfig) { c.Password = "$2a$11$x" }, "bcrypt"},
		{"credentials in a route too", func(c *natsembed.ClusterConfig) {
			c.Routes = mustRoutes(t, "nats://a:secret@127.0.0.1:6222")
		}, "credentials of its own"},
		{"credentials without routes", func(c *natsembed.ClusterConfig) { *c = natsembed.ClusterConfig{Username: "u", Password: "p"} }, "no Routes"},
	} {
		cfg := ok
		tc.edit(&cfg.Cluster)
		err := cfg.Validate()
		if !errors.Is(err, natsembed.ErrEmbeddedConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrEmbeddedConfig with %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the password is in %v", tc.name, err)
		}
	}
}
