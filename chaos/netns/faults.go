package netns

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// faultKind tells a partition from a packet loss.
type faultKind int

const (
	kindPartition faultKind = iota + 1
	kindLoss
)

// fault is one active rule set, removable alone by its id.
type fault struct {
	id      string
	kind    faultKind
	a, b    []netip.Addr // partition: the two sides
	hosts   []netip.Addr // loss: the lossy hosts
	percent int          // loss: 1..100
}

// chainName is the table's only chain, on the bridge's forward hook.
const chainName = "forward"

// tableScript creates the run's table and its chain (an nft -f script).
func (n *Net) tableScript() string {
	return fmt.Sprintf("table bridge %s {\n\tchain %s {\n\t\ttype filter hook forward priority filter; policy accept;\n\t}\n}\n",
		n.tableName(), chainName)
}

// rulesScript is the nft -f script that replaces the chain's rules by the rules of
// faults, in one atomic transaction.
func rulesScript(table string, faults []fault) string {
	var b strings.Builder
	add := func(rule, comment string) {
		fmt.Fprintf(&b, "add rule bridge %s %s %s comment %q\n", table, chainName, rule, comment)
	}
	fmt.Fprintf(&b, "flush chain bridge %s %s\n", table, chainName)
	// The hosts have IPv4 addresses only; without this an IPv6 link-local address
	// would be a way around every partition.
	add("meta protocol ip6 drop", "smc: hosts speak IPv4 only")
	for _, f := range faults {
		switch f.kind {
		case kindPartition:
			if len(f.a) == 0 || len(f.b) == 0 {
				continue
			}
			add(fmt.Sprintf("ip saddr %s ip daddr %s drop", addrSet(f.a), addrSet(f.b)), f.id)
			add(fmt.Sprintf("ip saddr %s ip daddr %s drop", addrSet(f.b), addrSet(f.a)), f.id)
		case kindLoss:
			if len(f.hosts) == 0 || f.percent <= 0 {
				continue
			}
			verdict := "drop"
			if f.percent < 100 {
				verdict = fmt.Sprintf("numgen random mod 100 < %d drop", f.percent)
			}
			// Once leaving a lossy host, once entering one: each host's link is lossy.
			add(fmt.Sprintf("ip saddr %s %s", addrSet(f.hosts), verdict), f.id)
			add(fmt.Sprintf("ip daddr %s %s", addrSet(f.hosts), verdict), f.id)
		}
	}
	return b.String()
}

// addrSet renders addresses as an anonymous nft set.
func addrSet(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return "{ " + strings.Join(s, ", ") + " }"
}

// validID accepts ids that are safe in an nft comment.
func validID(id string) error {
	if id == "" || len(id) > 100 || strings.ContainsAny(id, "\"\\\n\r") {
		return fmt.Errorf("%w: fault id %q must be 1 to 100 characters without quotes, backslashes or newlines", ErrConfig, id)
	}
	return nil
}

// addrs resolves host names to their addresses. Callers hold n.mu.
func (n *Net) addrs(names []string) ([]netip.Addr, error) {
	out := make([]netip.Addr, 0, len(names))
	for _, name := range names {
		h := n.hosts[name]
		if h == nil {
			return nil, fmt.Errorf("%w: %q", ErrUnknownHost, name)
		}
		if !slices.Contains(out, h.IP) {
			out = append(out, h.IP)
		}
	}
	return out, nil
}

// Partition drops all IP traffic between every host in a and every host in b, in
// both directions, until Heal(id). Hosts in neither are unaffected, and traffic
// between any host and the root namespace (BridgeIP) is never dropped. A host may not
// be on both sides.
func (n *Net) Partition(id string, a, b []string) error {
	if err := validID(id); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	aa, err := n.addrs(a)
	if err != nil {
		return err
	}
	bb, err := n.addrs(b)
	if err != nil {
		return err
	}
	for _, x := range aa {
		if slices.Contains(bb, x) {
			return fmt.Errorf("%w: partition %s puts host %s on both sides", ErrConfig, id, x)
		}
	}
	return n.add(fault{id: id, kind: kindPartition, a: aa, b: bb})
}

// Loss drops percent% (0 to 100) of the packets leaving and of the packets entering
// each of hosts, at random (nftables `numgen random mod 100 < percent`), until
// Heal(id). Traffic to and from BridgeIP is exempt: it is the runner's own admin,
// observer and workload traffic, which must see what the system did rather than be
// part of the experiment. A packet between two lossy hosts crosses two lossy links.
func (n *Net) Loss(id string, hosts []string, percent int) error {
	if err := validID(id); err != nil {
		return err
	}
	if percent < 0 || percent > 100 {
		return fmt.Errorf("%w: loss %s: percent %d must be between 0 and 100", ErrConfig, id, percent)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	hh, err := n.addrs(hosts)
	if err != nil {
		return err
	}
	return n.add(fault{id: id, kind: kindLoss, hosts: hh, percent: percent})
}

// add installs one more fault. Callers hold n.mu.
func (n *Net) add(f fault) error {
	if slices.ContainsFunc(n.faults, func(g fault) bool { return g.id == f.id }) {
		return fmt.Errorf("%w: %s", ErrFaultExists, f.id)
	}
	if err := n.apply(append(slices.Clone(n.faults), f)); err != nil {
		return err
	}
	n.log.Info("netns: fault on", "id", f.id, "kind", f.kind, "a", f.a, "b", f.b, "hosts", f.hosts, "percent", f.percent)
	return nil
}

// Heal removes the rules of fault id; the other faults stay. Healing an id that is
// not active returns ErrUnknownFault.
func (n *Net) Heal(id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	i := slices.IndexFunc(n.faults, func(f fault) bool { return f.id == id })
	if i < 0 {
		return fmt.Errorf("%w: %s", ErrUnknownFault, id)
	}
	if err := n.apply(slices.Delete(slices.Clone(n.faults), i, i+1)); err != nil {
		return err
	}
	n.log.Info("netns: fault healed", "id", id)
	return nil
}

// HealAll removes every fault.
func (n *Net) HealAll() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	if err := n.apply(nil); err != nil {
		return err
	}
	n.log.Info("netns: all faults healed")
	return nil
}

// Faults lists the ids of the active faults, oldest first.
func (n *Net) Faults() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	ids := make([]string, len(n.faults))
	for i, f := range n.faults {
		ids[i] = f.id
	}
	return ids
}

// apply makes faults the installed rule set, atomically; on failure the installed
// rules and n.faults are unchanged. Callers hold n.mu.
func (n *Net) apply(faults []fault) error {
	if _, err := run(context.Background(), n.log, rulesScript(n.tableName(), faults), "nft", "-f", "-"); err != nil {
		return err
	}
	n.faults = faults
	return nil
}

// String names the kind in logs.
func (k faultKind) String() string {
	switch k {
	case kindPartition:
		return "partition"
	case kindLoss:
		return "loss"
	}
	return "unknown"
}
