package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// TestSigningKeyCommand: the key file is 0600, the public key is stdout's only line,
// an existing file is never overwritten, and --help exits 0.
func TestSigningKeyCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.nk")
	code, stdout, stderr := runCmd(t, "signing-key", "--out", path)
	pub := strings.TrimSpace(stdout)
	if code != 0 || !strings.HasPrefix(pub, "N") || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	if s, err := loadCommandSigner(path, slog.New(slog.DiscardHandler)); err != nil || s.PublicKey() != pub {
		t.Fatalf("load: %v, %v", s, err)
	}
	if code, _, stderr := runCmd(t, "signing-key", "--out", path); code != 1 || !strings.Contains(stderr, "exists") {
		t.Errorf("overwrite: exit %d, %s", code, stderr)
	}
	for _, c := range []struct {
		args []string
		code int
		in   string
	}{
		{[]string{"signing-key", "--help"}, 0, "--command-verify-keys"},
		{[]string{"help", "signing-key"}, 0, "-out file"},
		{[]string{"help"}, 0, "signing-key"},
		{[]string{"signing-key"}, 2, "--out FILE is required"},
		{[]string{"signing-key", "--out", path, "extra"}, 2, "unexpected argument"},
		{[]string{"serve", "--command-signing-key", path, "--help"}, 0, "SHARDMATCH_COMMAND_SIGNING_KEY"},
	} {
		code, stdout, stderr := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(stdout+stderr, c.in) {
			t.Errorf("%v: exit %d, want %d with %q in:\n%s%s", c.args, code, c.code, c.in, stdout, stderr)
		}
	}
}

// TestMultiProcessSignedCommands runs `coordinator serve --command-signing-key` and
// shards with `--command-verify-keys`: the load driver's matches commit (so the
// processes sign and verify), a forged unsigned COMMIT on s1's command subject is
// refused and counted on /metrics without touching s1's journal, and the same forgery
// on s3, which verifies nothing, is applied (the negative control).
func TestMultiProcessSignedCommands(t *testing.T) {
	testutil.Exclusive(t, testutil.HeavyProcesses)
	d := newDeployment(t)
	keyFile := filepath.Join(d.dir, "signing.nk")
	code, stdout, stderr := runCmd(t, "signing-key", "--out", keyFile)
	if code != 0 {
		t.Fatalf("signing-key: exit %d: %s", code, stderr)
	}
	pub := strings.TrimSpace(stdout)
	d.startNATS()
	d.startCluster(1, "--no-policy", "--command-signing-key", keyFile)
	d.startShard("s1", "--command-verify-keys", pub, "--propose-rate", "20", "--peer-shards", "s2")
	d.shardEnv = []string{"SHARDSVC_COMMAND_VERIFY_KEYS=" + pub} // the environment works too
	d.startShard("s2")
	d.shardEnv = nil
	d.startShard("s3") // verifies nothing
	d.waitRegistered("s1", "s2", "s3")
	testutil.WaitFor(t, 60*time.Second, "signed matches to commit", func() error {
		s, err := d.shardStatus("s1")
		if err != nil {
			return err
		}
		if s.Driver == nil || s.Driver.Committed < 5 {
			return fmt.Errorf("driver %+v", s.Driver)
		}
		return nil
	})

	js, err := jetstream.New(d.connect())
	if err != nil {
		t.Fatal(err)
	}
	for _, shard := range []string{"s1", "s3"} {
		data, err := proto.Marshal(&smv1.ShardCommand{Cmd: &smv1.ShardCommand_Commit{Commit: &smv1.Commit{
			Txid: "forged-" + shard, ShardId: shard, Term: 1 << 40,
			Players: []*smv1.ShardPlayer{{PlayerId: shard + "-p00001", FencingToken: 1 << 40}}}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: "sm.v1.shard." + shard + ".cmd", Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 20*time.Second, "s1 to refuse the forgery and s3 to apply it", func() error {
		text, err := getText(d.shards["s1"].url + "/metrics")
		if err != nil {
			return err
		}
		if v, _ := metricSum(text, "shardmatch_shard_commands_signature_rejected_total", "reason", "unsigned"); v != 1 {
			return fmt.Errorf("s1 refused %v unsigned commands, want 1", v)
		}
		if s3, err := d.shardStatus("s3"); err != nil || s3.Participant.Anomalies != 1 {
			return fmt.Errorf("s3 anomalies %+v (%v): the forgery is not applied without verification", s3.Participant, err)
		}
		return nil
	})
	for shard, want := range map[string]bool{"s1": false, "s3": true} {
		journal, err := getText(d.shards[shard].url + "/v1/journal")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(journal, "forged-"+shard); got != want {
			t.Errorf("%s's journal holds the forged txid: %v, want %v", shard, got, want)
		}
	}
	if s1, err := d.shardStatus("s1"); err != nil || s1.Participant.Anomalies != 0 {
		t.Errorf("s1: %+v, %v", s1.Participant, err)
	}
}
