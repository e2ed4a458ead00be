// Package cmdsig signs the commands a coordinator sends to shards and verifies them
// at the shard: defense in depth behind NATS permissions. A shard that verifies hands
// its Participant only commands signed by a key it trusts, so a process that manages
// to publish on a shard's command subject (a leaked credential, a permission mistake,
// a compromised NATS account) cannot make the shard prepare (lock players) or commit
// (book them into a match) a transaction the coordinator never decided.
//
// Keys are NATS nkeys of the server type: the seed is text starting "SN", the public
// key text starting "N" (Ed25519 underneath, with a type prefix and a CRC that catch
// a pasted user or account key and a typo). `nk -gen server` or
// `coordinator signing-key --out FILE` makes one.
//
// What is signed (version 1), byte for byte:
//
//	"shardmatch-cmdsig" 0x00 0x01 len(subject) as 2 bytes big-endian, subject, payload
//
// that is the domain (17 ASCII bytes), a zero byte, the version, then the NATS subject
// the command is published on (so a command for one shard cannot be replayed on
// another shard's subject) and the exact payload bytes (the encoded ShardCommand).
// Headers are not signed: Nats-Msg-Id and traceparent change between resends of one
// command and the payload already holds everything a shard acts on (txid, shard,
// players, term). The message carries
//
//	Sm-Signer: <public key, "N...">
//	Sm-Sig:    <Ed25519 signature, base64url without padding (86 characters)>
//
// A Verifier trusts several public keys at once, so keys rotate without downtime:
// shards trust old and new, coordinators switch to the new, shards drop the old.
//
// What it does not stop: the replay of an authentic command on its own subject. Shards
// are idempotent by txid, so a replay inside the journal's tombstone retention is
// answered as a duplicate; older replays are what NATS permissions (only coordinators
// may publish commands) and the stream's MaxAge bound.
package cmdsig
