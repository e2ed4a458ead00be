package natstransport

import "errors"

// Errors of this package. Test them with errors.Is: they are returned wrapped with the
// shard or txid they concern.
var (
	// ErrClosed is returned by Send after Close.
	ErrClosed = errors.New("natstransport: closed")
	// ErrShardMismatch is returned by Send when the command's shard_id is not the shard
	// it is sent to: the shard would refuse it anyway.
	ErrShardMismatch = errors.New("natstransport: command shard_id differs from destination shard")
)
