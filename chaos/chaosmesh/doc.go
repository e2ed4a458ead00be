// Package chaosmesh renders the chaos scenarios (chaos/scenario) as Chaos Mesh
// manifests (chaos-mesh.org/v1alpha1) for a Kubernetes install: NetworkChaos for
// partitions, bridges, loss, latency, duplication and reordering; TimeChaos for clock
// skew; PodChaos for kill, pause and NATS restart; Schedule for repeated faults; and,
// to keep a scenario's timing, one Workflow per scenario.
//
// Some faults cannot be said the same way in Chaos Mesh, and the output says so in
// comments rather than pretending: "leader" and the other role selectors are fixed
// with c1 (pod <release>-coordinator-0) as the leader; clock drift has no equivalent
// and is skipped; pause becomes pod-failure (stop and restart, not a freeze); packet
// duplication and reordering are absorbed by TCP, unlike the runner's message-level
// faults. Checker-bites scenarios need a test-only coordinator mode and are refused
// (ErrUnsafe).
//
// The shipped manifests live in deploy/chaos-mesh, and as Helm templates behind
// chaosMesh.enabled in deploy/helm/shardmatch/templates/chaos (ChartFiles); both are
// generated from the shipped scenarios by `go generate ./chaos/chaosmesh`, and a test
// fails when either is stale.
// The package never talks to a cluster and does not import Kubernetes libraries.
package chaosmesh

//go:generate go run ./gen -out ../../deploy/chaos-mesh
//go:generate go run ./gen -chart -out ../../deploy/helm/shardmatch/templates/chaos
