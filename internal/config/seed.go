package config

import "hash/fnv"

// IDSeed derives a process's random seed from its node or shard id: the 32-bit
// FNV-1a hash of id. One id always gives the same seed, so a seeded chaos run
// replays; different ids give different seeds, so two processes started with the
// same --seed (shards, say) do not inject the same faults or drive the same load.
func IDSeed(id string) int64 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id)) // a hash.Hash never fails to write
	return int64(h.Sum32())
}
