package admin

import (
	"net/url"
	"strings"
)

// The admin API's routes. A `{name}` segment is a path parameter: PathFor fills it.
// PathDebugState, PathSnapshotRestore, PathFault* and PathUI are declared with their
// handlers.
const (
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
	PathMetrics = "/metrics"

	PathStatus      = "/v1/status"
	PathTxns        = "/v1/txns"
	PathTxn         = "/v1/txns/{id}"
	PathTxnAbort    = "/v1/txns/{id}/abort"
	PathTxnRedrive  = "/v1/txns/{id}/redrive"
	PathTxnResolve  = "/v1/txns/{id}/resolve"
	PathDeadLetters = "/v1/deadletters"
	PathLease       = "/v1/leases/{player}"
	PathShards      = "/v1/shards"
	PathShardState  = "/v1/shards/{id}/state"
	PathStats       = "/v1/stats"
	PathPolicy      = "/v1/policy"
	PathAudit       = "/v1/audit"

	PathLeaderTransfer = "/v1/leader/transfer"
	PathVoters         = "/v1/voters"
	PathVoter          = "/v1/voters/{id}"
	PathSnapshot       = "/v1/snapshot"
)

// PathFor fills pattern's `{name}` segments, in order, with args (path-escaped):
// PathFor(PathTxnAbort, "tx-5-0") is "/v1/txns/tx-5-0/abort". Segments left without an
// argument stay as they are.
func PathFor(pattern string, args ...string) string {
	segs := strings.Split(pattern, "/")
	for i, s := range segs {
		if len(args) == 0 {
			break
		}
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			segs[i] = url.PathEscape(args[0])
			args = args[1:]
		}
	}
	return strings.Join(segs, "/")
}
