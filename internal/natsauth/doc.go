// Package natsauth generates and serves shardmatch's NATS decentralized (JWT)
// authentication: an operator, a system account and one deployment account with
// JetStream, whose users are signed by an account signing key. Each user is one role
// with one identity (coordinator-<id>, shard-<id>, proposer-<id>, observer-<id>) and
// carries exactly the subject permissions its role needs, derived by Permissions from
// the deployment's subjects: so a shard's credentials can vote, ack and register only
// for that shard and read only its own commands, and a proposer's can propose only as
// itself.
//
// Users are not part of the server's configuration: the server trusts the operator
// and preloads the account JWTs (MEMORY resolver), so a user created later (a new
// shard) connects without any server restart. Init makes a Deployment, Save and Load
// keep it in a directory (seeds 0600), NewUser signs a user's credentials,
// ConfigureServer puts an embedded nats-server in operator mode and ServerConfig
// writes the equivalent include for a stock nats-server.
package natsauth
