package admin_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/proto"

	"github.com/shardmatch/shardmatch/clock"
	"github.com/shardmatch/shardmatch/coordinator"
	"github.com/shardmatch/shardmatch/coordinator/admin"
	"github.com/shardmatch/shardmatch/internal/testutil"
	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
	"github.com/shardmatch/shardmatch/twophase"
)

// readToken is the read role's token of the console's cluster.
const readToken = "read-token"

// recordingShard votes YES and remembers which txns it was told to abort.
type recordingShard struct {
	mu     sync.Mutex
	aborts []string
}

func (*recordingShard) Prepare(context.Context, string, []*smv1.ShardPlayer) ([]*smv1.PlayerRejection, error) {
	return nil, nil
}
func (*recordingShard) Commit(context.Context, string, []*smv1.ShardPlayer) error { return nil }
func (s *recordingShard) Abort(_ context.Context, txid string, _ []*smv1.ShardPlayer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aborts = append(s.aborts, txid)
	return nil
}

func (s *recordingShard) aborted(txid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.aborts, txid)
}

// consoleCluster is a real 3-node cluster (Raft, the two-phase driver, participants
// with journals on the in-memory network) with an admin server per node, whose shard
// s2's votes can be silenced so a transaction sticks in PREPARING.
type consoleCluster struct {
	lc     *coordinator.LocalCluster
	shards map[string]*recordingShard
	urls   []string
	mute   atomic.Bool // drop s2's votes
	deaf   atomic.Bool // drop s2's acks: its decisions become dead letters
}

func newConsoleCluster(t *testing.T) *consoleCluster {
	t.Helper()
	ref := clock.NewReal()
	c := &consoleCluster{shards: map[string]*recordingShard{}}
	metrics := map[string]*admin.Metrics{}
	for _, id := range []string{"c1", "c2", "c3"} {
		m, err := admin.NewMetrics(admin.MetricsConfig{NodeID: id})
		if err != nil {
			t.Fatal(err)
		}
		metrics[id] = m
	}
	netw := twophase.NewInmemNetwork(twophase.InmemConfig{Clock: ref})
	t.Cleanup(func() { _ = netw.Close() })
	netw.SetHook(func(from, _ string, msg proto.Message) bool {
		r, ok := msg.(*smv1.ShardReply)
		return !(ok && from == "s2" && (r.GetVote() != nil && c.mute.Load() || r.GetAck() != nil && c.deaf.Load()))
	})
	for _, id := range []string{"s1", "s2"} {
		h := &recordingShard{}
		c.shards[id] = h
		p, err := twophase.NewParticipant(twophase.ParticipantConfig{ShardID: id, Handler: h,
			Journal: twophase.NewMemJournal(), Clock: ref})
		if err != nil {
			t.Fatal(err)
		}
		netw.AddShard(id, p)
	}
	lc, err := coordinator.NewLocalCluster(coordinator.LocalClusterConfig{
		DataDir: t.TempDir(), AttemptTimeout: 30 * time.Second,
		Participants: func(id string) coordinator.TransportFactory {
			return func(h twophase.ReplyHandler) (twophase.Transport, error) { return netw.Coordinator(id, h), nil }
		},
		Configure: func(id string, cfg *coordinator.Config) {
			cfg.Clock = ref
			cfg.OnDecided = metrics[id].ObserveDecision
			cfg.ResendInitial, cfg.ResendMax, cfg.ExpiryScan = 20*time.Millisecond, 200*time.Millisecond, 20*time.Millisecond
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.lc = lc
	var https []*httptest.Server
	var servers []*admin.Server
	t.Cleanup(func() {
		for _, h := range https {
			h.Close()
		}
		lc.Shutdown()
		for _, s := range servers {
			s.Close()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, s := range []string{"s1", "s2"} {
		if err := lc.OnLeader(ctx, func(n *coordinator.Node) error {
			return n.RegisterShard(ctx, &smv1.ShardInfo{ShardId: s, Region: "eu"})
		}); err != nil {
			t.Fatalf("register %s: %v", s, err)
		}
	}
	for i := range lc.Size() {
		srv, err := admin.New(admin.Config{Node: lc.Node(i), AuthToken: token, ReadToken: readToken, Metrics: metrics[lc.Node(i).ID()]})
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, srv)
		h := httptest.NewServer(srv.Handler())
		https = append(https, h)
		c.urls = append(c.urls, h.URL)
	}
	return c
}

// chromiumPath finds a Chromium binary, or skips (fails under CI=true) without one.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium binary on PATH: CI must install it (apt-get install chromium)")
	}
	t.Skip("no chromium binary on PATH (apt-get install chromium); set CI=true to make this a failure")
	return ""
}

// screenshotDir is $SHARDMATCH_SCREENSHOTS, or a temporary directory.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("SHARDMATCH_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// TestConsoleInBrowser loads the console of the leader in headless Chromium: it shows
// the live cluster with no console error, and a click on force-abort of a txn stuck in
// PREPARING (shard s2 never votes) aborts it in the FSM of every node and at both
// shards.
func TestConsoleInBrowser(t *testing.T) {
	chrome := chromiumPath(t)
	// A browser, three nodes and their refreshes: heavy enough to starve the tests
	// judged by latency and aborts if it ran beside them.
	testutil.Exclusive(t, testutil.HeavyProcesses)
	shots := screenshotDir(t)
	c := newConsoleCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, id := range []string{"p-1", "p-2"} {
		if d, err := c.lc.Propose(ctx, duel(id, "alice-"+id, "bob-"+id)); err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
			t.Fatalf("propose %s: %v %v", id, d, err)
		}
	}
	leader, _, err := c.lc.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leaderID := c.lc.NodeID(leader)

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
			chromedp.Headless, chromedp.WindowSize(1280, 1600))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	defer func() { _ = chromedp.Cancel(bctx); cancelBrowser() }()
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	var msgs consoleLog
	msgCtx, stopMsgs := context.WithCancel(bctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range chromedp.Console(msgCtx) {
			if err != nil {
				return
			}
			msgs.add(m)
		}
	}()
	defer func() { stopMsgs(); <-done }()
	shot := func(name string) {
		t.Helper()
		b, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		p := filepath.Join(shots, name+".png")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}

	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			shot("failed-" + strings.ReplaceAll(what, " ", "-"))
			dctx, cancel := context.WithTimeout(bctx, 5*time.Second)
			defer cancel()
			page, _ := chromedp.Run(dctx, chromedp.TextContent(chromedp.CSS("body")))
			t.Fatalf("%s: %v\npage: %s\nconsole: %v", what, err, page, msgs.all())
		}
	}
	step("load the console: reads need the read token",
		chromedp.Navigate(c.urls[leader]+admin.PathUI),
		chromedp.Poll[chromedp.Void](`document.getElementById("banner").textContent.includes("enter the token above")`),
	)
	shot("00-no-token")
	step("enter the tokens",
		chromedp.SendKeys(chromedp.ID("read-token"), readToken),
		chromedp.SendKeys(chromedp.ID("operate-token"), token),
		chromedp.Click(chromedp.ID("save-tokens")),
		chromedp.Poll[chromedp.Void](`sessionStorage.getItem("shardmatch.operate") === "`+token+`"`),
		chromedp.Poll[chromedp.Void](`document.getElementById("leader-id").textContent !== ""`),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll("#peers tbody tr").length === 3`),
		chromedp.Poll[chromedp.Void](`document.getElementById("shard-table").textContent.includes("s2")`),
	)
	// The page shows the cluster's leader (polled: an election on a loaded machine may
	// move it, and the page follows within a refresh).
	eventually(t, 15*time.Second, func() (struct{}, error) {
		shown, err := chromedp.Run(bctx, chromedp.TextContent(chromedp.ID("leader-id")))
		if err != nil {
			return struct{}{}, err
		}
		i, _, err := c.lc.Leader(ctx)
		if err != nil {
			return struct{}{}, err
		}
		if id := c.lc.NodeID(i); shown != id {
			return struct{}{}, fmt.Errorf("the page shows leader %q, the cluster's is %q", shown, id)
		}
		return struct{}{}, nil
	})
	// Until the tokens were in, the reads were refused: the browser logged those 401s.
	tokensIn := msgs.len()
	// Live decisions while the page watches: the chart and the totals move.
	for i := 3; i <= 6; i++ {
		id := fmt.Sprintf("p-%d", i)
		if d, err := c.lc.Propose(ctx, duel(id, "alice-"+id, "bob-"+id)); err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
			t.Fatalf("propose %s: %v %v", id, d, err)
		}
	}
	step("look up a lease",
		chromedp.SendKeys(chromedp.ID("lease-player"), "alice-p-1"),
		chromedp.Click(chromedp.CSS(`#lease-form button`)),
		chromedp.Poll[chromedp.Void](`document.getElementById("lease-result").textContent.includes("ACTIVE")`),
	)
	step("see the commits",
		chromedp.Poll[chromedp.Void](`document.getElementById("totals").textContent.includes("Commits6")`),
	)
	// The stuck txn: s1 votes YES, s2's vote never arrives, the deadline is a minute off.
	c.mute.Store(true)
	stuck := duel("p-stuck", "carol", "dave")
	stuck.PrepareTimeoutMs = time.Minute.Milliseconds()
	decided := make(chan *smv1.Decision, 1)
	go func() {
		d, _ := c.lc.Propose(ctx, stuck)
		decided <- d
	}()
	txid := eventually(t, 10*time.Second, func() (string, error) {
		rec, ok := c.lc.Node(leader).FSM().TxnByProposal("p-stuck")
		if !ok || rec.GetState() != smv1.TxnState_TXN_STATE_PREPARING {
			return "", errNotYet
		}
		return rec.GetTxid(), nil
	})

	step("see the stuck txn",
		chromedp.Poll[chromedp.Void](`document.getElementById("inflight").textContent.includes("`+txid+`")`),
	)
	shot("01-cluster")
	abortBtn := chromedp.JSPath(`[...document.querySelectorAll("#inflight tbody tr")].filter(r => r.textContent.includes("` + txid + `")).map(r => r.querySelector("button.operate"))`)
	step("force-abort the stuck txn",
		clickFresh(abortBtn),
		chromedp.Poll[chromedp.Void](`document.querySelector("#inflight button.confirm") !== null`),
		clickFresh(chromedp.CSS(`#inflight button.confirm`)),
		chromedp.Poll[chromedp.Void](`document.getElementById("banner").textContent.includes("done")`),
	)
	shot("02-force-aborted")

	// s2 votes again, so its ack of the abort can arrive; the abort is decided in every
	// node's FSM and both shards ran it.
	c.mute.Store(false)
	if d := <-decided; d.GetOutcome() != smv1.Outcome_OUTCOME_ABORTED || d.GetReason() != smv1.Reason_REASON_OPERATOR_ABORT {
		t.Fatalf("the stuck proposal's decision: %v", d)
	}
	eventually(t, 15*time.Second, func() (struct{}, error) {
		for i := range c.lc.Size() {
			rec, ok := c.lc.Node(i).FSM().Txn(txid)
			if !ok || rec.GetDecision().GetReason() != smv1.Reason_REASON_OPERATOR_ABORT ||
				(rec.GetState() != smv1.TxnState_TXN_STATE_ABORTED && rec.GetState() != smv1.TxnState_TXN_STATE_DONE) {
				return struct{}{}, errNotYet
			}
		}
		for _, s := range []string{"s1", "s2"} {
			if !c.shards[s].aborted(txid) {
				return struct{}{}, errNotYet
			}
		}
		return struct{}{}, nil
	})
	step("the console shows it gone",
		chromedp.Poll[chromedp.Void](`!document.getElementById("inflight").textContent.includes("`+txid+`")`),
	)
	shot("03-after")

	// A dead letter: s2 never acks p-dl's commit. The page lists it (threshold 0s), and
	// a click on redrive is answered done by the leader (that it sends at once is the
	// driver's unit test: here resends run every 200ms anyway).
	c.deaf.Store(true)
	d, err := c.lc.Propose(ctx, duel("p-dl", "erin", "frank"))
	if err != nil || d.GetOutcome() != smv1.Outcome_OUTCOME_COMMITTED {
		t.Fatalf("propose p-dl: %v %v", d, err)
	}
	dl := d.GetTxid()
	step("see the dead letter",
		chromedp.SetValue(chromedp.ID("dl-age"), "0s"),
		chromedp.Poll[chromedp.Void](`document.getElementById("dl-table").textContent.includes("`+dl+`")`),
	)
	redriveBtn := chromedp.JSPath(`[...document.querySelectorAll("#dl-table tbody tr")].filter(r => r.textContent.includes("` + dl + `")).map(r => r.querySelector("button.operate"))`)
	step("redrive the dead letter",
		clickFresh(redriveBtn),
		chromedp.Poll[chromedp.Void](`document.querySelector("#dl-table button.confirm") !== null`),
		clickFresh(chromedp.CSS(`#dl-table button.confirm`)),
		chromedp.Poll[chromedp.Void](`document.getElementById("banner").textContent.includes("redrive `+dl+`: done")`),
	)
	shot("04-redriven")
	// s2 acks again: the next delivery finishes the txn and the dead letter goes.
	c.deaf.Store(false)
	step("the dead letter is gone once s2 acks",
		chromedp.Poll[chromedp.Void](`!document.getElementById("dl-table").textContent.includes("`+dl+`")`),
	)
	step("transfer leadership",
		clickFresh(chromedp.ID("leader-transfer")),
		chromedp.Poll[chromedp.Void](`document.querySelector("#leader-transfer.confirm") !== null`),
		clickFresh(chromedp.ID("leader-transfer")),
		chromedp.Poll[chromedp.Void](`(t => t !== "" && t !== "`+leaderID+`")(document.getElementById("leader-id").textContent)`),
	)
	shot("05-leader-transferred")
	t.Logf("console messages: %q", msgs.all())
	if bad := msgs.errors(tokensIn); len(bad) > 0 {
		t.Fatalf("console errors:\n%s", strings.Join(bad, "\n"))
	}
}

// clickFresh clicks sel, looking it up again if the page re-rendered the element
// between the lookup and the click (the console refreshes its tables every 2s).
func clickFresh[S chromedp.Selectable](sel S) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		var err error
		for range 5 {
			if _, err = chromedp.Click(sel)(ctx, t); err == nil || !strings.Contains(err.Error(), "Could not find node") {
				return chromedp.Void{}, err
			}
		}
		return chromedp.Void{}, err
	}
}

// consoleLog collects the page's console messages.
type consoleLog struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func (l *consoleLog) add(m chromedp.ConsoleMessage) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, m)
}

func (l *consoleLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.msgs {
		out = append(out, m.String()+" "+m.URL)
	}
	return out
}

// leaderOnlyReads answer NOT_LEADER (421) on a follower, and the page asks again with
// ?stale=true; the browser logs the first, failed fetch, which is no error of the page.
var leaderOnlyReads = []string{"/v1/deadletters"}

func (l *consoleLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.msgs)
}

// errors are the exceptions, console.error/warn calls and browser-log errors, except a
// follower's 421 to a leader-only read, and the 401s of the first tokenless messages.
func (l *consoleLog) errors(tokenless int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for i, m := range l.msgs {
		if m.Type != chromedp.ConsoleError && m.Type != chromedp.ConsoleWarning && !m.IsException() {
			continue
		}
		if m.Source == "network" && strings.Contains(m.Text, "status of 421") &&
			slices.ContainsFunc(leaderOnlyReads, func(p string) bool { return strings.Contains(m.URL, p) }) {
			continue
		}
		if m.Source == "network" && i < tokenless && strings.Contains(m.Text, "status of 401") {
			continue
		}
		out = append(out, m.String()+" "+m.URL)
	}
	return out
}

var errNotYet = &notYet{}

type notYet struct{}

func (*notYet) Error() string { return "not yet" }
