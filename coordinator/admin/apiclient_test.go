package admin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// fakeHTTPNode answers every request with status and body, and counts the calls.
func fakeHTTPNode(t *testing.T, status int, body string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s, &calls
}

func notLeaderBody(url string) string {
	return `{"error":{"code":"NOT_LEADER","message":"not leader","leader_id":"c3","leader_admin_url":"` + url + `"}}`
}

// The client skips nodes it cannot reach, follows a NOT_LEADER's leader_admin_url once
// (never a chain), and returns an answer that is not about leadership at once.
func TestAPIClientEndpointsAndLeaderURL(t *testing.T) {
	ctx := context.Background()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	leader, leaderCalls := fakeHTTPNode(t, 200, `{"ok":true,"from":"c3"}`)
	follower, followerCalls := fakeHTTPNode(t, 421, notLeaderBody(leader.URL+"/"))

	c := &APIClient{Endpoints: []string{deadURL, follower.URL}}
	r, err := c.TransferLeader(ctx, "", "")
	if err != nil || !r.OK || r.From != "c3" {
		t.Fatalf("through a dead node and a follower: %+v %v", r, err)
	}
	if leaderCalls.Load() != 1 || followerCalls.Load() != 1 {
		t.Errorf("calls: leader %d, follower %d; want 1 each", leaderCalls.Load(), followerCalls.Load())
	}

	// A leader URL that itself answers NOT_LEADER is not followed further.
	stale, staleCalls := fakeHTTPNode(t, 421, notLeaderBody(follower.URL))
	first, _ := fakeHTTPNode(t, 421, notLeaderBody(stale.URL))
	_, err = (&APIClient{Endpoints: []string{first.URL}}).TransferLeader(ctx, "", "")
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeNotLeader || e.HTTPStatus != 421 || staleCalls.Load() != 1 {
		t.Errorf("a chain of NOT_LEADERs: %v (stale node called %d times)", err, staleCalls.Load())
	}

	// A refusal is an answer: the other nodes would give the same, so they are not asked.
	conflict, _ := fakeHTTPNode(t, 409, `{"error":{"code":"CONFLICT","message":"decided"}}`)
	other, otherCalls := fakeHTTPNode(t, 200, `{"ok":true}`)
	_, err = (&APIClient{Endpoints: []string{conflict.URL, other.URL}}).AbortTxn(ctx, "tx-1-0")
	if !errors.As(err, &e) || e.Code != CodeConflict || otherCalls.Load() != 0 {
		t.Errorf("a refusal: %v, next node asked %d times", err, otherCalls.Load())
	}

	// Nothing reachable: the last transport error.
	if _, err := (&APIClient{Endpoints: []string{deadURL}}).Status(ctx); err == nil {
		t.Error("no reachable node: no error")
	}
	if _, err := (&APIClient{}).Status(ctx); err == nil {
		t.Error("no endpoints: no error")
	}
}
