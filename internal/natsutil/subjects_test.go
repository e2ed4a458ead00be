package natsutil_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/shardmatch/shardmatch/internal/natsutil"
)

func TestSubjectsDefaultPrefix(t *testing.T) {
	s := natsutil.MustSubjects("")
	must := func(v string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct{ got, want string }{
		{must(s.ShardCmd("eu-1")), "sm.v1.shard.eu-1.cmd"},
		{s.ShardCmdAll(), "sm.v1.shard.*.cmd"},
		{must(s.CoordVote("eu-1")), "sm.v1.coord.vote.eu-1"},
		{must(s.CoordAck("eu-1")), "sm.v1.coord.ack.eu-1"},
		{must(s.CoordReply(natsutil.ReplyAck, "x")), "sm.v1.coord.ack.x"},
		{s.CoordVoteAll(), "sm.v1.coord.vote.*"},
		{s.CoordAckAll(), "sm.v1.coord.ack.*"},
		{s.Propose(), "sm.v1.req.propose"},
		{s.Status(), "sm.v1.status"},
		{s.Register(), "sm.v1.shard.register"},
		{must(s.EventsMatch("committed")), "sm.v1.events.match.committed"},
		{s.EventsAll(), "sm.v1.events.>"},
		{s.Prefix(), "sm"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if n := s.Streams(); n != (natsutil.StreamNames{Req: "SM_REQ", Cmd: "SM_CMD", Events: "SM_EVENTS"}) {
		t.Errorf("Streams() = %+v", n)
	}
}

func TestSubjectsCustomPrefix(t *testing.T) {
	s, err := natsutil.NewSubjects("acme.eu")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ShardCmd("s1"); got != "acme.eu.v1.shard.s1.cmd" {
		t.Errorf("ShardCmd = %q", got)
	}
	if n := s.Streams(); n.Cmd != "ACME_EU_CMD" || n.Req != "ACME_EU_REQ" || n.Events != "ACME_EU_EVENTS" {
		t.Errorf("Streams() = %+v", n)
	}
	for _, bad := range []string{"a..b", ".sm", "sm.", "s m", "sm.*", "sm.>", "a/b", "tab\tx"} {
		if _, err := natsutil.NewSubjects(bad); !errors.Is(err, natsutil.ErrInvalidToken) {
			t.Errorf("NewSubjects(%q) = %v, want ErrInvalidToken", bad, err)
		}
	}
}

func TestValidateShardID(t *testing.T) {
	for _, ok := range []string{"s1", "eu-west_3", "realm:42", "Ω", strings.Repeat("x", natsutil.MaxTokenLen)} {
		if err := natsutil.ValidateShardID(ok); err != nil {
			t.Errorf("ValidateShardID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "*", ">", "a*", "a>", "a b", "a\tb", "a\nb", "a/b", `a\b`, "a\x00b", "\xff",
		"a\u00a0b", strings.Repeat("x", natsutil.MaxTokenLen+1)} {
		err := natsutil.ValidateShardID(bad)
		var te *natsutil.InvalidTokenError
		if !errors.Is(err, natsutil.ErrInvalidToken) || !errors.As(err, &te) || te.Kind != "shard id" || te.Value != bad {
			t.Errorf("ValidateShardID(%q) = %v, want a shard id *InvalidTokenError", bad, err)
		}
	}
	s := natsutil.MustSubjects("sm")
	if _, err := s.ShardCmd("a.b"); !errors.Is(err, natsutil.ErrInvalidToken) {
		t.Errorf("ShardCmd(a.b) = %v", err)
	}
	if _, err := s.CoordVote("*"); !errors.Is(err, natsutil.ErrInvalidToken) {
		t.Errorf("CoordVote(*) = %v", err)
	}
	if _, err := s.EventsMatch("a.b"); !errors.Is(err, natsutil.ErrInvalidToken) {
		t.Errorf("EventsMatch(a.b) = %v", err)
	}
}

func TestParseSubjects(t *testing.T) {
	s := natsutil.MustSubjects("sm")
	for _, c := range []struct {
		subject string
		kind    natsutil.ReplyKind
		shard   string
	}{
		{"sm.v1.coord.vote.s1", natsutil.ReplyVote, "s1"},
		{"sm.v1.coord.ack.eu-2", natsutil.ReplyAck, "eu-2"},
	} {
		k, sh, err := s.ParseReply(c.subject)
		if err != nil || k != c.kind || sh != c.shard {
			t.Errorf("ParseReply(%q) = %v %q %v", c.subject, k, sh, err)
		}
	}
	for _, bad := range []string{"sm.v1.coord.vote", "sm.v1.coord.vote.", "sm.v1.coord.vote.a.b", "sm.v1.coord.nope.s1",
		"other.v1.coord.vote.s1", "sm.v1.coord.ack.*"} {
		if _, _, err := s.ParseReply(bad); !errors.Is(err, natsutil.ErrInvalidToken) {
			t.Errorf("ParseReply(%q) = %v", bad, err)
		}
	}
	if sh, err := s.ParseShardCmd("sm.v1.shard.s9.cmd"); err != nil || sh != "s9" {
		t.Errorf("ParseShardCmd = %q %v", sh, err)
	}
	for _, bad := range []string{"sm.v1.shard.cmd", "sm.v1.shard.a.b.cmd", "sm.v1.shard.s1.cmdx", "sm.v1.shard.register"} {
		if _, err := s.ParseShardCmd(bad); err == nil {
			t.Errorf("ParseShardCmd(%q) succeeded", bad)
		}
	}
}

func TestIdentitySubjects(t *testing.T) {
	s := natsutil.MustSubjects("acme.sm")
	p, err := s.ProposeFrom("mm-eu")
	if err != nil || p != "acme.sm.v1.req.propose.mm-eu" {
		t.Fatalf("ProposeFrom = %q, %v", p, err)
	}
	if id, err := s.ParsePropose(p); err != nil || id != "mm-eu" {
		t.Fatalf("ParsePropose(%q) = %q, %v", p, id, err)
	}
	if id, err := s.ParsePropose(s.Propose()); err != nil || id != "" {
		t.Fatalf("ParsePropose(anonymous) = %q, %v", id, err)
	}
	for _, bad := range []string{"acme.sm.v1.req.propose.a.b", "acme.sm.v1.req.proposeX", "sm.v1.req.propose.x"} {
		if _, err := s.ParsePropose(bad); !errors.Is(err, natsutil.ErrInvalidToken) {
			t.Errorf("ParsePropose(%q) err = %v, want natsutil.ErrInvalidToken", bad, err)
		}
	}
	if _, err := s.ProposeFrom("a.b"); !errors.Is(err, natsutil.ErrInvalidToken) {
		t.Errorf("ProposeFrom(a.b) err = %v", err)
	}
	r, err := s.ShardRegister("s1")
	if err != nil || r != "acme.sm.v1.shard.s1.register" {
		t.Fatalf("ShardRegister = %q, %v", r, err)
	}
	if sh, err := s.ParseShardRegister(r); err != nil || sh != "s1" {
		t.Fatalf("ParseShardRegister = %q, %v", sh, err)
	}
	if _, err := s.ParseShardRegister("acme.sm.v1.shard.s1.cmd"); !errors.Is(err, natsutil.ErrInvalidToken) {
		t.Errorf("ParseShardRegister(cmd) err = %v", err)
	}
	if in, err := natsutil.InboxPrefix("s1"); err != nil || in != "_INBOX.s1" {
		t.Fatalf("natsutil.InboxPrefix = %q, %v", in, err)
	}
	for subj, want := range map[string]bool{"_INBOX.abc": true, "_INBOX.s1.xyz": true, "_INBOX": false, "_INBOX.": false,
		"_INBOX.a..b": false, "acme.sm.v1.shard.s1.cmd": false, "_INBOX.*": false, "_INBOXx.a": false} {
		if got := natsutil.IsInbox(subj); got != want {
			t.Errorf("natsutil.IsInbox(%q) = %v, want %v", subj, got, want)
		}
	}
}
