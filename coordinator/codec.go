package coordinator

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// logFormatV1 is the first byte of every log entry we write, so the encoding can change
// without ambiguity.
const logFormatV1 byte = 1

// EncodeBatch encodes commands as one log entry.
func EncodeBatch(cmds []*smv1.Command) ([]byte, error) {
	if len(cmds) == 0 || len(cmds) > MaxBatch {
		return nil, &InvalidError{Field: "batch", Reason: fmt.Sprintf("%d commands (want 1..%d)", len(cmds), MaxBatch)}
	}
	b := make([]byte, 1, 1+64*len(cmds))
	b[0] = logFormatV1
	return proto.MarshalOptions{Deterministic: true}.MarshalAppend(b, &smv1.Batch{Commands: cmds})
}

// DecodeBatch decodes a log entry written by EncodeBatch. It never panics on bad input.
func DecodeBatch(b []byte) ([]*smv1.Command, error) {
	if len(b) == 0 {
		return nil, &InvalidError{Field: "log entry", Reason: "empty"}
	}
	if b[0] != logFormatV1 {
		return nil, &InvalidError{Field: "log entry", Reason: fmt.Sprintf("unknown format version %d", b[0])}
	}
	var batch smv1.Batch
	if err := proto.Unmarshal(b[1:], &batch); err != nil {
		return nil, &InvalidError{Field: "log entry", Reason: err.Error()}
	}
	if len(batch.Commands) == 0 || len(batch.Commands) > MaxBatch {
		return nil, &InvalidError{Field: "log entry", Reason: fmt.Sprintf("%d commands", len(batch.Commands))}
	}
	return batch.Commands, nil
}
