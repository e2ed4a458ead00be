package natsembed

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// ErrEmbeddedConfig is wrapped by every error EmbeddedConfig.Validate, ParseHostPort
// and ParseRoutes return: the configuration is wrong, and starting again will not help.
var ErrEmbeddedConfig = errors.New("natsutil: invalid embedded server config")

// DefaultClusterName is the cluster name `coordinator nats` uses when none is given.
const DefaultClusterName = "shardmatch"

// ClusterConfig makes an embedded server one of a NATS cluster, with JetStream
// clustered over it (streams of up to as many replicas as there are servers). The
// zero value (no Routes) is a server on its own.
type ClusterConfig struct {
	// Name every server of the cluster shares (required with Routes). A server whose
	// route reaches a server of another name is refused.
	Name string
	// Host the route listener binds (empty: the client Host).
	Host string
	// Port of the route listener; 0 or -1 picks a free one (read it back with
	// ClusterPort). Note that nats-server itself reads 0 as "no cluster"; this config
	// does not: Routes decides.
	Port int
	// Routes are the seed routes (nats://host:port of other servers' route listeners).
	// They may include this server's own: a route to itself is detected and dropped,
	// so every server of a cluster can be given the same list. A host is dialled by
	// name and retried forever, so the list may name servers not started yet.
	Routes []*url.URL
	// Username and Password authenticate the routes: the server accepts a route only
	// if it presents them, and presents them on its own routes (to the seed Routes and
	// to the servers it learns of from its peers). Every server of the cluster needs
	// the same pair. Empty: the routes are not authenticated, and whoever reaches the
	// route port joins the cluster, past any client authentication.
	Username, Password string
}

// authenticated reports whether the routes need credentials.
func (c ClusterConfig) authenticated() bool { return c.Username != "" }

// clustered reports whether the config asks for a cluster.
func (c ClusterConfig) clustered() bool { return len(c.Routes) > 0 }

// Validate reports a configuration StartEmbedded would refuse or the server would
// fail on, with the field named; every error wraps ErrEmbeddedConfig.
func (cfg EmbeddedConfig) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrEmbeddedConfig, fmt.Sprintf(format, a...))
	}
	c := cfg.Cluster
	switch {
	case cfg.StoreDir == "":
		return bad("StoreDir is empty")
	case cfg.Port < -1 || cfg.Port > 65535:
		return bad("Port (%d) must be in [-1, 65535]", cfg.Port)
	case cfg.MonitorPort < -1 || cfg.MonitorPort > 65535:
		return bad("MonitorPort (%d) must be in [-1, 65535]", cfg.MonitorPort)
	case strings.ContainsAny(cfg.ServerName, " \t\r\n"):
		return bad("ServerName %q contains white space", cfg.ServerName)
	case !c.clustered() && (c.Name != "" || c.Host != "" || c.Port != 0 || c.Username != "" || c.Password != ""):
		return bad("Cluster has a name, host, port or credentials but no Routes")
	case !c.clustered():
		return nil
	case cfg.ServerName == "":
		return bad("a clustered server needs a ServerName, unique in the cluster")
	case c.Name == "":
		return bad("Cluster.Name is empty")
	case strings.ContainsAny(c.Name, " \t\r\n"):
		return bad("Cluster.Name %q contains white space", c.Name)
	case c.Port < -1 || c.Port > 65535:
		return bad("Cluster.Port (%d) must be in [-1, 65535]", c.Port)
	case (c.Username == "") != (c.Password == ""):
		return bad("Cluster.Username and Cluster.Password go together (route credentials)")
	case strings.HasPrefix(c.Password, "$2"):
		// nats-server takes such a password for a bcrypt hash: it would compare the
		// peers' plain password with it and refuse every route.
		return bad("Cluster.Password starts with $2, which nats-server reads as a bcrypt hash")
	}
	for _, u := range c.Routes {
		if err := checkRoute(u); err != nil {
			return err
		}
		if c.authenticated() && u.User != nil {
			return bad("route %q has credentials of its own: with Cluster.Username every route presents those", u.Redacted())
		}
	}
	return nil
}

// ParseHostPort splits a listen address "host:port" and checks the port is in
// [0, 65535]. The host may be empty (":4222") or a name; it is not resolved.
func ParseHostPort(addr string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err == nil {
		port, err = strconv.Atoi(p)
	}
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%w: %q is not host:port", ErrEmbeddedConfig, addr)
	}
	return host, port, nil
}

// ParseRoutes parses a comma-separated list of route URLs, nats://host:port or
// nats-route://host:port (spaces around the commas are allowed). Hosts are not
// resolved: in Kubernetes a peer's DNS name exists only once its pod does.
func ParseRoutes(list string) ([]*url.URL, error) {
	var out []*url.URL
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, fmt.Errorf("%w: route list %q has an empty entry", ErrEmbeddedConfig, list)
		}
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%w: route %q: %v", ErrEmbeddedConfig, s, err)
		}
		if err := checkRoute(u); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// checkRoute accepts nats://host:port and nats-route://host:port with a port in
// [1, 65535] and nothing else but optional credentials.
func checkRoute(u *url.URL) error {
	if u == nil {
		return fmt.Errorf("%w: a route is nil", ErrEmbeddedConfig)
	}
	if u.Scheme != "nats" && u.Scheme != "nats-route" {
		return fmt.Errorf("%w: route %q: want nats://host:port", ErrEmbeddedConfig, u.Redacted())
	}
	port, err := strconv.Atoi(u.Port())
	switch {
	case u.Hostname() == "":
		return fmt.Errorf("%w: route %q has no host", ErrEmbeddedConfig, u.Redacted())
	case err != nil || port < 1 || port > 65535:
		return fmt.Errorf("%w: route %q needs a port in [1, 65535]", ErrEmbeddedConfig, u.Redacted())
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return fmt.Errorf("%w: route %q: want nats://host:port, nothing after it", ErrEmbeddedConfig, u.Redacted())
	}
	return nil
}
