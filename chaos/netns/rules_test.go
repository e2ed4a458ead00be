package netns

import (
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	good := []Config{{Prefix: "a"}, {Prefix: "3f2a1b"}, {Prefix: "x", Subnet: netip.MustParsePrefix("10.1.2.0/24")}}
	for _, c := range good {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	bad := map[string]Config{
		"Prefix":   {Prefix: ""},
		"Prefix ":  {Prefix: "toolong7"},
		"Prefix  ": {Prefix: "A-b"},
		"Subnet":   {Prefix: "a", Subnet: netip.MustParsePrefix("fd00::/64")},
		"Subnet ":  {Prefix: "a", Subnet: netip.MustParsePrefix("10.1.2.3/24")},
		"Subnet  ": {Prefix: "a", Subnet: netip.MustParsePrefix("10.1.2.0/30")},
	}
	for field, c := range bad {
		err := c.Validate()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), strings.TrimSpace(field)) {
			t.Errorf("%+v: %v, want ErrConfig naming %s", c, err, field)
		}
	}
}

func TestRulesScript(t *testing.T) {
	a, b, c := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.0.4")
	got := rulesScript("smcx", []fault{
		{id: "p1", kind: kindPartition, a: []netip.Addr{a}, b: []netip.Addr{b, c}},
		{id: "l1", kind: kindLoss, hosts: []netip.Addr{c}, percent: 30},
		{id: "l2", kind: kindLoss, hosts: []netip.Addr{a}, percent: 100},
		{id: "l0", kind: kindLoss, hosts: []netip.Addr{a}, percent: 0},
		{id: "p0", kind: kindPartition, a: []netip.Addr{a}},
	})
	want := `flush chain bridge smcx forward
add rule bridge smcx forward meta protocol ip6 drop comment "smc: hosts speak IPv4 only"
add rule bridge smcx forward ip saddr { 10.0.0.2 } ip daddr { 10.0.0.3, 10.0.0.4 } drop comment "p1"
add rule bridge smcx forward ip saddr { 10.0.0.3, 10.0.0.4 } ip daddr { 10.0.0.2 } drop comment "p1"
add rule bridge smcx forward ip saddr { 10.0.0.4 } numgen random mod 100 < 30 drop comment "l1"
add rule bridge smcx forward ip daddr { 10.0.0.4 } numgen random mod 100 < 30 drop comment "l1"
add rule bridge smcx forward ip saddr { 10.0.0.2 } drop comment "l2"
add rule bridge smcx forward ip daddr { 10.0.0.2 } drop comment "l2"
`
	if got != want {
		t.Errorf("rulesScript:\n%s\nwant:\n%s", got, want)
	}
}

// fakeNet is a Net with hosts but no kernel objects: enough for the checks that
// run before any nft command.
func fakeNet(names ...string) *Net {
	n := &Net{prefix: "x", log: slog.New(slog.DiscardHandler), hosts: map[string]*Host{}}
	ip := netip.MustParseAddr("10.0.0.1")
	for _, name := range names {
		ip = ip.Next()
		n.hosts[name] = &Host{Name: name, IP: ip}
	}
	return n
}

func TestFaultValidation(t *testing.T) {
	n := fakeNet("a", "b")
	cases := map[string]struct {
		err  error
		call func() error
	}{
		"unknown host":     {ErrUnknownHost, func() error { return n.Partition("p", []string{"a"}, []string{"zz"}) }},
		"both sides":       {ErrConfig, func() error { return n.Partition("p", []string{"a", "b"}, []string{"b"}) }},
		"empty id":         {ErrConfig, func() error { return n.Partition("", []string{"a"}, []string{"b"}) }},
		"quote in id":      {ErrConfig, func() error { return n.Loss(`x"; flush ruleset; "`, []string{"a"}, 5) }},
		"percent high":     {ErrConfig, func() error { return n.Loss("l", []string{"a"}, 101) }},
		"percent negative": {ErrConfig, func() error { return n.Loss("l", []string{"a"}, -1) }},
		"loss unknown":     {ErrUnknownHost, func() error { return n.Loss("l", []string{"q"}, 5) }},
		"heal unknown":     {ErrUnknownFault, func() error { return n.Heal("nope") }},
	}
	for name, c := range cases {
		if err := c.call(); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", name, err, c.err)
		}
	}
	if _, err := n.AddHost(t.Context(), "Bad Name"); !errors.Is(err, ErrConfig) {
		t.Errorf("AddHost with a bad name: %v, want ErrConfig", err)
	}
}

func TestPickSubnet(t *testing.T) {
	first, err := pickSubnet("abc", nil)
	if err != nil || !DefaultSubnetBase.Contains(first.Addr()) || first.Bits() != 24 {
		t.Fatalf("pickSubnet = %v, %v", first, err)
	}
	// With the first choice in use (as an address inside it), the next one is taken.
	used := []netip.Prefix{netip.PrefixFrom(first.Addr().Next(), 32)}
	second, err := pickSubnet("abc", used)
	if err != nil || second == first || second.Overlaps(first) {
		t.Errorf("with %v used, pickSubnet = %v, %v", used, second, err)
	}
	if _, err := pickSubnet("abc", []netip.Prefix{DefaultSubnetBase}); !errors.Is(err, ErrNoSubnet) {
		t.Errorf("all used: %v, want ErrNoSubnet", err)
	}
}

func TestLastAddr(t *testing.T) {
	for p, want := range map[string]string{"10.213.4.0/24": "10.213.4.255", "10.0.0.0/16": "10.0.255.255",
		"192.168.1.8/29": "192.168.1.15"} {
		if got := lastAddr(netip.MustParsePrefix(p)).String(); got != want {
			t.Errorf("lastAddr(%s) = %s, want %s", p, got, want)
		}
	}
}

func TestParseLinkNames(t *testing.T) {
	out := "1: lo: <LOOPBACK,UP> mtu 65536\n7: smcab-v2@if2: <BROADCAST> mtu 1500 master smcab-br\n8: smcab-br: <UP>\n"
	got := strings.Join(parseLinkNames(out), ",")
	if got != "lo,smcab-v2,smcab-br" {
		t.Errorf("parseLinkNames = %s", got)
	}
	for name, want := range map[string]string{"smcab-v2": "ab", "smc3f2a1b-x": "3f2a1b", "smcabcdefg-x": "", "xsmcab-br": ""} {
		m := ownerRE.FindStringSubmatch(name)
		got := ""
		if m != nil {
			got = m[1]
		}
		if got != want {
			t.Errorf("owner of %s = %q, want %q", name, got, want)
		}
	}
}
