package admin

import (
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/shardmatch/shardmatch/clock"
)

// Fault-injection endpoints (docs/chaos.md). They exist only when the process was
// started with --enable-fault-injection (Config.Faults set, or NewFaultHandler
// mounted); otherwise they answer 404 like any unknown path.
//
//	GET  /v1/fault            FaultState
//	POST /v1/fault/clock      ClockRequest: step the wall clock to an absolute offset
//	                          and/or set the clock rate; answers the new FaultState
//	POST /v1/fault/transport  TransportRequest: duplicate/reorder shares of outbound
//	                          messages; answers the new FaultState
//
// A bad body is 400 INVALID and changes nothing. When an admin token is configured the
// endpoints need it; without one they are open, because the operator who enabled
// fault injection asked for them.
const (
	PathFault          = "/v1/fault"
	PathFaultClock     = "/v1/fault/clock"
	PathFaultTransport = "/v1/fault/transport"
)

// TransportFaults is the transport fault hook the endpoints drive;
// *natstransport.Faults implements it.
type TransportFaults interface {
	// SetPercent sets the shares (each in [0, 100]) of outbound messages duplicated and
	// reordered; on error nothing changes.
	SetPercent(duplicate, reorder float64) error
	// Percent returns the shares set.
	Percent() (duplicate, reorder float64)
}

// FaultConfig turns the fault-injection endpoints on.
type FaultConfig struct {
	// Clock is the process's one clock, which every component reads; the endpoints
	// step and skew it. Required.
	Clock *clock.Skewed
	// Transport is the process's transport fault hook. Nil: GET reports zero shares
	// and POST /v1/fault/transport answers 501.
	Transport TransportFaults
}

// FaultState is GET /v1/fault's answer and the POSTs'.
type FaultState struct {
	Clock     ClockFault     `json:"clock"`
	Transport TransportFault `json:"transport"`
}

// ClockFault is the skew of the process clock.
type ClockFault struct {
	// Offset is the wall-clock step, as time.Duration's String ("2h0m0s", "-5s").
	Offset string `json:"offset"`
	// Rate is the clock's seconds per real second (1 = no drift).
	Rate float64 `json:"rate"`
}

// TransportFault is the share of outbound messages the transport hook disturbs.
type TransportFault struct {
	DuplicatePercent float64 `json:"duplicate_percent"`
	ReorderPercent   float64 `json:"reorder_percent"`
}

// ClockRequest is POST /v1/fault/clock's body. Absent fields stay as they are; Offset
// is absolute (a Go duration, "-2h", "90s"), not added to the current one.
type ClockRequest struct {
	Offset *string  `json:"offset,omitempty"`
	Rate   *float64 `json:"rate,omitempty"`
}

// TransportRequest is POST /v1/fault/transport's body. Absent fields stay as they are.
type TransportRequest struct {
	DuplicatePercent *float64 `json:"duplicate_percent,omitempty"`
	ReorderPercent   *float64 `json:"reorder_percent,omitempty"`
}

// faultAPI serves the endpoints; auth guards the POSTs.
type faultAPI struct {
	cfg  FaultConfig
	log  *slog.Logger
	auth func(*http.Request) *Error
}

func (cfg *FaultConfig) validate() error {
	if cfg.Clock == nil {
		return errors.New("admin: FaultConfig.Clock is nil")
	}
	return nil
}

// NewFaultHandler serves the fault-injection endpoints on their own, for a process
// that has no Server (the shard server mounts it on its admin mux). A non-empty token
// is required as `Authorization: Bearer <token>` on the POSTs. Unknown paths and
// methods under it answer JSON 404 and 405.
func NewFaultHandler(cfg FaultConfig, token string, log *slog.Logger) (http.Handler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sum := sha256.Sum256([]byte(token))
	api := &faultAPI{cfg: cfg, log: log.With("component", "fault-injection"), auth: func(r *http.Request) *Error {
		if token == "" {
			return nil
		}
		return checkBearer(r, sum)
	}}
	mux := http.NewServeMux()
	api.register(mux)
	fallbacks := jsonFallbacks(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, DefaultMaxBodyBytes)
		fallbacks.ServeHTTP(w, r)
	}), nil
}

func (f *faultAPI) register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathFault, f.get)
	mux.HandleFunc("POST "+PathFaultClock, f.guard(f.setClock))
	mux.HandleFunc("POST "+PathFaultTransport, f.guard(f.setTransport))
}

func (f *faultAPI) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if e := f.auth(r); e != nil {
			f.log.Warn("fault injection refused", "path", r.URL.Path, "remote", r.RemoteAddr, "code", e.Code)
			writeError(w, e)
			return
		}
		h(w, r)
	}
}

func (f *faultAPI) state() FaultState {
	off, rate := f.cfg.Clock.Skew()
	st := FaultState{Clock: ClockFault{Offset: off.String(), Rate: rate}}
	if f.cfg.Transport != nil {
		st.Transport.DuplicatePercent, st.Transport.ReorderPercent = f.cfg.Transport.Percent()
	}
	return st
}

func (f *faultAPI) get(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, f.state())
}

// setClock validates everything before changing anything: the offset parses, the rate
// is accepted by SetRate (which changes nothing when it refuses), then the offset.
func (f *faultAPI) setClock(w http.ResponseWriter, r *http.Request) {
	var req ClockRequest
	if e := decodeBody(w, r, &req, false); e != nil {
		writeError(w, e)
		return
	}
	var off time.Duration
	if req.Offset != nil {
		d, err := time.ParseDuration(*req.Offset)
		if err != nil {
			writeError(w, invalid("offset", "offset %q is not a duration like \"-2h\" or \"90s\"", *req.Offset))
			return
		}
		off = d
	}
	if req.Rate != nil {
		if err := f.cfg.Clock.SetRate(*req.Rate); err != nil {
			writeError(w, invalid("rate", "%v", err))
			return
		}
	}
	if req.Offset != nil {
		f.cfg.Clock.SetOffset(off)
	}
	st := f.state()
	f.log.Warn("clock fault injected", "offset", st.Clock.Offset, "rate", st.Clock.Rate, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, st)
}

func (f *faultAPI) setTransport(w http.ResponseWriter, r *http.Request) {
	if f.cfg.Transport == nil {
		writeError(w, &Error{Code: CodeNotImplemented, Message: "this process has no transport fault hook"})
		return
	}
	var req TransportRequest
	if e := decodeBody(w, r, &req, false); e != nil {
		writeError(w, e)
		return
	}
	dup, reorder := f.cfg.Transport.Percent()
	if req.DuplicatePercent != nil {
		dup = *req.DuplicatePercent
	}
	if req.ReorderPercent != nil {
		reorder = *req.ReorderPercent
	}
	for field, p := range map[string]float64{"duplicate_percent": dup, "reorder_percent": reorder} {
		if !(p >= 0 && p <= 100) {
			writeError(w, invalid(field, "%s (%v) must be in [0, 100]", field, p))
			return
		}
	}
	if err := f.cfg.Transport.SetPercent(dup, reorder); err != nil {
		writeError(w, invalid("body", "%v", err))
		return
	}
	st := f.state()
	f.log.Warn("transport fault injected", "duplicate_percent", dup, "reorder_percent", reorder, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, st)
}
