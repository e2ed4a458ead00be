package inject

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator/admin"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

// serveFaults runs the real fault-injection handler over a fake-based clock and a
// real transport hook.
func serveFaults(t *testing.T, token string) (*httptest.Server, *clock.Fake, *clock.Skewed, *natstransport.Faults) {
	t.Helper()
	fake := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	skewed := clock.NewSkewed(fake)
	tr := natstransport.NewFaults(1)
	h, err := admin.NewFaultHandler(admin.FaultConfig{Clock: skewed, Transport: tr}, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, fake, skewed, tr
}

func TestClientAgainstRealHandler(t *testing.T) {
	srv, fake, skewed, tr := serveFaults(t, "tok")
	ctx := context.Background()
	c := &Client{BaseURL: srv.URL, Token: "tok"}
	st, err := c.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st != (State{Rate: 1}) {
		t.Fatalf("initial state %+v", st)
	}
	off, rate := 2*time.Hour, 1.005
	if err := c.SetClock(ctx, &off, &rate); err != nil {
		t.Fatal(err)
	}
	if got := skewed.Now().Sub(fake.Now()); got != 2*time.Hour {
		t.Fatalf("process clock %s ahead, want 2h", got)
	}
	back := -90 * time.Second
	if err := c.SetClock(ctx, &back, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.SetTransport(ctx, 10, 25); err != nil {
		t.Fatal(err)
	}
	if d, r := tr.Percent(); d != 10 || r != 25 {
		t.Fatalf("transport hook at %v/%v", d, r)
	}
	st, err = c.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (State{Offset: back, Rate: rate, DuplicatePercent: 10, ReorderPercent: 25}); st != want {
		t.Fatalf("state %+v, want %+v", st, want)
	}
}

func TestClientErrors(t *testing.T) {
	srv, _, skewed, _ := serveFaults(t, "tok")
	ctx := context.Background()

	// Wrong token: the admin API's code comes through.
	err := (&Client{BaseURL: srv.URL, Token: "nope"}).SetTransport(ctx, 1, 1)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || e.Code != admin.CodeUnauthenticated || errors.Is(err, ErrNotEnabled) {
		t.Fatalf("wrong token: %v", err)
	}
	// A bad value: 400 naming the field, nothing changed.
	c := &Client{BaseURL: strings.TrimPrefix(srv.URL, "http://"), Token: "tok"}
	bad := 0.0
	err = c.SetClock(ctx, nil, &bad)
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Field != "rate" {
		t.Fatalf("rate 0: %v", err)
	}
	if err := c.SetTransport(ctx, 150, 0); !errors.As(err, &e) || e.Field != "duplicate_percent" {
		t.Fatalf("150%%: %v", err)
	}
	if _, rate := skewed.Skew(); rate != 1 {
		t.Fatal("a refused call changed the clock")
	}

	// A process without fault injection: 404, plain text or JSON, is ErrNotEnabled.
	off := httptest.NewServer(http.NotFoundHandler())
	defer off.Close()
	if _, err := (&Client{BaseURL: off.URL}).Get(ctx); !errors.Is(err, ErrNotEnabled) {
		t.Fatalf("404: %v", err)
	}
	d := time.Hour
	if err := (&Client{BaseURL: off.URL}).SetClock(ctx, &d, nil); !errors.Is(err, ErrNotEnabled) {
		t.Fatalf("404 on POST: %v", err)
	}
	// Nobody listening.
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	if _, err := (&Client{BaseURL: gone.URL}).Get(ctx); err == nil || errors.Is(err, ErrNotEnabled) {
		t.Fatalf("closed server: %v", err)
	}
}
