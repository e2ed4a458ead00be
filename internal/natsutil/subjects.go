package natsutil

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultPrefix is the subject prefix when none is configured.
const DefaultPrefix = "sm"

// MaxTokenLen bounds a shard id (and any other token a subject is built from). A shard
// id also names its durable consumer, "shard-<id>", and JetStream names are at most
// 255 bytes.
const MaxTokenLen = 128

// ErrInvalidToken is what every *InvalidTokenError matches with errors.Is.
var ErrInvalidToken = errors.New("natsutil: invalid subject token")

// InvalidTokenError says why a shard id, outcome or prefix cannot go into a subject.
// Callers classify with errors.Is(err, ErrInvalidToken) or errors.As.
type InvalidTokenError struct {
	Kind   string // "shard id", "outcome", "prefix", "subject"
	Value  string
	Reason string
}

func (e *InvalidTokenError) Error() string {
	return fmt.Sprintf("natsutil: invalid %s %q: %s", e.Kind, e.Value, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidToken) hold.
func (e *InvalidTokenError) Unwrap() error { return ErrInvalidToken }

// checkToken returns why tok cannot be a single NATS subject token that is also safe
// inside a JetStream asset name, or "" if it can.
func checkToken(tok string) string {
	switch {
	case tok == "":
		return "empty"
	case len(tok) > MaxTokenLen:
		return fmt.Sprintf("longer than %d bytes", MaxTokenLen)
	case !utf8.ValidString(tok):
		return "not valid UTF-8"
	}
	for _, r := range tok {
		switch {
		case r == '.':
			return "contains '.' (a token separator)"
		case r == '*' || r == '>':
			return fmt.Sprintf("contains the wildcard %q", r)
		case r == '/' || r == '\\':
			return fmt.Sprintf("contains the path separator %q (not allowed in JetStream names)", r)
		case unicode.IsSpace(r) || unicode.IsControl(r):
			return fmt.Sprintf("contains the space or control character %U", r)
		}
	}
	return ""
}

// ValidateShardID checks that id is one NATS token: non-empty, at most MaxTokenLen
// bytes, valid UTF-8, with no '.', '*', '>', '/', '\\', spaces or control characters.
// That is what makes "<p>.v1.coord.vote.<id>" name exactly one shard, so that NATS
// permissions on it prove who voted.
func ValidateShardID(id string) error {
	if why := checkToken(id); why != "" {
		return &InvalidTokenError{Kind: "shard id", Value: id, Reason: why}
	}
	return nil
}

// ReplyKind is what a shard sends back on a coordinator subject.
type ReplyKind uint8

// Reply kinds.
const (
	ReplyVote ReplyKind = iota + 1 // <p>.v1.coord.vote.<shard>
	ReplyAck                       // <p>.v1.coord.ack.<shard>
)

// String returns "vote" or "ack", the subject token.
func (k ReplyKind) String() string {
	switch k {
	case ReplyVote:
		return "vote"
	case ReplyAck:
		return "ack"
	}
	return fmt.Sprintf("ReplyKind(%d)", uint8(k))
}

// StreamNames are the JetStream stream names for one prefix.
type StreamNames struct {
	Req, Cmd, Events string
}

// Subjects builds and parses the subjects of one deployment. The zero value is not
// usable; make one with NewSubjects. It is a small value, safe to copy and share.
type Subjects struct {
	p string // "<prefix>.v1"
}

// NewSubjects validates prefix ("" means DefaultPrefix) and returns its subjects. A
// prefix is one or more tokens separated by '.', e.g. "sm" or "acme.eu.sm".
func NewSubjects(prefix string) (Subjects, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	for tok := range strings.SplitSeq(prefix, ".") {
		if why := checkToken(tok); why != "" {
			return Subjects{}, &InvalidTokenError{Kind: "prefix", Value: prefix, Reason: fmt.Sprintf("token %q: %s", tok, why)}
		}
	}
	return Subjects{p: prefix + ".v1"}, nil
}

// MustSubjects is NewSubjects for prefixes known at compile time; it panics on error.
func MustSubjects(prefix string) Subjects {
	s, err := NewSubjects(prefix)
	if err != nil {
		panic(err)
	}
	return s
}

// Prefix returns the configured prefix, without ".v1".
func (s Subjects) Prefix() string { return strings.TrimSuffix(s.p, ".v1") }

// Streams returns the stream names: SM_REQ, SM_CMD and SM_EVENTS for the default prefix;
// for another prefix its tokens upper-cased and joined by '_' ("acme.sm" → ACME_SM_CMD),
// so that two deployments sharing an account do not share streams.
func (s Subjects) Streams() StreamNames {
	base := strings.ToUpper(strings.ReplaceAll(s.Prefix(), ".", "_"))
	return StreamNames{Req: base + "_REQ", Cmd: base + "_CMD", Events: base + "_EVENTS"}
}

// ShardCmd is where the leader publishes a shard's commands: <p>.v1.shard.<shard>.cmd.
func (s Subjects) ShardCmd(shard string) (string, error) {
	if err := ValidateShardID(shard); err != nil {
		return "", err
	}
	return s.p + ".shard." + shard + ".cmd", nil
}

// ShardCmdAll matches every shard's command subject: <p>.v1.shard.*.cmd.
func (s Subjects) ShardCmdAll() string { return s.p + ".shard.*.cmd" }

// CoordVote is where a shard publishes its votes: <p>.v1.coord.vote.<shard>.
func (s Subjects) CoordVote(shard string) (string, error) { return s.reply(ReplyVote, shard) }

// CoordAck is where a shard publishes its acks: <p>.v1.coord.ack.<shard>.
func (s Subjects) CoordAck(shard string) (string, error) { return s.reply(ReplyAck, shard) }

// CoordReply is CoordVote or CoordAck by kind.
func (s Subjects) CoordReply(kind ReplyKind, shard string) (string, error) {
	return s.reply(kind, shard)
}

func (s Subjects) reply(kind ReplyKind, shard string) (string, error) {
	if kind != ReplyVote && kind != ReplyAck {
		return "", fmt.Errorf("natsutil: unknown reply kind %d", kind)
	}
	if err := ValidateShardID(shard); err != nil {
		return "", err
	}
	return s.p + ".coord." + kind.String() + "." + shard, nil
}

// CoordVoteAll matches every shard's votes: <p>.v1.coord.vote.*.
func (s Subjects) CoordVoteAll() string { return s.p + ".coord.vote.*" }

// CoordAckAll matches every shard's acks: <p>.v1.coord.ack.*.
func (s Subjects) CoordAckAll() string { return s.p + ".coord.ack.*" }

// Propose is the intake subject, captured by stream SM_REQ: <p>.v1.req.propose.
func (s Subjects) Propose() string { return s.p + ".req.propose" }

// ProposeFrom is the intake subject of one proposer identity: <p>.v1.req.propose.<id>.
// With NATS permissions that let a proposer's credentials publish only there, the
// token proves who proposed: the intake's per-proposer rate limit keys on it.
func (s Subjects) ProposeFrom(proposer string) (string, error) {
	if why := checkToken(proposer); why != "" {
		return "", &InvalidTokenError{Kind: "proposer id", Value: proposer, Reason: why}
	}
	return s.p + ".req.propose." + proposer, nil
}

// ProposeAny matches every proposer's intake subject: <p>.v1.req.propose.* (stream SM_REQ
// captures it and Propose).
func (s Subjects) ProposeAny() string { return s.p + ".req.propose.*" }

// ParsePropose returns the proposer identity of an intake subject: "" for Propose (no
// identity), the last token for ProposeFrom.
func (s Subjects) ParsePropose(subject string) (string, error) {
	if subject == s.Propose() {
		return "", nil
	}
	id, ok := strings.CutPrefix(subject, s.p+".req.propose.")
	if !ok {
		return "", &InvalidTokenError{Kind: "subject", Value: subject, Reason: "not a proposal subject"}
	}
	if why := checkToken(id); why != "" {
		return "", &InvalidTokenError{Kind: "proposer id", Value: id, Reason: why}
	}
	return id, nil
}

// Status is the leader's linearizable status query (core request): <p>.v1.status.
func (s Subjects) Status() string { return s.p + ".status" }

// Register is where shards announce themselves: <p>.v1.shard.register. It cannot
// prove which shard sent a ShardInfo; deployments with NATS permissions use
// ShardRegister instead and grant no one this subject.
func (s Subjects) Register() string { return s.p + ".shard.register" }

// ShardRegister is one shard's own registration subject: <p>.v1.shard.<shard>.register.
// The coordinator accepts a ShardInfo there only if its shard_id is that token, so
// permissions on it decide who can register (or drain) a shard.
func (s Subjects) ShardRegister(shard string) (string, error) {
	if err := ValidateShardID(shard); err != nil {
		return "", err
	}
	return s.p + ".shard." + shard + ".register", nil
}

// ShardRegisterAll matches every shard's registration subject: <p>.v1.shard.*.register.
func (s Subjects) ShardRegisterAll() string { return s.p + ".shard.*.register" }

// ParseShardRegister returns the shard of <p>.v1.shard.<shard>.register.
func (s Subjects) ParseShardRegister(subject string) (string, error) {
	rest, ok := strings.CutPrefix(subject, s.p+".shard.")
	if ok {
		rest, ok = strings.CutSuffix(rest, ".register")
	}
	if !ok {
		return "", &InvalidTokenError{Kind: "subject", Value: subject, Reason: "not a shard register subject"}
	}
	if err := ValidateShardID(rest); err != nil {
		return "", err
	}
	return rest, nil
}

// EventsAudit is where operator actions are published (stream SM_EVENTS captures it):
// <p>.v1.events.audit.
func (s Subjects) EventsAudit() string { return s.p + ".events.audit" }

// InboxRoot is the root of every client inbox: replies and JetStream acknowledgements
// are sent to subjects under it.
const InboxRoot = "_INBOX"

// InboxPrefix is the inbox prefix of one NATS user: _INBOX.<user>. Permissions let a
// user subscribe only under its own prefix, so nobody reads another's replies; a
// client given credentials connects with nats.CustomInboxPrefix(InboxPrefix(name)).
func InboxPrefix(user string) (string, error) {
	if why := checkToken(user); why != "" {
		return "", &InvalidTokenError{Kind: "user name", Value: user, Reason: why}
	}
	return InboxRoot + "." + user, nil
}

// IsInbox reports whether subject is a client inbox (under InboxRoot): the only
// place a coordinator sends a reply named by a request's Sm-Reply header, so a
// forged header cannot make it publish on a command or vote subject.
func IsInbox(subject string) bool {
	rest, ok := strings.CutPrefix(subject, InboxRoot+".")
	if !ok || rest == "" {
		return false
	}
	for tok := range strings.SplitSeq(rest, ".") {
		if checkToken(tok) != "" {
			return false
		}
	}
	return true
}

// EventsMatch is where decided matches are published, captured by stream SM_EVENTS:
// <p>.v1.events.match.<outcome>, outcome being e.g. "committed" or "aborted".
func (s Subjects) EventsMatch(outcome string) (string, error) {
	if why := checkToken(outcome); why != "" {
		return "", &InvalidTokenError{Kind: "outcome", Value: outcome, Reason: why}
	}
	return s.p + ".events.match." + outcome, nil
}

// EventsMatchAll matches every decided-match event, <p>.v1.events.match.>: what a
// consumer of decisions filters SM_EVENTS on (the stream also carries operator audit
// records, JSON, on EventsAudit).
func (s Subjects) EventsMatchAll() string { return s.p + ".events.match.>" }

// EventsAll matches every event subject: <p>.v1.events.>.
func (s Subjects) EventsAll() string { return s.p + ".events.>" }

// ParseReply returns the kind and shard of a vote or ack subject. The shard is the
// subject's last token, which is what NATS permissions let only that shard publish to.
func (s Subjects) ParseReply(subject string) (ReplyKind, string, error) {
	rest, ok := strings.CutPrefix(subject, s.p+".coord.")
	if !ok {
		return 0, "", &InvalidTokenError{Kind: "subject", Value: subject, Reason: "not a coordinator reply subject"}
	}
	kindTok, shard, ok := strings.Cut(rest, ".")
	var kind ReplyKind
	switch kindTok {
	case "vote":
		kind = ReplyVote
	case "ack":
		kind = ReplyAck
	default:
		ok = false
	}
	if !ok {
		return 0, "", &InvalidTokenError{Kind: "subject", Value: subject, Reason: "not a vote or ack subject"}
	}
	if err := ValidateShardID(shard); err != nil {
		return 0, "", err
	}
	return kind, shard, nil
}

// ParseShardCmd returns the shard of a command subject <p>.v1.shard.<shard>.cmd.
func (s Subjects) ParseShardCmd(subject string) (string, error) {
	rest, ok := strings.CutPrefix(subject, s.p+".shard.")
	if ok {
		rest, ok = strings.CutSuffix(rest, ".cmd")
	}
	if !ok {
		return "", &InvalidTokenError{Kind: "subject", Value: subject, Reason: "not a shard command subject"}
	}
	if err := ValidateShardID(rest); err != nil {
		return "", err
	}
	return rest, nil
}
