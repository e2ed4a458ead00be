// Package config loads the settings of shardmatch's long-running commands
// (`coordinator serve`, `shardsvc`) from three sources onto a flag.FlagSet, with the
// precedence an operator expects: a flag given on the command line wins over the
// environment, which wins over the config file, which wins over the flag's default.
//
// The config file is deliberately simple (go.mod carries no YAML library as a direct
// dependency): one `key = value` per line, `#` starts a comment, keys are the flag
// names (`raft-addr = 10.0.0.1:7000`; `raft_addr` is accepted too), values may be
// quoted. The environment variable of a flag is its name upper-cased with `-` turned
// into `_` and a prefix: SHARDMATCH_RAFT_ADDR.
//
// It also holds the small pieces both commands share: the NATS connection flags and
// the slog logger set-up. NATS.Connect waits for a server that is not up yet, but
// fails at once, with ErrNATSAuth or ErrNATSTLS and the flags to check, on what no
// retry can fix: refused credentials, an untrusted server certificate, a refused
// client certificate, unreadable certificate or credentials files.
//
// It is leaf plumbing: it must never import a shardmatch package above internal/.
package config
