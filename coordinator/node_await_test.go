package coordinator

import (
	"context"
	"errors"
	"testing"
	"time"
)

// unanswered is a Raft future nobody answers until release is closed, like a verify
// future hashicorp/raft left queued when it shut down.
type unanswered struct{ release chan struct{} }

func (u unanswered) Error() error {
	<-u.release
	return errors.New("answered late")
}

func newUnanswered(t *testing.T) unanswered {
	u := unanswered{release: make(chan struct{})}
	t.Cleanup(func() { close(u.release) })
	return u
}

// awaitWithin runs n.await and fails the test if it has not returned within a bound
// far above what any of the cases needs; a wait that trusts the future hangs here.
func awaitWithin(t *testing.T, n *Node, ctx context.Context, u unanswered) error {
	t.Helper()
	got := make(chan error, 1)
	go func() { got <- n.await(ctx, u) }()
	select {
	case err := <-got:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("await blocked on a future nobody answers")
		return nil
	}
}

func TestAwaitUnansweredFuture(t *testing.T) {
	t.Run("context ends the wait", func(t *testing.T) {
		n := &Node{stop: make(chan struct{})}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := awaitWithin(t, n, ctx, newUnanswered(t)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("await = %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("shutdown ends the wait", func(t *testing.T) {
		n := &Node{stop: make(chan struct{})}
		close(n.stop)
		if err := awaitWithin(t, n, context.Background(), newUnanswered(t)); !errors.Is(err, ErrClosed) {
			t.Fatalf("await = %v, want ErrClosed", err)
		}
	})
	t.Run("an answer is returned", func(t *testing.T) {
		n := &Node{stop: make(chan struct{})}
		u := unanswered{release: make(chan struct{})}
		close(u.release)
		if err := awaitWithin(t, n, context.Background(), u); err == nil || err.Error() != "answered late" {
			t.Fatalf("await = %v, want the future's error", err)
		}
	})
}
