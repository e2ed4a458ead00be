package cmdsig_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// benchPayload is a realistic command: a 5-vs-5 match's Prepare for one shard.
func benchPayload(b *testing.B) []byte {
	b.Helper()
	var pl []*smv1.ShardPlayer
	for i := range 5 {
		pl = append(pl, &smv1.ShardPlayer{PlayerId: "s1-p0000" + string(rune('0'+i)), FencingToken: uint64(1000 + i)})
	}
	data, err := proto.Marshal(&smv1.ShardCommand{Cmd: &smv1.ShardCommand_Prepare{Prepare: &smv1.Prepare{
		Txid: "0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b", ProposalId: "proposal-123456", ShardId: "s1", Players: pl,
		Term: 7, Mode: "5v5", MatchTtlMs: 3_600_000}}})
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkSign(b *testing.B) {
	s := newSigner(b)
	data := benchPayload(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	h := map[string][]string{}
	for b.Loop() {
		s.SignHeader(h, subjS1, data)
	}
}

func BenchmarkVerify(b *testing.B) {
	s := newSigner(b)
	other := newSigner(b)
	v := newVerifier(b, other.PublicKey(), s.PublicKey()) // two trusted keys: mid-rotation
	data := benchPayload(b)
	h := header(s, subjS1, data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := v.VerifyHeader(subjS1, data, h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefuseUnknownSigner is the cost of a forged command from an untrusted key:
// a map lookup, no signature check, so a flood of them is cheap to refuse.
func BenchmarkRefuseUnknownSigner(b *testing.B) {
	s := newSigner(b)
	v := newVerifier(b, newSigner(b).PublicKey())
	data := benchPayload(b)
	h := header(s, subjS1, data)
	b.ReportAllocs()
	for b.Loop() {
		if err := v.VerifyHeader(subjS1, data, h); err == nil {
			b.Fatal("accepted")
		}
	}
}
