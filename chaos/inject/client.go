package inject

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/shardmatch/shardmatch/coordinator/admin"
)

// ErrNotEnabled is returned (wrapped in an *Error) when the process answers 404: it
// was started without --enable-fault-injection.
var ErrNotEnabled = errors.New("inject: fault injection not enabled on this process")

// Error is a non-2xx answer of a fault-injection endpoint. It matches ErrNotEnabled
// with errors.Is when Status is 404.
type Error struct {
	Status  int    // HTTP status
	Code    string // the admin API's error code (INVALID, UNAUTHENTICATED, ...), if any
	Field   string // the offending field of an INVALID request, if any
	Message string
	URL     string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("inject: %s: %d", e.URL, e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Is makes a 404 match ErrNotEnabled.
func (e *Error) Is(target error) bool {
	return target == ErrNotEnabled && e.Status == http.StatusNotFound
}

// State is a process's fault-injection state.
type State struct {
	// Offset is the wall-clock step; Rate the clock's seconds per real second.
	Offset time.Duration
	Rate   float64
	// DuplicatePercent and ReorderPercent are the shares of outbound messages the
	// transport hook duplicates and holds back.
	DuplicatePercent, ReorderPercent float64
}

// Client talks to one process's admin API.
type Client struct {
	// BaseURL is the admin API, "http://host:port" (or "host:port").
	BaseURL string
	// Token is sent as `Authorization: Bearer` when set (needed when the process has
	// an admin token configured).
	Token string
	// HTTP makes the requests (nil: a client with a 5s timeout).
	HTTP *http.Client
}

var defaultHTTP = &http.Client{Timeout: 5 * time.Second}

// SetClock steps the process's wall clock to offset (absolute, not added to the
// current offset) and/or sets its rate; a nil argument leaves that part unchanged.
func (c *Client) SetClock(ctx context.Context, offset *time.Duration, rate *float64) error {
	var req admin.ClockRequest
	if offset != nil {
		s := offset.String()
		req.Offset = &s
	}
	req.Rate = rate
	_, err := c.do(ctx, http.MethodPost, admin.PathFaultClock, req)
	return err
}

// SetTransport sets the shares (each in [0, 100]) of outbound messages the process's
// transport duplicates and reorders.
func (c *Client) SetTransport(ctx context.Context, dupPct, reorderPct float64) error {
	_, err := c.do(ctx, http.MethodPost, admin.PathFaultTransport,
		admin.TransportRequest{DuplicatePercent: &dupPct, ReorderPercent: &reorderPct})
	return err
}

// Get returns the process's fault-injection state.
func (c *Client) Get(ctx context.Context) (State, error) {
	return c.do(ctx, http.MethodGet, admin.PathFault, nil)
}

// do sends one request and decodes the FaultState every endpoint answers with.
func (c *Client) do(ctx context.Context, method, path string, body any) (State, error) {
	u := strings.TrimRight(c.BaseURL, "/")
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	u += path
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return State{}, fmt.Errorf("inject: encode: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return State{}, fmt.Errorf("inject: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return State{}, fmt.Errorf("inject: %s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return State{}, fmt.Errorf("inject: %s %s: read: %w", method, u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return State{}, answerError(u, resp.StatusCode, b)
	}
	var fs admin.FaultState
	if err := json.Unmarshal(b, &fs); err != nil {
		return State{}, fmt.Errorf("inject: %s %s: decode: %w", method, u, err)
	}
	off, err := time.ParseDuration(fs.Clock.Offset)
	if err != nil {
		return State{}, fmt.Errorf("inject: %s %s: clock offset %q: %w", method, u, fs.Clock.Offset, err)
	}
	return State{Offset: off, Rate: fs.Clock.Rate, DuplicatePercent: fs.Transport.DuplicatePercent,
		ReorderPercent: fs.Transport.ReorderPercent}, nil
}

// answerError makes an *Error of a non-200 answer, JSON ({"error":{...}}) or not.
func answerError(u string, status int, body []byte) *Error {
	e := &Error{Status: status, URL: u}
	var eb struct {
		Error *admin.Error `json:"error"`
	}
	if json.Unmarshal(body, &eb) == nil && eb.Error != nil {
		e.Code, e.Field, e.Message = eb.Error.Code, eb.Error.Field, eb.Error.Message
		return e
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	e.Message = msg
	return e
}
