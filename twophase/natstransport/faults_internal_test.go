package natstransport

import (
	"errors"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Draws are seeded: two hooks with one seed make the same choices, and holds stay in
// bounds.
func TestFaultsDecideSeeded(t *testing.T) {
	a, b := NewFaults(42), NewFaults(42)
	for _, f := range []*Faults{a, b} {
		if err := f.SetPercent(50, 50); err != nil {
			t.Fatal(err)
		}
	}
	dups, holds := 0, 0
	for range 1000 {
		d1, h1 := a.decide()
		d2, h2 := b.decide()
		if d1 != d2 || h1 != h2 {
			t.Fatal("one seed, different draws")
		}
		if d1 {
			dups++
		}
		if h1 != 0 {
			holds++
			if h1 < ReorderMinHold || h1 > ReorderMaxHold {
				t.Fatalf("hold %s out of bounds", h1)
			}
		}
	}
	if dups < 400 || dups > 600 || holds < 400 || holds > 600 {
		t.Fatalf("50%% shares gave %d duplicates and %d holds of 1000", dups, holds)
	}
	off := NewFaults(1)
	if d, h := off.decide(); d || h != 0 {
		t.Fatal("a hook at 0% injected a fault")
	}
}

// apply: a duplicate carries the /dup Nats-Msg-Id; the original's publish error is
// returned, the duplicate's is not; held messages go through later.
func TestFaultsApply(t *testing.T) {
	f := NewFaults(3)
	if err := f.SetPercent(100, 0); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ids []string
	now := func(m *nats.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
		return nil
	}
	m := &nats.Msg{Subject: "x", Header: nats.Header{jetstream.MsgIDHeader: {"t/prepare/s1/0"}}}
	if err := f.apply(m, now, nil, duplicateCmd); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || ids[0] != "t/prepare/s1/0" || ids[1] != "t/prepare/s1/0"+DuplicateIDSuffix {
		t.Fatalf("published ids %v", ids)
	}
	if m.Header.Get(jetstream.MsgIDHeader) != "t/prepare/s1/0" {
		t.Fatal("the duplicate changed the original's header")
	}
	boom := errors.New("boom")
	if err := f.apply(m, func(*nats.Msg) error { return boom }, nil, duplicateCmd); !errors.Is(err, boom) {
		t.Fatalf("apply = %v, want the publish error", err)
	}

	if err := f.SetPercent(0, 100); err != nil {
		t.Fatal(err)
	}
	late := make(chan *nats.Msg, 1)
	if err := f.apply(m, func(*nats.Msg) error { t.Error("a held message went out at once"); return nil },
		func(x *nats.Msg) { late <- x }, duplicateCmd); err != nil {
		t.Fatal(err)
	}
	f.Wait()
	if x := <-late; x != m {
		t.Fatal("the held message is not the original")
	}
}
