// Package netns is the chaos runner's low-level network and process layer: it puts
// each node of a deployment (coordinator, shard server, NATS server) in a Linux network
// namespace of its own, wires the namespaces to one bridge, injects network faults
// with nftables, runs and signals the nodes' processes, and adds link latency through
// an in-process TCP proxy.
//
// # Topology
//
// New creates a bridge in the root namespace ("smc<prefix>-br") holding the first
// address of the run's subnet; that address is BridgeIP, where the runner listens and
// from where it dials. AddHost creates a namespace "smc<prefix>-<name>" and a veth
// pair: "smc<prefix>-v<n>" is enslaved to the bridge in the root namespace and its
// peer is "eth0" in the host's namespace, with the host's address and a default route
// via BridgeIP. Hosts reach each other through the bridge (layer 2) and reach every
// address of the root namespace through the default route. No IP forwarding is
// enabled, so hosts cannot reach beyond the machine, and nothing outside the run's
// objects is changed.
//
// # Faults
//
// Partitions and packet loss are nftables drop rules in one table per run, "smc<prefix>"
// in the bridge family, on the bridge's forward hook. That hook sees every frame
// switched between two bridge ports, that is every packet from one host to another, and
// none of the traffic between a host and the root namespace (that traffic enters or
// leaves the bridge's own interface, the input and output hooks). So:
//
//   - the runner, in the root namespace, is never cut off and never loses packets:
//     its admin, observer and workload traffic is not part of the experiment;
//   - one table in one place holds every fault, so one `nft delete table` removes them
//     all, and nothing has to be entered in N namespaces (per-namespace inet tables
//     would need N+1 nft invocations per change and would still have to special-case
//     the runner's address);
//   - the whole rule list is rewritten in one atomic nft transaction on every change,
//     generated from the faults currently active, so Heal of one id can never leave a
//     half-removed fault behind.
//
// Rules match IPv4 addresses (ip saddr / ip daddr), so ARP keeps working during a
// partition and a heal takes effect with the next packet. The hosts speak IPv4 only:
// the table drops all bridged IPv6 so no partition can be crossed over link-local
// IPv6 addresses. Packet loss is per host link, `numgen random mod 100 < N`, applied
// once to packets leaving a lossy host and once to packets entering one; a packet
// between two lossy hosts therefore crosses two lossy links and survives with
// probability (1-N/100)², as it would on two real lossy links.
//
// Traffic relayed by a process in the root namespace (for example a latency Proxy
// listening on BridgeIP) is host↔root traffic on both legs, so partitions and loss do
// not apply to it; a partition of a proxied link must also close the proxy.
//
// # Leftovers
//
// Every object this package creates (namespace, link, nft table) is named "smc" + the
// run prefix, so Sweep can remove the leftovers of a run that was killed before Close
// ran (including SIGKILLing processes still inside its namespaces). Processes started
// by StartProc or Host.Command carry Pdeathsig=SIGKILL, so they die with the runner.
//
// # Requirements
//
// Everything here except Proxy needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and the
// `ip` (iproute2) and `nft` (nftables) commands; the package shells out to them and
// never installs anything. New returns ErrNotRoot or ErrMissingTool before it changes
// anything.
//
// This package must never import any shardmatch package above internal/: it is a
// tool of the chaos runner, not part of the system under test.
package netns
