package doctest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sdkPackages are what a game team imports: the proposer client, the shard SDK and
// the protocol pieces under it.
var sdkPackages = []string{"./client", "./shard", "./twophase", "./twophase/natstransport", "./twophase/cmdsig", "./clock",
	"./proto/shardmatch/v1"}

// forbiddenInSDK are modules a game's binary must not link because of the SDK: the
// coordinator's own machinery.
var forbiddenInSDK = []string{
	"github.com/nats-io/nats-server/",
	"github.com/hashicorp/raft",
	"github.com/open-policy-agent/opa",
	"go.etcd.io/etcd/",
	"github.com/shardmatch/shardmatch/coordinator",
	"github.com/shardmatch/shardmatch/policy",
	"github.com/shardmatch/shardmatch/internal/natsembed",
	"go.opentelemetry.io/otel/sdk",
}

// forbiddenDeps returns the dependencies of pkgs (run in dir) that are forbidden.
func forbiddenDeps(t *testing.T, dir string, env []string, pkgs ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-deps"}, pkgs...)...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %v: %v\n%s", pkgs, err, out)
	}
	var bad []string
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbiddenInSDK {
			if strings.HasPrefix(dep, f) {
				bad = append(bad, dep)
			}
		}
	}
	return bad
}

// The SDK's packages link no NATS server, Raft, OPA, etcd or coordinator code; and
// the check itself sees such a dependency when there is one (the coordinator binary
// has them all).
func TestSDKDependencies(t *testing.T) {
	root := repoRoot(t)
	if bad := forbiddenDeps(t, root, nil, sdkPackages...); len(bad) > 0 {
		t.Errorf("the SDK links %d forbidden packages, first %v", len(bad), bad[:min(5, len(bad))])
	}
	if bad := forbiddenDeps(t, root, nil, "./cmd/coordinator"); len(bad) == 0 {
		t.Error("the check finds nothing forbidden in the coordinator binary: it cannot fail")
	}
}

// A module outside this one imports the SDK, builds, runs a test of its own against
// it (a Participant on a fake clock), and links nothing forbidden. Its go.sum is the
// main module's, so it resolves from the module cache the main build filled.
func TestSDKFromAnotherModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a separate module")
	}
	root := repoRoot(t)
	dir := t.TempDir()
	goVersion := "1.26"
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "go "); ok {
				goVersion = strings.TrimSpace(v)
			}
		}
	}
	files := map[string]string{
		"go.mod": "module example.com/game\n\ngo " + goVersion + "\n\nrequire github.com/shardmatch/shardmatch v0.0.0\n\n" +
			"replace github.com/shardmatch/shardmatch => " + root + "\n",
		"main.go":      sdkExampleMain,
		"game_test.go": sdkExampleTest,
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	files["go.sum"] = string(sum)
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"GOFLAGS=-mod=mod", "GOWORK=off"}
	for _, args := range [][]string{{"build", "./..."}, {"vet", "./..."}, {"test", "-count=1", "./..."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s in the outside module: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if bad := forbiddenDeps(t, dir, env, "."); len(bad) > 0 {
		t.Errorf("a game importing the SDK links %v", bad[:min(5, len(bad))])
	}
}

const sdkExampleMain = `package main

import (
	"context"
	"log"
	"os"
	"os/signal"

	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/client"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/shard"
)

type game struct{}

func (game) Prepare(context.Context, string, []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error) {
	return nil, nil
}
func (game) Commit(context.Context, string, []*smv1.ShardPlayer) error { return nil }
func (game) Abort(context.Context, string, []*smv1.ShardPlayer) error  { return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	nc, err := nats.Connect(os.Getenv("NATS_URL"), nats.MaxReconnects(-1))
	if err != nil {
		log.Fatal(err)
	}
	s, err := shard.Start(ctx, shard.Config{ID: "eu-1", Conn: nc, Game: game{}, JournalPath: "eu-1.journal"})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Stop(context.Background())
	cli, err := client.New(client.Config{Conn: nc})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	<-ctx.Done()
}
`

const sdkExampleTest = `package main

import (
	"context"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/clock"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

func TestParticipantOnAFakeClock(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	p, err := twophase.NewParticipant(twophase.ParticipantConfig{ShardID: "eu-1", Handler: game{},
		Journal: twophase.NewMemJournal(), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.HandleCommand(context.Background(), &smv1.ShardCommand{Cmd: &smv1.ShardCommand_Prepare{
		Prepare: &smv1.Prepare{Txid: "t1", ShardId: "eu-1", Term: 1, Players: []*smv1.ShardPlayer{{PlayerId: "a", FencingToken: 1}}}}})
	if err != nil || r.GetVote().GetVote() != smv1.VoteValue_VOTE_YES {
		t.Fatalf("prepare: %v %v", r, err)
	}
}
`
