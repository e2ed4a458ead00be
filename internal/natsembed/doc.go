// Package natsembed runs nats-server inside a shardmatch process: for tests,
// `coordinator dev` and `coordinator nats`, alone or one of a cluster (ClusterConfig:
// routes, clustered JetStream, streams of three replicas), with HTTP monitoring.
//
// It is separate from internal/natsutil (subjects, streams, trace headers) because the
// client and shard SDKs import natsutil, and a game's binary must not link a NATS
// server it never runs.
package natsembed
