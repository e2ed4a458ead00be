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

// Status is the leader's linearizable status query (core request): <p>.v1.status.
func (s Subjects) Status() string { return s.p + ".status" }

// Register is where shards announce themselves: <p>.v1.shard.register.
func (s Subjects) Register() string { return s.p + ".shard.register" }

// EventsMatch is where decided matches are published, captured by stream SM_EVENTS:
// <p>.v1.events.match.<outcome>, outcome being e.g. "committed" or "aborted".
func (s Subjects) EventsMatch(outcome string) (string, error) {
	if why := checkToken(outcome); why != "" {
		return "", &InvalidTokenError{Kind: "outcome", Value: outcome, Reason: why}
	}
	return s.p + ".events.match." + outcome, nil
}

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
