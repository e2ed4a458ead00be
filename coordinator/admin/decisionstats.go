package admin

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardmatch/shardmatch/policy"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// RecentDenialsKept is how many policy denials GET /v1/policy remembers.
const RecentDenialsKept = 50

// decisionTally counts decisions for GET /v1/stats and keeps the latest policy denials
// for GET /v1/policy. Every replica observes every decision its FSM applies, so each
// node answers for itself; a restart replaying its log counts again.
type decisionTally struct {
	commits atomic.Int64
	aborts  [16]atomic.Int64 // by smv1.Reason; larger reasons go to other
	other   atomic.Int64

	policy atomic.Pointer[func() policy.Stats]

	mu      sync.Mutex
	denials []RecentDenial // a ring of RecentDenialsKept
	next    int
}

// RecentDenial is one POLICY_DENIED decision in GET /v1/policy.
type RecentDenial struct {
	TxID       string `json:"txid"`
	ProposalID string `json:"proposal_id"`
	// At is when the leader decided (its wall clock).
	At       time.Time     `json:"at"`
	Revision string        `json:"revision,omitempty"`
	Message  string        `json:"message,omitempty"`
	Denials  []DenialBrief `json:"denials,omitempty"`
}

// DenialBrief is one rule's denial: its code and message.
type DenialBrief struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}

func (t *decisionTally) observe(d *smv1.Decision) {
	switch d.GetOutcome() {
	case smv1.Outcome_OUTCOME_COMMITTED:
		t.commits.Add(1)
		return
	case smv1.Outcome_OUTCOME_ABORTED:
	default:
		return
	}
	if r := int(d.GetReason()); r >= 0 && r < len(t.aborts) {
		t.aborts[r].Add(1)
	} else {
		t.other.Add(1)
	}
	if d.GetReason() != smv1.Reason_REASON_POLICY_DENIED {
		return
	}
	rd := RecentDenial{TxID: d.GetTxid(), ProposalID: d.GetProposalId(), Revision: d.GetPolicyRevision(),
		Message: d.GetMessage(), At: time.UnixMilli(d.GetDecidedUnixMs()).UTC()}
	for _, dn := range d.GetDenials() {
		rd.Denials = append(rd.Denials, DenialBrief{Code: dn.GetCode(), Message: dn.GetMessage()})
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.denials) < RecentDenialsKept {
		t.denials = append(t.denials, rd)
		return
	}
	t.denials[t.next] = rd
	t.next = (t.next + 1) % RecentDenialsKept
}

// recent returns the kept denials, newest first.
func (t *decisionTally) recent() []RecentDenial {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]RecentDenial, 0, len(t.denials))
	for i := range t.denials {
		// The oldest sits at next once the ring is full, at 0 before.
		out = append(out, t.denials[(t.next+len(t.denials)-1-i)%len(t.denials)])
	}
	return out
}

// Stats is GET /v1/stats: cumulative counts on this node since it started.
type Stats struct {
	Commits int64 `json:"commits"`
	// Aborts counts aborted decisions by reason (REASON_* without the prefix; every
	// reason present, 0 included).
	Aborts            map[string]int64 `json:"aborts"`
	PolicyEvaluations uint64           `json:"policy_evaluations"`
	PolicyDenials     uint64           `json:"policy_denials"`
	// InDoubt counts, per registered shard, the decided txns it has not acknowledged.
	InDoubt map[string]int `json:"in_doubt"`
}

func (s *Server) getStats(w http.ResponseWriter, _ *http.Request) {
	t := &s.metrics.tally
	out := Stats{Commits: t.commits.Load(), Aborts: map[string]int64{}, InDoubt: s.state.InDoubtByShard()}
	for r := range smv1.Reason_name {
		if r != int32(smv1.Reason_REASON_UNSPECIFIED) && int(r) < len(t.aborts) {
			out.Aborts[reasonName(smv1.Reason(r))] = t.aborts[r].Load()
		}
	}
	if n := t.other.Load(); n > 0 {
		out.Aborts["OTHER"] = n
	}
	if ps := t.policy.Load(); ps != nil {
		st := (*ps)()
		out.PolicyEvaluations, out.PolicyDenials = st.Evaluations, st.Denied
	}
	writeJSON(w, http.StatusOK, out)
}

// PolicyInfo is GET /v1/policy.
type PolicyInfo struct {
	// Revision is the policy bundle in force on this node ("" when the node evaluates no
	// policy), LoadedAt when it was loaded.
	Revision      string         `json:"revision"`
	LoadedAt      *time.Time     `json:"loaded_at,omitempty"`
	Evaluations   uint64         `json:"evaluations"`
	Denied        uint64         `json:"denied"`
	RecentDenials []RecentDenial `json:"recent_denials"`
}

func (s *Server) getPolicy(w http.ResponseWriter, _ *http.Request) {
	t := &s.metrics.tally
	out := PolicyInfo{RecentDenials: t.recent()}
	if ps := t.policy.Load(); ps != nil {
		st := (*ps)()
		out.Revision, out.Evaluations, out.Denied = st.Revision, st.Evaluations, st.Denied
		if !st.LoadedAt.IsZero() {
			at := st.LoadedAt.UTC()
			out.LoadedAt = &at
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func reasonName(r smv1.Reason) string {
	const prefix = "REASON_"
	n := r.String()
	if len(n) > len(prefix) && n[:len(prefix)] == prefix {
		return n[len(prefix):]
	}
	return n
}
