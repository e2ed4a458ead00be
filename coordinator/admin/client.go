package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// StatusClient fetches /v1/status from nodes' admin APIs, for `coordinator status`.
type StatusClient struct {
	// HTTP makes the requests (nil: a client with a 5s timeout on the default
	// transport; NewHTTPClient makes one that trusts the admin CA). Close its idle
	// connections when done if it is yours.
	HTTP *http.Client
	// Token is sent as `Authorization: Bearer <token>`: the read or the operate token,
	// needed when the nodes have a read token configured.
	Token string
}

var defaultHTTP = &http.Client{Timeout: 5 * time.Second}

// Fetch returns the status of the node whose admin API is at baseURL
// ("http://host:port", or "host:port" for plain HTTP). A non-2xx answer is an *Error.
func (c *StatusClient) Fetch(ctx context.Context, baseURL string) (*Status, error) {
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	u := BaseURL(baseURL, false)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"/v1/status", nil)
	if err != nil {
		return nil, fmt.Errorf("admin: status of %s: %w", baseURL, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin: status of %s: %w", baseURL, ExplainTLS(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("admin: status of %s: read: %w", baseURL, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, decodeError(resp.StatusCode, body)
	}
	var st Status
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("admin: status of %s: decode: %w", baseURL, err)
	}
	st.Endpoint = baseURL
	return &st, nil
}

// FetchAll fetches every address concurrently and returns one Status per address, in
// order. A node that could not be read has only Endpoint and Err set, so
// FormatCluster can show it.
func (c *StatusClient) FetchAll(ctx context.Context, baseURLs []string) []*Status {
	out := make([]*Status, len(baseURLs))
	var wg sync.WaitGroup
	for i, u := range baseURLs {
		wg.Go(func() {
			st, err := c.Fetch(ctx, u)
			if err != nil {
				st = &Status{Endpoint: u, Err: err}
			}
			out[i] = st
		})
	}
	wg.Wait()
	return out
}

// decodeError turns an error response into an *Error.
func decodeError(status int, body []byte) *Error {
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		if msg == "" {
			msg = http.StatusText(status)
		}
		if strings.Contains(msg, "HTTP request to an HTTPS server") {
			msg += " (this admin API serves HTTPS: use an https:// URL and --admin-ca)"
		}
		return &Error{Code: CodeUnavailable, Message: msg, HTTPStatus: status}
	}
	eb.Error.HTTPStatus = status
	return eb.Error
}
