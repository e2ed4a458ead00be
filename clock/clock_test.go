package clock

import (
	"context"
	"testing"
	"time"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestFakeTimersFireInOrder(t *testing.T) {
	f := NewFake(epoch)
	a := f.NewTimer(2 * time.Second)
	b := f.NewTimer(time.Second)
	f.Advance(1500 * time.Millisecond)
	select {
	case <-b.C():
	default:
		t.Fatal("1s timer did not fire after 1.5s")
	}
	select {
	case <-a.C():
		t.Fatal("2s timer fired after 1.5s")
	default:
	}
	f.Advance(time.Second)
	select {
	case <-a.C():
	default:
		t.Fatal("2s timer did not fire after 2.5s")
	}
	if got := f.Mono(); got != 2500*time.Millisecond {
		t.Fatalf("Mono = %v, want 2.5s", got)
	}
}

func TestFakeStopAndReset(t *testing.T) {
	f := NewFake(epoch)
	tm := f.NewTimer(time.Second)
	if !tm.Stop() {
		t.Fatal("Stop of pending timer returned false")
	}
	f.Advance(2 * time.Second)
	select {
	case <-tm.C():
		t.Fatal("stopped timer fired")
	default:
	}
	tm.Reset(time.Second)
	f.Advance(time.Second)
	select {
	case <-tm.C():
	default:
		t.Fatal("reset timer did not fire")
	}
}

func TestFakeTicker(t *testing.T) {
	f := NewFake(epoch)
	tk := f.NewTicker(time.Second)
	n := 0
	for i := 0; i < 3; i++ {
		f.Advance(time.Second)
		select {
		case <-tk.C():
			n++
		default:
		}
	}
	tk.Stop()
	f.Advance(time.Second)
	select {
	case <-tk.C():
		n++
	default:
	}
	if n != 3 {
		t.Fatalf("ticks = %d, want 3", n)
	}
}

func TestFakeJumpWallLeavesMonoAlone(t *testing.T) {
	f := NewFake(epoch)
	tm := f.NewTimer(time.Second)
	f.JumpWall(-5 * time.Hour)
	if f.Mono() != 0 {
		t.Fatalf("Mono moved on wall jump: %v", f.Mono())
	}
	if got := f.Now(); !got.Equal(epoch.Add(-5 * time.Hour)) {
		t.Fatalf("Now = %v", got)
	}
	select {
	case <-tm.C():
		t.Fatal("timer fired on wall jump")
	default:
	}
}

func TestSleepHonoursContext(t *testing.T) {
	f := NewFake(epoch)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Sleep(ctx, f, time.Hour) }()
	f.WaitForTimers(1)
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Sleep = %v, want context.Canceled", err)
	}
}

func TestSkewedRateAndOffset(t *testing.T) {
	f := NewFake(epoch)
	s := NewSkewed(f)
	if err := s.SetRate(2); err != nil {
		t.Fatal(err)
	}
	f.Advance(time.Second)
	if got := s.Mono(); got != 2*time.Second {
		t.Fatalf("Mono at rate 2 after 1s = %v", got)
	}
	if err := s.SetRate(1); err != nil {
		t.Fatal(err)
	}
	f.Advance(time.Second)
	if got := s.Mono(); got != 3*time.Second {
		t.Fatalf("Mono after rate back to 1 = %v, want 3s (continuous)", got)
	}
	s.SetOffset(time.Hour)
	if got, want := s.Now(), epoch.Add(2*time.Second+time.Second+time.Hour); !got.Equal(want) {
		t.Fatalf("Now = %v, want %v", got, want)
	}
	if got := s.Mono(); got != 3*time.Second {
		t.Fatalf("offset moved Mono: %v", got)
	}
	if err := s.SetRate(0); err == nil {
		t.Fatal("rate 0 accepted")
	}
}

func TestSkewedTimerScales(t *testing.T) {
	f := NewFake(epoch)
	s := NewSkewed(f)
	_ = s.SetRate(2) // our 2s pass in 1 base second
	tm := s.NewTimer(2 * time.Second)
	f.Advance(999 * time.Millisecond)
	select {
	case <-tm.C():
		t.Fatal("fired early")
	default:
	}
	f.Advance(time.Millisecond)
	select {
	case <-tm.C():
	default:
		t.Fatal("did not fire")
	}
}

func TestRealMonoAdvances(t *testing.T) {
	r := NewReal()
	a := r.Mono()
	tm := r.NewTimer(time.Millisecond)
	<-tm.C()
	if r.Mono() <= a {
		t.Fatal("real Mono did not advance")
	}
}
