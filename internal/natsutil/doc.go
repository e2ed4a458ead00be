// Package natsutil is shardmatch's NATS plumbing: the subject names every component
// agrees on (docs/protocol.md), the JetStream streams behind them, W3C trace context on
// message headers (HeaderCarrier, InjectTrace, ExtractTrace: OpenTelemetry's
// TraceContext propagator over nats.Header). The embedded server is in
// internal/natsembed: this package is imported by the shard and client SDKs, and must
// not link a NATS server into a game's binary.
//
// Subjects take a configurable prefix (default "sm"):
//
//	<p>.v1.req.propose            stream SM_REQ     proposer → leader
//	<p>.v1.shard.<shard>.cmd      stream SM_CMD     leader → shard (Prepare, Commit, Abort)
//	<p>.v1.coord.vote.<shard>     core NATS         shard → leader
//	<p>.v1.coord.ack.<shard>      core NATS         shard → leader
//	<p>.v1.status                 core NATS request anyone → leader
//	<p>.v1.shard.register         core NATS         shard → leader
//	<p>.v1.events.match.<outcome> stream SM_EVENTS  leader → downstream
//
// What this package must never do:
//   - import anything of shardmatch's except clock: it is leaf plumbing;
//   - import nats-server (the SDKs import this package; TestSDKDependencies checks);
//   - depend on the OpenTelemetry SDK or an exporter: only the API (trace,
//     propagation), so that the client SDK that imports it stays small;
//   - know the protocol's messages: it moves bytes and headers, it does not decode them;
//   - build a subject from an unvalidated token: a shard id containing '.', '*' or '>'
//     would let one shard speak for another, so every builder validates and fails with
//     an *InvalidTokenError;
//   - make correctness depend on a stream keeping a message: streams are delivery
//     buffers, the coordinator's Raft log is the truth (docs/protocol.md, "Failure rules the coordinator follows").
package natsutil
