package etcdlease_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/lease"
	"github.com/shardmatch/shardmatch/lease/etcdlease"
)

// A new leader adopts its predecessor's reservation: the grant moves to the adopter's
// session with its token unchanged, outlives the store that made it, and ends with the
// adopter. Adopting twice is harmless; a grant that is gone or ACTIVE is refused,
// typed.
func TestAdoptMovesReservation(t *testing.T) {
	t.Parallel()
	srv := startEtcd(t)
	prefix := uniquePrefix()
	ctx := context.Background()
	old := newStore(t, srv.client(t), etcdlease.Options{Prefix: prefix})
	heir := newStore(t, srv.client(t), etcdlease.Options{Prefix: prefix})
	other := newStore(t, srv.client(t), etcdlease.Options{Prefix: prefix})

	granted, err := old.Acquire(ctx, "tx1", []string{"p1", "p2"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second adoption finds the grant on its own session already
		got, err := heir.Adopt(ctx, "tx1")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Token != granted[0].Token || got[1].Player != "p2" || got[0].State != lease.Reserved {
			t.Fatalf("Adopt = %+v, want the grant %+v", got, granted)
		}
	}
	if err := old.Close(); err != nil { // revokes the old session: tx1 is no longer on it
		t.Fatal(err)
	}
	for _, p := range []string{"p1", "p2"} {
		l, err := heir.Get(ctx, p)
		if err != nil || l.TxID != "tx1" || l.Token != granted[0].Token {
			t.Fatalf("after the old store closed, Get(%s) = %+v, %v; want tx1 with token %d", p, l, err, granted[0].Token)
		}
	}
	var le *lease.LeasedError
	if _, err := other.Acquire(ctx, "tx2", []string{"p1"}, 2*time.Second); !errors.As(err, &le) {
		t.Fatalf("Acquire of an adopted player = %v, want *LeasedError", err)
	}

	if _, err := heir.Adopt(ctx, "nope"); !errors.Is(err, lease.ErrNotFound) {
		t.Errorf("Adopt(unknown) = %v, want ErrNotFound", err)
	}
	if err := heir.Activate(ctx, "tx1"); err != nil {
		t.Fatal(err)
	}
	if _, err := heir.Adopt(ctx, "tx1"); !errors.Is(err, lease.ErrWrongState) {
		t.Errorf("Adopt(active) = %v, want ErrWrongState", err)
	}

	// An adopted reservation ends with its adopter.
	if _, err := other.Acquire(ctx, "tx3", []string{"p3"}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := heir.Adopt(ctx, "tx3"); err != nil {
		t.Fatal(err)
	}
	if err := heir.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Get(ctx, "p3"); !errors.Is(err, lease.ErrNotFound) {
		t.Errorf("after its adopter closed, Get(p3) = %v, want ErrNotFound", err)
	}
}
