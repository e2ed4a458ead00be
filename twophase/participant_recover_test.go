package twophase

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/clock"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// ptQuerier answers outcomes from a map; missing txids fail.
type ptQuerier map[string]smv1.Outcome

func (q ptQuerier) Outcome(_ context.Context, txid string) (smv1.Outcome, error) {
	o, ok := q[txid]
	if !ok {
		return 0, errors.New("coordinator unreachable")
	}
	return o, nil
}

func TestParticipantRestartAndRecover(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := OpenBoltJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	f := newPtFixture(t, j)
	f.expect(ptPrepare("tx1", ptPlayers("alice", 1)...), "vote tx1 YES")
	f.expect(ptPrepare("tx2", ptPlayers("bob", 2)...), "vote tx2 YES")
	f.expect(ptPrepare("tx3", ptPlayers("carol", 3)...), "vote tx3 YES")
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	// A new process: new journal handle, new game state, same file.
	if f.j, err = OpenBoltJournal(path); err != nil {
		t.Fatal(err)
	}
	defer f.j.Close()
	f.h = newPtHandler()
	f.restart()
	if got := fmt.Sprint(f.p.InDoubt()); got != "[tx1 tx2 tx3]" {
		t.Fatalf("InDoubt = %s", got)
	}
	q := ptQuerier{"tx1": smv1.Outcome_OUTCOME_COMMITTED, "tx2": smv1.Outcome_OUTCOME_PENDING}
	if err := f.p.Recover(context.Background(), q); err == nil || !strings.Contains(err.Error(), "tx3") {
		t.Fatalf("Recover = %v, want the tx3 query error", err)
	}
	if err := f.p.Recover(context.Background(), q); err == nil {
		t.Fatal("second Recover hid the tx3 query error")
	}
	if got := fmt.Sprint(f.p.InDoubt()); got != "[tx2 tx3]" {
		t.Fatalf("InDoubt after Recover = %s", got)
	}
	if f.h.calls("tx1") != "p0 c1 a0" || f.h.calls("tx2") != "p0 c0 a0" {
		t.Fatalf("handler calls = %s, %s", f.h.calls("tx1"), f.h.calls("tx2"))
	}
	// Still in doubt means still reserved; a redelivered Commit for tx1 is a duplicate.
	f.expect(ptPrepare("tx4", ptPlayers("bob", 5)...), "vote tx4 NO RESERVED")
	f.expect(ptCommit("tx1"), "ack tx1 COMMITTED")

	q["tx2"], q["tx3"] = smv1.Outcome_OUTCOME_ABORTED, smv1.Outcome_OUTCOME_COMMITTED
	if err := f.p.Recover(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	if len(f.p.InDoubt()) != 0 || f.h.calls("tx1") != "p0 c1 a0" || f.h.calls("tx2") != "p0 c0 a1" || f.h.calls("tx3") != "p0 c1 a0" {
		t.Fatalf("after full recovery: in doubt %v, calls %s %s %s", f.p.InDoubt(), f.h.calls("tx1"), f.h.calls("tx2"), f.h.calls("tx3"))
	}
	if s := f.p.Stats(); s.Anomalies != 0 || s.Duplicates != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestParticipantCompact(t *testing.T) {
	f := newPtFixture(t, nil)
	f.h.reject["no"] = []*smv1.PlayerRejection{{PlayerId: "d", Code: "BUSY"}}
	f.expect(ptPrepare("held", ptPlayers("a", 1)...), "vote held YES")
	f.expect(ptPrepare("done", ptPlayers("b", 1)...), "vote done YES")
	f.expect(ptCommit("done"), "ack done COMMITTED")
	f.expect(ptAbort("gone"), "ack gone ABORTED")
	f.expect(ptPrepare("no", ptPlayers("d", 1)...), "vote no NO BUSY")

	f.clk.Advance(59 * time.Minute)
	if n, err := f.p.Compact(); n != 0 || err != nil {
		t.Fatalf("Compact before retention = %d, %v", n, err)
	}
	f.expect(ptAbort("late"), "ack late ABORTED") // recorded at 59m
	f.clk.Advance(time.Minute)
	if n, err := f.p.Compact(); n != 3 || err != nil {
		t.Fatalf("Compact at retention = %d, %v", n, err)
	}
	if f.state("held") != "PREPARED" || f.state("late") != "ABORTED" || f.state("gone") != "none" {
		t.Fatal("Compact dropped the wrong records")
	}

	// Records found at start-up age from the start, whatever their stamps say.
	f.clk.Advance(5 * time.Hour)
	f.restart()
	if n, _ := f.p.Compact(); n != 0 {
		t.Fatalf("Compact right after restart dropped %d", n)
	}
	f.clk.Advance(time.Hour)
	if n, _ := f.p.Compact(); n != 1 || f.state("late") != "none" || f.state("held") != "PREPARED" {
		t.Fatalf("Compact an hour after restart dropped %d", n)
	}
}

func BenchmarkParticipantPrepareCommit(b *testing.B) {
	for _, f := range journalFactories() {
		b.Run(f.name, func(b *testing.B) {
			p, err := NewParticipant(ParticipantConfig{ShardID: "s1", Handler: newPtHandler(), Journal: f.open(b), Clock: clock.NewReal()})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			pl := ptPlayers("alice", 1, "bob", 1)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				txid := fmt.Sprintf("tx%09d", i)
				i++
				for _, pp := range pl {
					pp.FencingToken = uint64(i)
				}
				if _, err := p.HandleCommand(ctx, ptPrepare(txid, pl...)); err != nil {
					b.Fatal(err)
				}
				if _, err := p.HandleCommand(ctx, ptCommit(txid, pl...)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
