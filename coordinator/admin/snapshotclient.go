package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SnapshotClient saves and restores snapshots through the nodes' admin APIs, for
// `coordinator snapshot`. Both calls go to the leader: it finds it among the URLs from
// their /v1/status and, on NOT_LEADER (leadership moved), looks again until ctx ends.
type SnapshotClient struct {
	// HTTP makes the requests (nil: the default transport, no overall timeout: ctx
	// bounds each call, since a snapshot may be large).
	HTTP *http.Client
	// Token is the admin bearer token (operate role; also sent on the status reads
	// that find the leader).
	Token string
}

// SavedSnapshot describes a snapshot Save wrote.
type SavedSnapshot struct {
	// Endpoint is the admin URL of the node that served it.
	Endpoint    string
	Index, Term uint64
	// Bytes is the file's size.
	Bytes int64
}

// RestoreParams are POST /v1/snapshot/restore's options.
type RestoreParams struct {
	Force    bool
	MinIndex uint64
}

func (c *SnapshotClient) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// Leader returns the admin URL, among urls, of the node that leads.
func (c *SnapshotClient) Leader(ctx context.Context, urls []string) (string, error) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sts := (&StatusClient{HTTP: c.HTTP, Token: c.Token}).FetchAll(sctx, urls)
	var errs []string
	for _, st := range sts {
		if st.Err != nil {
			errs = append(errs, st.Err.Error())
			continue
		}
		if st.Role == "leader" {
			return st.Endpoint, nil
		}
	}
	msg := fmt.Sprintf("no leader among %s", strings.Join(urls, ","))
	if len(errs) > 0 {
		msg += " (" + strings.Join(errs, "; ") + ")"
	}
	return "", &Error{Code: CodeNotLeader, Message: msg}
}

// onLeader runs call on the leader, finding it again while the answer is NOT_LEADER.
func (c *SnapshotClient) onLeader(ctx context.Context, urls []string, call func(base string) error) error {
	for {
		base, err := c.Leader(ctx, urls)
		if err == nil {
			if err = call(base); err == nil {
				return nil
			}
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeNotLeader {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %v)", err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *SnapshotClient) request(ctx context.Context, method, base, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, BaseURL(base, false)+path, body)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return req, nil
}

// Save streams the leader's snapshot file into w. If it fails after writing to w, what
// was written is incomplete: discard it.
func (c *SnapshotClient) Save(ctx context.Context, urls []string, w io.Writer) (SavedSnapshot, error) {
	var out SavedSnapshot
	err := c.onLeader(ctx, urls, func(base string) error {
		req, err := c.request(ctx, http.MethodGet, base, "/v1/snapshot", nil)
		if err != nil {
			return err
		}
		resp, err := c.http().Do(req)
		if err != nil {
			return fmt.Errorf("admin: snapshot from %s: %w", base, ExplainTLS(err))
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			return decodeError(resp.StatusCode, b)
		}
		n, err := io.Copy(w, resp.Body)
		if err != nil {
			return fmt.Errorf("admin: snapshot from %s: cut after %d bytes: %w", base, n, err)
		}
		if resp.ContentLength >= 0 && n != resp.ContentLength {
			return fmt.Errorf("admin: snapshot from %s: %d of %d bytes", base, n, resp.ContentLength)
		}
		out.Endpoint, out.Bytes = base, n
		out.Index, _ = strconv.ParseUint(resp.Header.Get(HeaderSnapshotIndex), 10, 64)
		out.Term, _ = strconv.ParseUint(resp.Header.Get(HeaderSnapshotTerm), 10, 64)
		return nil
	})
	return out, err
}

// Restore sends the snapshot file read from f (size bytes) to the leader. f is
// rewound for each attempt.
func (c *SnapshotClient) Restore(ctx context.Context, urls []string, f io.ReadSeeker, size int64, p RestoreParams) (*RestoreResponse, error) {
	q := url.Values{}
	if p.Force {
		q.Set("force", "true")
	}
	if p.MinIndex > 0 {
		q.Set("min_index", strconv.FormatUint(p.MinIndex, 10))
	}
	path := "/v1/snapshot/restore"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out RestoreResponse
	err := c.onLeader(ctx, urls, func(base string) error {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		req, err := c.request(ctx, http.MethodPost, base, path, io.NopCloser(f))
		if err != nil {
			return err
		}
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := c.http().Do(req)
		if err != nil {
			return fmt.Errorf("admin: restore on %s: %w", base, ExplainTLS(err))
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return fmt.Errorf("admin: restore on %s: read the answer: %w", base, err)
		}
		if resp.StatusCode/100 != 2 {
			return decodeError(resp.StatusCode, b)
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return fmt.Errorf("admin: restore on %s: decode the answer: %w", base, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}
