package doctest

import (
	"bytes"
	"encoding/hex"
	"regexp"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// vectorRE finds protocol.md's test vectors: a marker naming the message type, its
// JSON in a fenced block, then its hex encoding in backquotes.
var vectorRE = regexp.MustCompile("(?s)<!-- vectors: (\\w+) -->\\n```json\\n(.*?)\\n```\\n`([0-9a-f]+)`")

// vectorTypes are the messages a vector may name.
var vectorTypes = map[string]func() proto.Message{
	"ShardCommand":  func() proto.Message { return new(smv1.ShardCommand) },
	"ShardReply":    func() proto.Message { return new(smv1.ShardReply) },
	"ShardInfo":     func() proto.Message { return new(smv1.ShardInfo) },
	"StatusRequest": func() proto.Message { return new(smv1.StatusRequest) },
	// command batches
	"ShardCommandBatch": func() proto.Message { return new(smv1.ShardCommandBatch) },
	"ShardReplyBatch":   func() proto.Message { return new(smv1.ShardReplyBatch) },
}

// checkVector reports whether the hex and the JSON of one vector are the same message.
func checkVector(typ, js, hx string) string {
	mk, ok := vectorTypes[typ]
	if !ok {
		return "unknown message type " + typ
	}
	fromJSON := mk()
	if err := protojson.Unmarshal([]byte(js), fromJSON); err != nil {
		return "JSON: " + err.Error()
	}
	wire, err := hex.DecodeString(hx)
	if err != nil {
		return "hex: " + err.Error()
	}
	fromWire := mk()
	if err := proto.Unmarshal(wire, fromWire); err != nil {
		return "decoding the hex: " + err.Error()
	}
	if !proto.Equal(fromJSON, fromWire) {
		return "the hex decodes to " + protojson.Format(fromWire)
	}
	enc, err := proto.MarshalOptions{Deterministic: true}.Marshal(fromJSON)
	if err != nil || !bytes.Equal(enc, wire) {
		return "the Go encoder writes " + hex.EncodeToString(enc)
	}
	return ""
}

// Every test vector of docs/protocol.md is one message twice: its JSON and its hex
// decode to the same message, and the Go encoder writes exactly that hex. A vector
// whose hex is off by one byte fails.
func TestProtocolVectors(t *testing.T) {
	vs := vectorRE.FindAllStringSubmatch(readDoc(t, "docs/protocol.md"), -1)
	if len(vs) < 7 {
		t.Fatalf("found %d test vectors in docs/protocol.md, want at least 7", len(vs))
	}
	for _, v := range vs {
		if why := checkVector(v[1], v[2], v[3]); why != "" {
			t.Errorf("vector %s %s: %s", v[1], v[2], why)
		}
	}
	// The check bites: the last byte of a vector changed (the term 3 → 4) is caught.
	v := vs[1]
	broken := v[3][:len(v[3])-1] + "4"
	if checkVector(v[1], v[2], broken) == "" {
		t.Error("a vector with a changed byte passes the check")
	}
}
