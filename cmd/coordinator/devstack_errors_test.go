package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/shardmatch/shardmatch/client"
	"github.com/shardmatch/shardmatch/coordinator"
)

// The in-process proposer's errors match the client SDK's sentinels, and still the
// node's; other errors pass unchanged.
func TestAsClientError(t *testing.T) {
	for node, want := range map[error]error{
		coordinator.ErrOutcomeUnknown: client.ErrOutcomeUnknown,
		coordinator.ErrNotFound:       client.ErrNotFound,
		coordinator.ErrConflict:       client.ErrConflict,
		coordinator.ErrInvalid:        client.ErrInvalid,
	} {
		err := asClientError(fmt.Errorf("propose p1: %w", node))
		if !errors.Is(err, want) || !errors.Is(err, node) {
			t.Errorf("%v: %v matches %v %v, %v %v", node, err, want, errors.Is(err, want), node, errors.Is(err, node))
		}
	}
	other := errors.New("boom")
	if got := asClientError(other); got != other {
		t.Errorf("an unrelated error became %v", got)
	}
	if asClientError(nil) != nil {
		t.Error("nil became an error")
	}
}
