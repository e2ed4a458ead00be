package natsauth

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shardmatch/shardmatch/internal/natsutil"
)

// Role is what a NATS user of a deployment is allowed to be.
type Role string

// The roles. Their names are the first part of a user's name, "<role>-<id>".
const (
	// RoleCoordinator is a coordinator node: trusted with every deployment subject, the
	// JetStream API and every inbox (it answers requests).
	RoleCoordinator Role = "coordinator"
	// RoleShard is one shard: it votes, acks and registers for itself only, reads only
	// its own commands through its own durable consumer, and asks the leader for
	// outcomes.
	RoleShard Role = "shard"
	// RoleProposer proposes matches under its own identity, asks for status and renews
	// or releases leases.
	RoleProposer Role = "proposer"
	// RoleObserver reads the events stream and nothing else.
	RoleObserver Role = "observer"
)

// Roles lists every role, in the order help and docs show them.
var Roles = []Role{RoleCoordinator, RoleShard, RoleProposer, RoleObserver}

// ErrUnknownRole is wrapped by ParseRole's and Permissions' errors for a role that is
// not one of Roles.
var ErrUnknownRole = errors.New("natsauth: unknown role")

// ErrBadID is wrapped by the errors for an identity that cannot be a user name (and so
// a subject token): empty, with '.', wildcards, '/', spaces, too long.
var ErrBadID = errors.New("natsauth: invalid identity")

// ParseRole returns the Role named s.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("%w %q (want one of %s)", ErrUnknownRole, s, roleList())
}

func roleList() string {
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

// UserName is the NATS user name of role's identity id, "<role>-<id>": the JWT's
// Name, the client's inbox prefix _INBOX.<name>, and for a proposer its intake
// subject token. id must be one subject token (natsutil.ValidateShardID's rules).
func UserName(role Role, id string) (string, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return "", err
	}
	if err := natsutil.ValidateShardID(id); err != nil {
		return "", fmt.Errorf("%w: %s id: %w", ErrBadID, role, err)
	}
	name := string(role) + "-" + id
	if _, err := natsutil.InboxPrefix(name); err != nil { // too long once prefixed
		return "", fmt.Errorf("%w: %s id: %w", ErrBadID, role, err)
	}
	return name, nil
}

// ParseUserName splits a user name made by UserName into its role and identity.
func ParseUserName(name string) (Role, string, error) {
	role, id, ok := strings.Cut(name, "-")
	if !ok {
		return "", "", fmt.Errorf("%w: user name %q is not <role>-<id>", ErrBadID, name)
	}
	r, err := ParseRole(role)
	if err != nil {
		return "", "", err
	}
	if _, err := UserName(r, id); err != nil {
		return "", "", err
	}
	return r, id, nil
}

// Perms are the subjects a user may publish to and subscribe to; everything else is
// denied (NATS answers a denied publish or subscription with a permissions violation
// and drops it).
type Perms struct {
	Pub, Sub []string
}

// Permissions returns what role's identity id may do in the deployment of subj. It is
// the one table the generated credentials, the docs and the tests all use: one
// function per role.
func Permissions(subj natsutil.Subjects, role Role, id string) (Perms, error) {
	name, err := UserName(role, id)
	if err != nil {
		return Perms{}, err
	}
	inbox, _ := natsutil.InboxPrefix(name) // UserName checked it
	switch role {
	case RoleCoordinator:
		return coordinatorPerms(subj, inbox), nil
	case RoleShard:
		return shardPerms(subj, id, inbox), nil
	case RoleProposer:
		return proposerPerms(subj, name, inbox), nil
	default: // RoleObserver; UserName refused the rest
		return observerPerms(subj, inbox), nil
	}
}

// jsAPI is the JetStream API's subject root.
const jsAPI = "$JS.API."

// coordinatorPerms: every deployment subject (commands, events, replies to votes and
// acks, requests, the leader index), the whole JetStream API (streams and the intake
// consumer), acks of what it consumes, and answers to any client inbox; it reads
// deployment subjects and its own inbox only.
func coordinatorPerms(subj natsutil.Subjects, inbox string) Perms {
	root := subj.Prefix() + ".v1.>"
	return Perms{
		Pub: []string{root, "$JS.API.>", "$JS.ACK.>", natsutil.InboxRoot + ".>"},
		Sub: []string{root, inbox + ".>"},
	}
}

// shardPerms: its own vote, ack and register subjects; status requests (in-doubt
// recovery); and of the JetStream API exactly what creating, looking up and pulling
// its own durable consumer shard-<id> filtered to its own command subject takes, plus
// acking what that consumer delivers. Replies arrive in its own inbox. Shards read no
// events: nothing in a shard consumes them.
func shardPerms(subj natsutil.Subjects, shard, inbox string) Perms {
	vote, _ := subj.CoordVote(shard)
	ack, _ := subj.CoordAck(shard)
	reg, _ := subj.ShardRegister(shard)
	cmd, _ := subj.ShardCmd(shard)
	stream := subj.Streams().Cmd
	cons := "shard-" + shard // natstransport.ConsumerName
	return Perms{
		Pub: []string{vote, ack, reg, subj.Status(),
			jsAPI + "CONSUMER.CREATE." + stream + "." + cons + "." + cmd,
			jsAPI + "CONSUMER.INFO." + stream + "." + cons,
			jsAPI + "CONSUMER.MSG.NEXT." + stream + "." + cons,
			"$JS.ACK." + stream + "." + cons + ".>",
		},
		Sub: []string{inbox + ".>"},
	}
}

// proposerPerms: its own intake subject (a JetStream publish: the PubAck comes back to
// its inbox, no API call is made), status, and lease renew/release.
func proposerPerms(subj natsutil.Subjects, name, inbox string) Perms {
	propose, _ := subj.ProposeFrom(name)
	return Perms{
		Pub: []string{propose, subj.Status(), LeaseSubject(subj)},
		Sub: []string{inbox + ".>"},
	}
}

// observerPerms: consumers on the events stream only (ephemeral, ordered or durable,
// any filter), pulling from and acking them, and the stream's info; nothing else.
func observerPerms(subj natsutil.Subjects, inbox string) Perms {
	ev := subj.Streams().Events
	return Perms{
		Pub: []string{
			jsAPI + "STREAM.INFO." + ev,
			jsAPI + "CONSUMER.CREATE." + ev + ".>",
			jsAPI + "CONSUMER.INFO." + ev + ".>",
			jsAPI + "CONSUMER.DELETE." + ev + ".>",
			jsAPI + "CONSUMER.MSG.NEXT." + ev + ".>",
			"$JS.ACK." + ev + ".>",
		},
		Sub: []string{inbox + ".>"},
	}
}

// LeaseSubject is the lease renew/release request subject, <p>.v1.lease (the same as
// natsapi.LeaseSubject, which this package cannot import).
func LeaseSubject(subj natsutil.Subjects) string { return subj.Prefix() + ".v1.lease" }
