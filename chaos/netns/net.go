package netns

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Tag starts the name of every object this package creates, followed by the run's
// prefix, so that Sweep can tell them from everything else on the machine.
const Tag = "smc"

// MaxPrefixLen is the longest run prefix: Linux interface names have at most 15
// characters, and the longest link name is Tag + prefix + "-v" + a 3-digit index.
const MaxPrefixLen = 6

// DefaultSubnetBase is the /16 from which New picks a free /24 when Config.Subnet is
// zero. 10.213/16 is unlikely to be used by anything else on a CI machine.
var DefaultSubnetBase = netip.MustParsePrefix("10.213.0.0/16")

var (
	prefixRE = regexp.MustCompile(`^[a-z0-9]{1,6}$`)
	hostRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
)

// Config configures a Net.
type Config struct {
	// Prefix is a short unique run tag (1 to 6 characters of [a-z0-9]). Every
	// object is named Tag+Prefix+..., so Sweep(ctx, Prefix) finds this run's leftovers.
	Prefix string
	// Subnet is the IPv4 subnet of the bridge and hosts: the bridge gets the first
	// address, hosts the following ones. Zero picks a /24 of DefaultSubnetBase that no
	// address or route of the root namespace overlaps, starting at an offset derived
	// from Prefix so that concurrent runs rarely race for the same one.
	Subnet netip.Prefix
	// Logger receives a debug line per command run; nil discards.
	Logger *slog.Logger
}

// Validate checks the configuration; its errors wrap ErrConfig and name the field.
func (c Config) Validate() error {
	if !prefixRE.MatchString(c.Prefix) {
		return fmt.Errorf("%w: Prefix %q must be 1 to %d characters of [a-z0-9]", ErrConfig, c.Prefix, MaxPrefixLen)
	}
	if c.Subnet.IsValid() {
		if !c.Subnet.Addr().Is4() {
			return fmt.Errorf("%w: Subnet %s must be IPv4", ErrConfig, c.Subnet)
		}
		if c.Subnet.Bits() < 16 || c.Subnet.Bits() > 29 {
			return fmt.Errorf("%w: Subnet %s must be between a /16 and a /29", ErrConfig, c.Subnet)
		}
		if c.Subnet.Masked() != c.Subnet {
			return fmt.Errorf("%w: Subnet %s has host bits set (want %s)", ErrConfig, c.Subnet, c.Subnet.Masked())
		}
	}
	return nil
}

// Net is one run's network: a bridge in the root namespace, one namespace per host,
// and one nftables table of faults. Its methods are safe for concurrent use.
type Net struct {
	prefix string
	subnet netip.Prefix
	bridge netip.Addr
	log    *slog.Logger

	mu     sync.Mutex
	hosts  map[string]*Host
	order  []*Host // creation order, for teardown
	next   int     // index of the next host
	faults []fault // active faults, in the order they were added
	closed bool
}

// Host is one network namespace attached to the run's bridge.
type Host struct {
	// Name is the name given to AddHost.
	Name string
	// IP is the host's address on the bridge.
	IP netip.Addr
	// NS is the namespace's name, as `ip netns` knows it.
	NS string

	link string // the root-side veth, a port of the bridge
}

// names of this run's objects.
func (n *Net) bridgeName() string { return Tag + n.prefix + "-br" }
func (n *Net) tableName() string  { return Tag + n.prefix }

// New creates the run's bridge (holding the subnet's first address) and its empty
// nftables table. It returns ErrNotRoot, ErrMissingTool or ErrConfig before changing
// anything. If objects of the same prefix are left over from an interrupted run, New
// fails; call Sweep first.
func New(ctx context.Context, cfg Config) (*Net, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkEnv(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	subnet := cfg.Subnet
	used, err := usedPrefixes(ctx, log)
	if err != nil {
		return nil, err
	}
	if subnet.IsValid() {
		if p, busy := overlaps(subnet, used); busy {
			return nil, fmt.Errorf("%w: Subnet %s overlaps %s in the root namespace", ErrNoSubnet, subnet, p)
		}
	} else if subnet, err = pickSubnet(cfg.Prefix, used); err != nil {
		return nil, err
	}
	n := &Net{prefix: cfg.Prefix, subnet: subnet, bridge: subnet.Addr().Next(), log: log,
		hosts: map[string]*Host{}, next: 1}
	br := n.bridgeName()
	if _, err := run(ctx, log, "", "ip", "link", "add", br, "type", "bridge"); err != nil {
		// Most likely the leftover of an interrupted run: it is not ours to delete.
		return nil, fmt.Errorf("%w (left over from an interrupted run? Sweep(ctx, %q) removes it)", err, cfg.Prefix)
	}
	steps := [][]string{
		{"addr", "add", netip.PrefixFrom(n.bridge, subnet.Bits()).String(), "dev", br},
		{"link", "set", br, "up"},
	}
	for _, s := range steps {
		if _, err := run(ctx, log, "", "ip", s...); err != nil {
			n.teardown(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	if _, err := run(ctx, log, n.tableScript()+rulesScript(n.tableName(), nil), "nft", "-f", "-"); err != nil {
		n.teardown(context.WithoutCancel(ctx))
		return nil, err
	}
	log.Info("netns: network up", "prefix", n.prefix, "bridge", br, "subnet", subnet)
	return n, nil
}

// usedPrefixes lists the IPv4 prefixes of the root namespace's addresses and routes.
func usedPrefixes(ctx context.Context, log *slog.Logger) ([]netip.Prefix, error) {
	var out []netip.Prefix
	addrs, err := run(ctx, log, "", "ip", "-4", "-o", "addr", "show")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(addrs, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil {
					out = append(out, p.Masked())
				}
			}
		}
	}
	routes, err := run(ctx, log, "", "ip", "-4", "route", "show", "table", "all")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(routes, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "default" {
			continue
		}
		dst := f[0]
		if len(f) > 1 && (dst == "local" || dst == "broadcast" || dst == "unicast") {
			dst = f[1]
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		if p, err := netip.ParsePrefix(dst); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

// overlaps returns the first of used that overlaps p.
func overlaps(p netip.Prefix, used []netip.Prefix) (netip.Prefix, bool) {
	for _, u := range used {
		if u.Bits() > 0 && u.Overlaps(p) {
			return u, true
		}
	}
	return netip.Prefix{}, false
}

// pickSubnet returns the first /24 of DefaultSubnetBase, scanning from an offset
// derived from prefix, that overlaps none of used.
func pickSubnet(prefix string, used []netip.Prefix) (netip.Prefix, error) {
	h := fnv.New32a()
	h.Write([]byte(prefix))
	start := int(h.Sum32() % 256)
	base := DefaultSubnetBase.Addr().As4()
	for i := range 256 {
		b := base
		b[2] = byte((start + i) % 256)
		p := netip.PrefixFrom(netip.AddrFrom4(b), 24)
		if _, busy := overlaps(p, used); !busy {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%w: every /24 of %s is in use", ErrNoSubnet, DefaultSubnetBase)
}

// AddHost creates the namespace Tag+prefix+"-"+name, a veth pair from it to the
// bridge ("eth0" inside, with the next address of the subnet), brings up eth0 and
// lo, and sets the default route via BridgeIP. name is 1 to 32 characters of
// [a-z0-9_-], starting with a letter or digit.
func (n *Net) AddHost(ctx context.Context, name string) (*Host, error) {
	if !hostRE.MatchString(name) {
		return nil, fmt.Errorf("%w: host name %q must be 1 to 32 characters of [a-z0-9_-]", ErrConfig, name)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrClosed
	}
	if n.hosts[name] != nil {
		return nil, fmt.Errorf("%w: %s", ErrHostExists, name)
	}
	if n.next > 999 {
		return nil, fmt.Errorf("%w: at most 999 hosts", ErrSubnetFull)
	}
	ip := n.bridge
	for range n.next {
		ip = ip.Next()
	}
	if last := lastAddr(n.subnet); !n.subnet.Contains(ip) || ip.Compare(last) >= 0 {
		return nil, fmt.Errorf("%w: %s has no address for host %d", ErrSubnetFull, n.subnet, n.next)
	}
	h := &Host{Name: name, IP: ip, NS: Tag + n.prefix + "-" + name, link: Tag + n.prefix + "-v" + strconv.Itoa(n.next)}
	n.next++
	cidr := netip.PrefixFrom(ip, n.subnet.Bits()).String()
	steps := [][]string{
		{"netns", "add", h.NS},
		{"link", "add", h.link, "type", "veth", "peer", "name", "eth0", "netns", h.NS},
		{"link", "set", h.link, "master", n.bridgeName(), "up"},
		{"-n", h.NS, "addr", "add", cidr, "dev", "eth0"},
		{"-n", h.NS, "link", "set", "eth0", "up"},
		{"-n", h.NS, "link", "set", "lo", "up"},
		{"-n", h.NS, "route", "add", "default", "via", n.bridge.String()},
	}
	for _, s := range steps {
		if _, err := run(ctx, n.log, "", "ip", s...); err != nil {
			_ = n.removeHost(context.WithoutCancel(ctx), h)
			return nil, err
		}
	}
	n.hosts[name] = h
	n.order = append(n.order, h)
	n.log.Debug("netns: host up", "host", name, "ns", h.NS, "ip", ip)
	return h, nil
}

// lastAddr is the subnet's broadcast address.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Host returns the host AddHost created under name, or nil.
func (n *Net) Host(name string) *Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hosts[name]
}

// BridgeIP is the root namespace's address on the bridge: the runner listens and
// dials here, and no fault ever touches traffic to or from it.
func (n *Net) BridgeIP() netip.Addr { return n.bridge }

// Subnet is the run's subnet.
func (n *Net) Subnet() netip.Prefix { return n.subnet }

// Prefix is the run's prefix.
func (n *Net) Prefix() string { return n.prefix }

// Close removes every namespace, veth, the bridge and the nft table of this run,
// SIGKILLing any process still inside a namespace (a process would keep its
// namespace alive). Stop the processes gracefully before, if that matters. Close is
// idempotent; later calls return nil.
func (n *Net) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	err := n.teardown(context.Background())
	n.log.Info("netns: network down", "prefix", n.prefix, "err", err)
	return err
}

// teardown deletes everything of this Net; objects already gone are not errors.
// Callers hold n.mu or own n exclusively.
func (n *Net) teardown(ctx context.Context) error {
	var errs []error
	for _, h := range n.order {
		errs = append(errs, n.removeHost(ctx, h))
	}
	n.hosts, n.order, n.faults = map[string]*Host{}, nil, nil
	errs = append(errs, ignoreNotFound(run(ctx, n.log, "", "ip", "link", "del", n.bridgeName())))
	errs = append(errs, ignoreNotFound(run(ctx, n.log, "", "nft", "delete", "table", "bridge", n.tableName())))
	return errors.Join(errs...)
}

// removeHost kills the processes in h's namespace and deletes its veth and namespace.
func (n *Net) removeHost(ctx context.Context, h *Host) error {
	return removeNamespace(ctx, n.log, h.NS, []string{h.link})
}

// removeNamespace SIGKILLs every process in ns, deletes links (deleting a veth's
// root end destroys the pair at once; a namespace's deletion would destroy it only
// asynchronously) and then the namespace.
func removeNamespace(ctx context.Context, log *slog.Logger, ns string, links []string) error {
	var errs []error
	if out, err := run(ctx, log, "", "ip", "netns", "pids", ns); err == nil {
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for _, l := range links {
		errs = append(errs, ignoreNotFound(run(ctx, log, "", "ip", "link", "del", l)))
	}
	errs = append(errs, ignoreNotFound(run(ctx, log, "", "ip", "netns", "del", ns)))
	return errors.Join(errs...)
}

func ignoreNotFound(_ string, err error) error {
	if notFound(err) {
		return nil
	}
	return err
}
