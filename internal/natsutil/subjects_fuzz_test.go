package natsutil_test

import (
	"strings"
	"testing"

	"github.com/shardmatch/shardmatch/internal/natsutil"
)

// FuzzSubjects: subject names are chosen by whoever publishes. Every parser either
// refuses a subject or returns tokens that build the same subject back; IsInbox
// accepts only subjects under the inbox root without wildcards or empty tokens.
func FuzzSubjects(f *testing.F) {
	s := natsutil.MustSubjects("sm")
	for _, seed := range []string{"sm.v1.req.propose", "sm.v1.req.propose.proposer-mm1", "sm.v1.shard.s1.register",
		"sm.v1.coord.vote.s1", "sm.v1.coord.ack.s2", "sm.v1.shard.s1.cmd", "_INBOX.abc.def", "_INBOX.*", "sm.v1.req.propose.a.b", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		if id, err := s.ParsePropose(subject); err == nil {
			want := s.Propose()
			if id != "" {
				var berr error
				if want, berr = s.ProposeFrom(id); berr != nil {
					t.Fatalf("ParsePropose(%q) = %q, which ProposeFrom refuses: %v", subject, id, berr)
				}
			}
			if want != subject {
				t.Fatalf("ParsePropose(%q) = %q, which builds %q", subject, id, want)
			}
		}
		if shard, err := s.ParseShardRegister(subject); err == nil {
			if back, err := s.ShardRegister(shard); err != nil || back != subject {
				t.Fatalf("ParseShardRegister(%q) = %q, which builds %q (%v)", subject, shard, back, err)
			}
		}
		if kind, shard, err := s.ParseReply(subject); err == nil {
			if back, err := s.CoordReply(kind, shard); err != nil || back != subject {
				t.Fatalf("ParseReply(%q) = %v %q, which builds %q (%v)", subject, kind, shard, back, err)
			}
		}
		if shard, err := s.ParseShardCmd(subject); err == nil {
			if back, err := s.ShardCmd(shard); err != nil || back != subject {
				t.Fatalf("ParseShardCmd(%q) = %q, which builds %q (%v)", subject, shard, back, err)
			}
		}
		if natsutil.IsInbox(subject) {
			if !strings.HasPrefix(subject, natsutil.InboxRoot+".") || strings.ContainsAny(subject, "*> \t\r\n") || strings.Contains(subject, "..") ||
				strings.HasSuffix(subject, ".") || strings.HasPrefix(subject, s.Prefix()+".") {
				t.Fatalf("IsInbox(%q)", subject)
			}
		}
	})
}
