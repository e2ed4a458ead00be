package natsutil_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/internal/natsutil/natstest"
)

func TestEnsureStreamsIdempotentAndUpdatable(t *testing.T) {
	_, js := natstest.Connect(t, natstest.Start(t))
	ctx := context.Background()

	for range 2 {
		if err := natsutil.EnsureStreams(ctx, js, natsutil.StreamConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]string{"SM_REQ": {"sm.v1.req.propose", "sm.v1.req.propose.*"}, "SM_CMD": {"sm.v1.shard.*.cmd"}, "SM_EVENTS": {"sm.v1.events.>"}}
	for name, subj := range want {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		c := st.CachedInfo().Config
		if !slices.Equal(c.Subjects, subj) || c.Storage != jetstream.FileStorage || c.Duplicates != natsutil.DefaultDedupeWindow ||
			c.MaxAge != natsutil.DefaultMaxAge || c.MaxMsgSize != natsutil.DefaultMaxMsgSize || c.Discard != jetstream.DiscardOld || c.Replicas != 1 {
			t.Errorf("%s config = %+v", name, c)
		}
	}

	// Changed limits are applied in place.
	if err := natsutil.EnsureStreams(ctx, js, natsutil.StreamConfig{DedupeWindow: 30 * time.Second, MaxAge: time.Hour, MaxMsgs: 1000}); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "SM_CMD")
	if err != nil {
		t.Fatal(err)
	}
	if c := st.CachedInfo().Config; c.Duplicates != 30*time.Second || c.MaxAge != time.Hour || c.MaxMsgs != 1000 {
		t.Errorf("updated SM_CMD config = %+v", c)
	}

	// What cannot change fails, naming the stream.
	err = natsutil.EnsureStreams(ctx, js, natsutil.StreamConfig{Storage: jetstream.MemoryStorage})
	if err == nil || !strings.Contains(err.Error(), "SM_REQ") {
		t.Fatalf("storage change = %v", err)
	}

	// Dedupe on Nats-Msg-Id.
	a1, err := js.Publish(ctx, "sm.v1.shard.s1.cmd", []byte("x"), jetstream.WithMsgID("tx1/prepare/s1"))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := js.Publish(ctx, "sm.v1.shard.s1.cmd", []byte("x"), jetstream.WithMsgID("tx1/prepare/s1"))
	if err != nil || !a2.Duplicate || a2.Sequence != a1.Sequence {
		t.Fatalf("second publish = %+v, %v", a2, err)
	}
}

func TestStreamConfigsValidate(t *testing.T) {
	for _, bad := range []natsutil.StreamConfig{
		{Prefix: "a..b"},
		{Replicas: -1},
		{Replicas: 7},
		{Storage: 9},
		{MaxAge: -time.Second},
		{DedupeWindow: time.Hour, MaxAge: time.Minute},
	} {
		if _, err := natsutil.StreamConfigs(bad); err == nil {
			t.Errorf("StreamConfigs(%+v) succeeded", bad)
		}
	}
	cfgs, err := natsutil.StreamConfigs(natsutil.StreamConfig{Prefix: "acme", Replicas: 3, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfgs) != 3 || cfgs[1].Name != "ACME_CMD" || cfgs[1].Subjects[0] != "acme.v1.shard.*.cmd" || cfgs[1].Replicas != 3 ||
		cfgs[1].MaxBytes != 1<<30 || cfgs[1].MaxMsgs != -1 {
		t.Fatalf("configs = %+v", cfgs)
	}
}

// A request stream made before proposers had subjects of their own (only
// <p>.v1.req.propose) is updated in place to take theirs too, keeping its messages.
func TestEnsureStreamsAddsProposerSubjects(t *testing.T) {
	_, js := natstest.Connect(t, natstest.Start(t))
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SM_REQ", Subjects: []string{"sm.v1.req.propose"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "sm.v1.req.propose", []byte("old")); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "sm.v1.req.propose.proposer-mm1", nil); err == nil {
		t.Fatal("the old stream took a proposer subject: the check below proves nothing")
	}
	if err := natsutil.EnsureStreams(ctx, js, natsutil.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "sm.v1.req.propose.proposer-mm1", []byte("new")); err != nil {
		t.Fatalf("after EnsureStreams: %v", err)
	}
	st, err := js.Stream(ctx, "SM_REQ")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := st.Info(ctx); err != nil || info.State.Msgs != 2 {
		t.Fatalf("SM_REQ holds %v messages (%v), want the old one and the new one", info, err)
	}
}

// TestEnsureStreamsConcurrent: coordinators starting together all ensure the same
// streams at once, each on its own connection as separate processes do, and all
// succeed.
func TestEnsureStreamsConcurrent(t *testing.T) {
	for round := range 20 {
		srv := natstest.Start(t)
		const n = 5
		errs := make(chan error, n)
		for range n {
			_, js := natstest.Connect(t, srv)
			go func() { errs <- natsutil.EnsureStreams(context.Background(), js, natsutil.StreamConfig{}) }()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}

// failingCreates fails the first creates of a stream with a JetStream API error, as
// the server did to one of three coordinators starting at once, then creates for real.
type failingCreates struct {
	jetstream.StreamManager
	fails int
	code  jetstream.ErrorCode
}

func (f *failingCreates) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	if f.fails > 0 {
		f.fails--
		return nil, &jetstream.APIError{Code: 500, ErrorCode: f.code, Description: "error creating store for stream"}
	}
	return f.StreamManager.CreateOrUpdateStream(ctx, cfg)
}

// "error creating store for stream" (10049), which one of three chaos coordinators
// starting together met in CI, is retried; an error that retrying does not fix is returned at
// once.
func TestEnsureStreamsRetriesLostCreateRace(t *testing.T) {
	_, js := natstest.Connect(t, natstest.Start(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := natsutil.EnsureStreams(ctx, &failingCreates{StreamManager: js, fails: 2, code: 10049}, natsutil.StreamConfig{}); err != nil {
		t.Fatalf("a failed store creation was not retried: %v", err)
	}
	err := natsutil.EnsureStreams(ctx, &failingCreates{StreamManager: js, fails: 1, code: 10052}, natsutil.StreamConfig{})
	if err == nil {
		t.Fatal("an invalid-config error (10052) was retried into success")
	}
}
