package policy

import (
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// teamsJSON is input.proposal.teams before a rule reads it, and shardJSON one
// shard of input.shards. OPA converts a value of a type it does not know by
// encoding it to JSON and converting the result; these encode themselves,
// straight from the protos, without building maps first. Each is a single
// pointer, so storing one in an interface does not allocate.
//
// The documents are those of docs/policy.md: every field present, proto3
// defaults included, ints as JSON numbers, the shard state as its enum name
// without the prefix.
type (
	teamsJSON  struct{ p *smv1.Proposal }
	shardsJSON struct{ s *[]*smv1.ShardInfo }
)

// proposalField is a number of the proposal, F saying which.
type proposalField[F interface{ of(*smv1.Proposal) any }] struct{ p *smv1.Proposal }

func (f proposalField[F]) MarshalJSON() ([]byte, error) {
	var field F
	return json.Marshal(field.of(f.p))
}

type (
	fieldMatchTTL       struct{}
	fieldPrepareTimeout struct{}
)

func (fieldMatchTTL) of(p *smv1.Proposal) any       { return p.GetMatchTtlMs() }
func (fieldPrepareTimeout) of(p *smv1.Proposal) any { return p.GetPrepareTimeoutMs() }

// MarshalJSON encodes [{"players": [player, ...]}, ...].

func (t teamsJSON) MarshalJSON() ([]byte, error) {

	n := 0
	for _, team := range t.p.GetTeams() {
		n += len(team.GetPlayers())
	}
	b := make([]byte, 0, 16+160*n)
	b = append(b, '[')
	for i, team := range t.p.GetTeams() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"players":[`...)
		for j, pl := range team.GetPlayers() {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendPlayer(b, pl)
		}
		b = append(b, "]}"...)
	}
	return append(b, ']'), nil
}

func appendPlayer(b []byte, pl *smv1.Player) []byte {
	a := pl.GetAttributes() // nil-safe getters: a nil message reads as defaults
	b = append(b, `{"player_id":`...)
	b = appendString(b, pl.GetPlayerId())
	b = append(b, `,"shard_id":`...)
	b = appendString(b, pl.GetShardId())
	b = append(b, `,"attributes":{"mmr":`...)
	b = strconv.AppendInt(b, int64(a.GetMmr()), 10)
	b = append(b, `,"region":`...)
	b = appendString(b, a.GetRegion())
	b = append(b, `,"party_id":`...)
	b = appendString(b, a.GetPartyId())
	b = append(b, `,"latency_ms":{`...)
	first := true
	for k, v := range a.GetLatencyMs() {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, k)
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(v), 10)
	}
	b = append(b, `},"extra":`...)
	b = appendStringMap(b, a.GetExtra())
	return append(b, "}}"...)
}

// MarshalJSON encodes the shards' metadata, keyed by shard id.
func (s shardsJSON) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 16+160*len(*s.s))
	b = append(b, '{')
	for i, sh := range *s.s {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, sh.GetShardId())
		b = append(b, `:{"shard_id":`...)
		b = appendString(b, sh.GetShardId())
		b = append(b, `,"region":`...)
		b = appendString(b, sh.GetRegion())
		b = append(b, `,"capacity":`...)
		b = strconv.AppendInt(b, int64(sh.GetCapacity()), 10)
		b = append(b, `,"labels":`...)
		b = appendStringMap(b, sh.GetLabels())
		b = append(b, `,"protocol_version":`...)
		b = strconv.AppendUint(b, uint64(sh.GetProtocolVersion()), 10)
		b = append(b, `,"state":`...)
		b = appendString(b, shardState(sh.GetState()))
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

func appendStringMap(b []byte, m map[string]string) []byte {
	b = append(b, '{')
	// Sorted, so that the bytes are the same on every call (the decoded
	// object would be the same either way).
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, m[k])
	}
	return append(b, '}')
}

// appendString appends s as a JSON string that decodes to what encoding/json
// would make of s: control characters, quotes and backslashes escaped, and
// each byte of invalid UTF-8 replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, `\ufffd`...)
				i += size
				start = i
				continue
			}
			i += size
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
