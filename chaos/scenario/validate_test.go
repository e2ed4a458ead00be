package scenario

import (
	"errors"
	"strings"
	"testing"
)

// base is a valid scenario that each case breaks in one place.
const base = "name: t\nduration: 30s\n"

func TestValidateCatchesBrokenScenarios(t *testing.T) {
	cases := []struct {
		name, yaml string
		field      string // the problem must be reported at this field
		msg        string // and its message must contain this
	}{
		{"bad name", "name: Leader_Partition\nduration: 30s\n", "name", "lower-case"},
		{"no duration", "name: t\n", "duration", "> 0"},
		{"too many coordinators", base + "topology: {coordinators: 10}\n", "topology.coordinators", "1..9"},
		{"rho out of range", base + "topology: {rho: 0.7}\n", "topology.rho", "[0, 0.5)"},
		{"zero rate", base + "workload: {rate: 0}\n", "workload.rate", "> 0"},
		{"match of one", base + "workload: {match_size: 1}\n", "workload.match_size", "0 (the reference mix)"},
		{"match larger than the players", base + "topology: {shards: 2, players_per_shard: 3}\nworkload: {match_size: 7}\n",
			"workload.match_size", "cannot come from 2 shard(s)"},
		{"hot share above 1", base + "workload: {hot_share: 1.5}\n", "workload.hot_share", "[0, 1]"},
		{"renew slower than ttl", base + "workload: {match_ttl: 2s, renew_every: 2s}\n", "workload.renew_every", "shorter than match_ttl"},
		{"settle below terminate bound", base + "settle: 5s\nchecks: {terminate_within: 10s}\n", "settle", "shorter than"},
		{"unknown invariant", base + "checks: {invariants: [I1, I9]}\n", "checks.invariants[1]", "not an invariant"},
		{"expect unknown id", base + "expect: {violations: [\"I1|I8\"]}\n", "expect.violations[0]", `"I8"`},
		{"expect unchecked id", base + "checks: {invariants: [I1]}\nexpect: {violations: [I7]}\n", "expect.violations[0]", "not in checks"},
		{"unknown unsafe mode", base + "unsafe: yolo\nexpect: {violations: [I1]}\n", "unsafe", "not an unsafe mode"},
		{"unsafe without expect", base + "unsafe: deliver-before-log\n", "expect.violations", "proves nothing"},
		{"unknown kind", base + "faults: [{kind: meteor, at: 1s, for: 1s}]\n", "faults[0].kind", "not a fault kind"},
		{"partition without for", base + "faults: [{kind: partition, at: 1s, groups: [[c1], [c2]]}]\n", "faults[0].for", "needs for"},
		{"fault after the workload", base + "faults: [{kind: kill, at: 31s, for: 1s, targets: [c1]}]\n", "faults[0].at", "not inside"},
		{"fault heals after the workload", base + "faults: [{kind: kill, at: 25s, for: 10s, targets: [c1]}]\n", "faults[0]", "ends at 35s"},
		{"repeat runs past the end", base + "faults: [{kind: kill, at: 6s, for: 2s, every: 6s, count: 5, targets: [leader]}]\n", "faults[0]", "ends at 32s"},
		{"count without every", base + "faults: [{kind: kill, at: 1s, for: 1s, count: 3, targets: [c1]}]\n", "faults[0].every", "every must be > 0"},
		{"every without count", base + "faults: [{kind: kill, at: 1s, for: 1s, every: 3s, targets: [c1]}]\n", "faults[0].count", ">= 2"},
		{"overlapping occurrences", base + "faults: [{kind: kill, at: 1s, for: 4s, every: 3s, count: 2, targets: [c1]}]\n", "faults[0].for", "must not overlap"},
		{"unknown node", base + "faults: [{kind: kill, at: 1s, for: 1s, targets: [c4]}]\n", "faults[0].targets[0]", "has 3 coordinators"},
		{"not a selector", base + "faults: [{kind: kill, at: 1s, for: 1s, targets: [boss]}]\n", "faults[0].targets[0]", "not a node"},
		{"no targets", base + "faults: [{kind: pause, at: 1s, for: 1s}]\n", "faults[0].targets", "needs targets"},
		{"field the kind does not take", base + "faults: [{kind: kill, at: 1s, for: 1s, targets: [c1], percent: 5}]\n", "faults[0].percent", "does not take"},
		{"nats-restart with targets", base + "faults: [{kind: nats-restart, at: 1s, for: 1s, targets: [nats]}]\n", "faults[0].targets", "does not take"},
		{"one group", base + "faults: [{kind: partition, at: 1s, for: 1s, groups: [[c1]]}]\n", "faults[0].groups", "at least two"},
		{"empty group", base + "faults: [{kind: partition, at: 1s, for: 1s, groups: [[c1], []]}]\n", "faults[0].groups[1]", "empty"},
		{"groups share a static node", base + "faults: [{kind: partition, at: 1s, for: 1s, groups: [[c1, s1], [s1]]}]\n", "faults[0].groups", "both name s1"},
		{"leader inside coordinators", base + "faults: [{kind: partition, at: 1s, for: 1s, groups: [[leader], [coordinators]]}]\n", "faults[0].groups", "can overlap"},
		{"leader inside minority", base + "topology: {coordinators: 5}\nfaults: [{kind: partition, at: 1s, for: 1s, groups: [[leader], [minority]]}]\n", "faults[0].groups", "can overlap"},
		{"leader may be c2", base + "faults: [{kind: partition, at: 1s, for: 1s, groups: [[leader], [c2]]}]\n", "faults[0].groups", "leader c2"},
		{"follower needs a follower", base + "topology: {coordinators: 1}\nfaults: [{kind: pause, at: 1s, for: 1s, targets: [follower]}]\n", "faults[0].targets", "names no node"},
		{"bridge in a group", base + "topology: {coordinators: 5}\nfaults: [{kind: bridge, at: 1s, for: 1s, groups: [[c1, c3], [c4]], bridge: c3}]\n", "faults[0].bridge", "both name c3"},
		{"bridge of a class", base + "faults: [{kind: bridge, at: 1s, for: 1s, groups: [[c1], [c3]], bridge: shards}]\n", "faults[0].bridge", "exactly one node"},
		{"bridge of three groups", base + "faults: [{kind: bridge, at: 1s, for: 1s, groups: [[c1], [c2], [c3]], bridge: s1}]\n", "faults[0].groups", "exactly two"},
		{"loss above 100", base + "faults: [{kind: loss, at: 1s, for: 1s, targets: [all], percent: 150}]\n", "faults[0].percent", "(0, 100]"},
		{"fractional loss", base + "faults: [{kind: loss, at: 1s, for: 1s, targets: [all], percent: 1.5}]\n", "faults[0].percent", "whole percent"},
		{"skew without offset", base + "faults: [{kind: clock-skew, at: 1s, targets: [leader]}]\n", "faults[0].offset", "non-zero"},
		{"skew on nats", base + "faults: [{kind: clock-skew, at: 1s, targets: [all], offset: 1h}]\n", "faults[0].targets", "no injectable clock"},
		{"no drift", base + "faults: [{kind: clock-drift, at: 1s, targets: [c1], rate: 1}]\n", "faults[0].rate", "no drift"},
		{"drift beyond rho", base + "faults: [{kind: clock-drift, at: 1s, targets: [c1], rate: 1.05}]\n", "faults[0].rate", "more than rho"},
		{"repeated skew without for", base + "faults: [{kind: clock-skew, at: 1s, every: 5s, count: 2, targets: [c1], offset: 1h}]\n", "faults[0].for", "never end"},
		{"latency link of one", base + "faults: [{kind: latency, at: 1s, for: 1s, link: [c1], latency: 50ms}]\n", "faults[0].link", "exactly two"},
		{"latency link to itself", base + "faults: [{kind: latency, at: 1s, for: 1s, link: [leader, coordinators], latency: 50ms}]\n", "faults[0].link", "can overlap"},
		{"jitter above latency", base + "faults: [{kind: latency, at: 1s, for: 1s, link: [c1, nats], latency: 5ms, jitter: 10ms}]\n", "faults[0].jitter", "[0, latency]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want a *ValidationError", err)
			}
			for _, p := range ve.Problems {
				if p.Field == c.field && strings.Contains(p.Msg, c.msg) {
					return
				}
			}
			t.Errorf("no problem at %s containing %q in:\n%v", c.field, c.msg, err)
		})
	}
}

// TestValidateListsEveryProblem: one error carries all the problems, each named.
func TestValidateListsEveryProblem(t *testing.T) {
	_, err := Parse([]byte(`
name: many
duration: 20s
workload: {rate: -1, hot_share: 2}
faults:
  - {kind: kill, at: 1s, targets: [c9]}
  - {kind: loss, at: 30s, for: 1s, targets: [all], percent: 0}
`))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	for _, f := range []string{"workload.rate", "workload.hot_share", "faults[0].for", "faults[0].targets[0]",
		"faults[1].at", "faults[1].percent", "faults[1]"} {
		if !ve.Has(f) {
			t.Errorf("missing a problem at %s in:\n%v", f, err)
		}
	}
	if !strings.Contains(err.Error(), "many:") || strings.Count(err.Error(), "\n") != len(ve.Problems) {
		t.Errorf("the message must name the scenario and list one problem a line:\n%v", err)
	}
}

// TestValidSelectorsPass: the partitions the shipped scenarios rely on are accepted.
func TestValidSelectorsPass(t *testing.T) {
	for _, src := range []string{
		base + "faults: [{kind: partition, at: 1s, for: 1s, groups: [[leader], [followers]]}]\n",
		base + "faults: [{kind: partition, at: 1s, for: 1s, groups: [[leader], [followers, nats, shards]]}]\n",
		base + "topology: {coordinators: 5}\nfaults: [{kind: partition, at: 1s, for: 1s, groups: [[minority], [majority-without-leader]]}]\n",
		base + "faults: [{kind: partition, at: 1s, for: 1s, groups: [[coordinators], [nats]], every: 5s, count: 3}]\n",
		base + "faults: [{kind: latency, at: 1s, for: 1s, link: [leader, nats], latency: 50ms, jitter: 5ms}]\n",
		base + "faults: [{kind: clock-drift, at: 1s, targets: [c1], rate: 1.05}]\nexpect: {violations: [I7]}\n",
	} {
		if _, err := Parse([]byte(src)); err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
}

func TestExpectation(t *testing.T) {
	for in, want := range map[string]string{"I1": "I1", "I1|I3": "I1|I3", " I5? ": "I5?", "I1|I1": "I1"} {
		e, err := ParseExpectation(in)
		if err != nil || e.String() != want {
			t.Errorf("%q: %v %v, want %s", in, e, err, want)
		}
	}
	for _, bad := range []string{"", "I9", "I1|", "i1", "I1??"} {
		if _, err := ParseExpectation(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
	e, _ := ParseExpectation("I1|I3")
	if !e.Met(func(id string) bool { return id == "I3" }) || e.Met(func(string) bool { return false }) {
		t.Error("I1|I3 must be met by I3 alone and not by nothing")
	}
	if _, err := Parse([]byte(base + "expect: {violations: [\"I5?\"]}\n")); err == nil {
		t.Error("an all-optional expectation must be refused")
	}
}
