package lease

import (
	"strconv"
	"testing"
	"time"
)

// benchTable returns a table already holding matches×10 leases, so map costs are those
// of a loaded coordinator, and the next free token.
func benchTable(b *testing.B, matches int) (*Table, uint64) {
	b.Helper()
	tb := NewTable()
	tok := uint64(1)
	for m := range matches {
		txid := "bg" + strconv.Itoa(m)
		if _, err := tb.Grant(txid, benchPlayers(txid), tok, time.Minute); err != nil {
			b.Fatal(err)
		}
		if m%2 == 0 {
			_ = tb.Activate(txid)
		}
		tok++
	}
	return tb, tok
}

func benchPlayers(prefix string) []string {
	ps := make([]string, 10)
	for i := range ps {
		ps[i] = prefix + "-p" + strconv.Itoa(i)
	}
	return ps
}

// BenchmarkTableGrant is one 10-player match's Begin and end: Grant then Release.
func BenchmarkTableGrant(b *testing.B) {
	tb, tok := benchTable(b, 1000)
	players := benchPlayers("m")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tb.Grant("m", players, tok, time.Minute); err != nil {
			b.Fatal(err)
		}
		tok++
		if _, err := tb.Release("m"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTableExpire measures Expire of a 10-player match. "due" includes the Grant
// and Activate that set up each expiry (subtract BenchmarkTableGrant for Expire alone);
// "stale" is the no-op a renew that raced the leader's measurement turns it into.
func BenchmarkTableExpire(b *testing.B) {
	b.Run("due", func(b *testing.B) {
		tb, tok := benchTable(b, 1000)
		players := benchPlayers("m")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tb.Grant("m", players, tok, time.Minute); err != nil {
				b.Fatal(err)
			}
			tok++
			if err := tb.Activate("m"); err != nil {
				b.Fatal(err)
			}
			if _, ok, err := tb.Expire("m", 0); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("stale", func(b *testing.B) {
		tb, _ := benchTable(b, 1000)
		if _, err := tb.Renew("bg0"); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, ok, err := tb.Expire("bg0", 0); ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
}

// BenchmarkTableGrantConflict is a 10-player Begin refused because two of its players
// are busy: the PLAYER_LEASED path under contention for hot players.
func BenchmarkTableGrantConflict(b *testing.B) {
	tb, tok := benchTable(b, 1000)
	players := benchPlayers("m")
	players[3], players[7] = "bg5-p3", "bg9-p7"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tb.Grant("m", players, tok, time.Minute); err == nil {
			b.Fatal("conflicting grant succeeded")
		}
	}
}
