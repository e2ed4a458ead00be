package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The audit trail: every call to an operate endpoint (leader transfer, voter changes,
// force-abort, snapshot save and restore, fault injection), allowed or refused, becomes
// one AuditRecord. The Auditor appends it as a JSON line to a file (fsync per record),
// logs it, and publishes it as an event (natsutil.Subjects.EventsAudit) without ever
// blocking or failing the operator's call.

// AuditRecord is one operator action or refused attempt at one.
type AuditRecord struct {
	// Time is when the call was answered (UTC, RFC 3339 with nanoseconds).
	Time time.Time `json:"time"`
	// Node is the node that served the call.
	Node string `json:"node"`
	// Role and Identity are who: the role granted ("operate", "read", "none") and the
	// credential ("operate-token#1a2b3c4d", "cert:CN=ops", "anonymous",
	// "invalid-token#..."). Remote is the client's address.
	Role     string `json:"role"`
	Identity string `json:"identity"`
	Remote   string `json:"remote"`
	// Method, Path, Query and Body are what: Body is the request body (JSON calls,
	// first 512 bytes) or a summary of it.
	Method string `json:"method"`
	Path   string `json:"path"`
	Query  string `json:"query,omitempty"`
	Body   string `json:"body,omitempty"`
	// Status, OK and Code are the result: the HTTP status, whether it is 2xx, and the
	// typed error's code otherwise.
	Status int    `json:"status"`
	OK     bool   `json:"ok"`
	Code   string `json:"code,omitempty"`
	// DurationMS is how long the call took.
	DurationMS float64 `json:"duration_ms"`
}

// AuditPublisher publishes one event; *nats.Conn implements it.
type AuditPublisher interface {
	Publish(subject string, data []byte) error
}

// AuditConfig configures an Auditor.
type AuditConfig struct {
	// File is the JSON-lines file records are appended to (created 0600). Empty: no
	// file (records are logged and published only).
	File string
	// Publisher and Subject publish every record as an event (nil: not published).
	Publisher AuditPublisher
	Subject   string
	// Logger receives every record (default: discarded).
	Logger *slog.Logger
	// Queue is how many records may wait to be published; more are dropped and
	// counted (default 256).
	Queue int
}

// AuditStats counts the Auditor's records and failures.
type AuditStats struct {
	Records, WriteFailed, PublishFailed, PublishDropped uint64
}

// Auditor writes the audit trail. Safe for concurrent use.
type Auditor struct {
	cfg    AuditConfig
	log    *slog.Logger
	mu     sync.Mutex // serializes file writes and guards recent, closed
	f      *os.File
	recent []AuditRecord // the last recentCap records, when there is no file
	closed bool
	pub    chan []byte
	done   chan struct{}

	records, writeFailed, publishFailed, publishDropped atomic.Uint64
}

const recentCap = 1000

// NewAuditor opens cfg.File for appending and starts publishing if cfg.Publisher is
// set. Close it when done.
func NewAuditor(cfg AuditConfig) (*Auditor, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 256
	}
	if cfg.Publisher != nil && cfg.Subject == "" {
		return nil, errors.New("admin: AuditConfig.Publisher needs a Subject")
	}
	a := &Auditor{cfg: cfg, log: cfg.Logger.With("component", "audit")}
	if cfg.File != "" {
		f, err := os.OpenFile(cfg.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("admin: audit log: %w", err)
		}
		if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
			a.log.Warn("the audit log is readable or writable by others", "file", cfg.File, "mode", fi.Mode().Perm().String())
		}
		a.f = f
	}
	if cfg.Publisher != nil {
		a.pub, a.done = make(chan []byte, cfg.Queue), make(chan struct{})
		go a.publish()
	}
	return a, nil
}

// Record writes rec to the file (fsync), the log and the event queue. A failure is
// logged and counted, never returned: the operator's call has happened already.
func (a *Auditor) Record(rec AuditRecord) {
	rec.Time = rec.Time.UTC()
	line, err := json.Marshal(rec)
	if err != nil { // cannot happen: plain fields
		a.log.Error("audit record not encodable", "err", err)
		return
	}
	a.records.Add(1)
	lvl := slog.LevelInfo
	if !rec.OK {
		lvl = slog.LevelWarn
	}
	a.log.Log(context.Background(), lvl, "audit", "who", rec.Identity, "role", rec.Role, "remote", rec.Remote,
		"method", rec.Method, "path", rec.Path, "query", rec.Query, "body", rec.Body,
		"status", rec.Status, "ok", rec.OK, "code", rec.Code)
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		a.writeFailed.Add(1)
		return
	}
	if a.f != nil {
		_, err = a.f.Write(append(line, '\n'))
		if err == nil {
			err = a.f.Sync()
		}
	} else {
		if len(a.recent) == recentCap {
			a.recent = append(a.recent[:0], a.recent[1:]...)
		}
		a.recent = append(a.recent, rec)
	}
	if a.pub != nil {
		select {
		case a.pub <- line:
		default:
			a.publishDropped.Add(1)
		}
	}
	a.mu.Unlock()
	if err != nil {
		a.writeFailed.Add(1)
		a.log.Error("audit record not written", "file", a.cfg.File, "err", err)
	}
}

func (a *Auditor) publish() {
	defer close(a.done)
	for line := range a.pub {
		if err := a.cfg.Publisher.Publish(a.cfg.Subject, line); err != nil {
			if a.publishFailed.Add(1) == 1 || a.publishFailed.Load()%100 == 0 {
				a.log.Warn("audit event not published", "subject", a.cfg.Subject, "err", err, "failed", a.publishFailed.Load())
			}
		}
	}
}

// Stats returns the counters.
func (a *Auditor) Stats() AuditStats {
	return AuditStats{Records: a.records.Load(), WriteFailed: a.writeFailed.Load(),
		PublishFailed: a.publishFailed.Load(), PublishDropped: a.publishDropped.Load()}
}

// Recent returns up to limit of the latest records, oldest first: from the file when
// there is one (so it survives restarts), else from memory.
func (a *Auditor) Recent(limit int) ([]AuditRecord, error) {
	if a.cfg.File == "" {
		a.mu.Lock()
		defer a.mu.Unlock()
		return append([]AuditRecord(nil), a.recent[max(0, len(a.recent)-limit):]...), nil
	}
	f, err := os.Open(a.cfg.File)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ring := make([]AuditRecord, 0, limit)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec AuditRecord
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue // a torn last line after a crash
		}
		if len(ring) == limit {
			ring = append(ring[:0], ring[1:]...)
		}
		ring = append(ring, rec)
	}
	return ring, sc.Err()
}

// Close stops publishing (after the queued records) and closes the file.
func (a *Auditor) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	if a.pub != nil {
		close(a.pub)
	}
	a.mu.Unlock()
	if a.done != nil {
		<-a.done
	}
	if a.f != nil {
		return a.f.Close()
	}
	return nil
}

// auditCall records one call to an operate endpoint.
func (s *Server) auditCall(p principal, r *http.Request, body string, rw *statusWriter, took time.Duration) {
	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	rec := AuditRecord{Time: s.cfg.Clock.Now(), Node: s.node.ID(), Role: p.role.String(), Identity: p.id,
		Remote: r.RemoteAddr, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: body,
		Status: status, OK: status/100 == 2, DurationMS: float64(took.Microseconds()) / 1000}
	if !rec.OK {
		var eb errorBody
		if json.Unmarshal(rw.errBuf, &eb) == nil && eb.Error != nil {
			rec.Code = eb.Error.Code
		} else {
			rec.Code = strconv.Itoa(status)
		}
	}
	s.audit.Record(rec)
}

// maxAuditLimit bounds GET /v1/audit's limit.
const maxAuditLimit = recentCap

// GET /v1/audit[?limit=N]: the latest audit records, oldest first (read role).
func (s *Server) getAudit(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditLimit {
			writeError(w, invalid("limit", "limit=%q must be a number in [1, %d]", v, maxAuditLimit))
			return
		}
		limit = n
	}
	recs, err := s.audit.Recent(limit)
	if err != nil {
		writeError(w, &Error{Code: CodeInternal, Message: fmt.Sprintf("cannot read the audit log: %v", err)})
		return
	}
	if recs == nil {
		recs = []AuditRecord{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": recs})
}

// auditCollector exports the Auditor's counters: shardmatch_admin_audit_records_total
// and shardmatch_admin_audit_failures_total{kind="write"|"publish"|"publish_dropped"}.
type auditCollector struct {
	a                 *Auditor
	records, failures *prometheus.Desc
}

func newAuditCollector(a *Auditor, labels prometheus.Labels) *auditCollector {
	return &auditCollector{a: a,
		records: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "admin", "audit_records_total"),
			"Audit records of operator actions and refused attempts.", nil, labels),
		failures: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "admin", "audit_failures_total"),
			"Audit records not written to the file (write) or not published as an event (publish, publish_dropped).",
			[]string{"kind"}, labels)}
}

func (c *auditCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.records; ch <- c.failures }

func (c *auditCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.a.Stats()
	ch <- prometheus.MustNewConstMetric(c.records, prometheus.CounterValue, float64(st.Records))
	for kind, v := range map[string]uint64{"write": st.WriteFailed, "publish": st.PublishFailed, "publish_dropped": st.PublishDropped} {
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(v), kind)
	}
}
