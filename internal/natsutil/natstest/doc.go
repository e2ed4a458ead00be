// Package natstest starts embedded NATS servers with JetStream for tests: on a free
// loopback port, with the file store in the test's temporary directory, shut down
// when the test ends. Start is the plain server most tests want; StartRestartable is
// one a test can restart on the same store and port, to show that streams, consumers
// and reconnecting clients survive a NATS restart.
//
// What this package must never do:
//   - be imported by anything but _test.go files and test-support packages;
//   - import anything of shardmatch's but internal/natsutil: it is part of the leaf
//     plumbing under internal/;
//   - configure the server differently from natsembed.StartEmbedded: tests must run
//     against the server `coordinator dev` and `coordinator nats` run. A test that
//     needs TLS, accounts or a server without JetStream builds its own.
package natstest
