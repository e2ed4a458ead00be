package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shardmatch/shardmatch/coordinator/admin"
	"github.com/shardmatch/shardmatch/internal/testutil"
)

// startDev runs `coordinator dev` in process over the in-memory network with its admin
// APIs on free ports until the test ends, and returns their URLs (node c1's first).
func startDev(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--transport", "inmem", "--admin-addr", "127.0.0.1:0", "--players", "200", "--rate", "50",
			"--log-level", "error", "--data", filepath.Join(t.TempDir(), "data")}, io.Discard, pw)
		_ = pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Error("dev did not stop")
		}
	})
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // status lines nobody reads
			}
		}
		close(lines)
	}()
	re := regexp.MustCompile(`console at (http://\S+)/ui/ \(admin APIs: ([^;]+);`)
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("dev stopped before printing the console's address")
			}
			if m := re.FindStringSubmatch(l); m != nil {
				urls := strings.Fields(m[2])
				if urls[0] != m[1] || len(urls) != 3 {
					t.Fatalf("console %s, admin APIs %v: want the first of three", m[1], urls)
				}
				return urls
			}
		case <-deadline:
			t.Fatal("no console address within 60s")
		}
	}
}

// TestDevServesConsole: `coordinator dev` serves each node's admin API and the console,
// decisions reach /v1/stats, a follower's NOT_LEADER names the leader's URL, and an
// operator action needs no token in dev.
func TestDevServesConsole(t *testing.T) {
	urls := startDev(t)
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(urls[0] + "/ui/"); code != 200 || !strings.Contains(body, "shardmatch console") {
		t.Fatalf("console: %d %.200s", code, body)
	}
	var leader, follower string
	testutil.WaitFor(t, 30*time.Second, "commits in /v1/stats and a leader", func() error {
		leader, follower = "", ""
		for _, u := range urls {
			code, body := get(u + admin.PathStatus)
			var st admin.Status
			if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
				return io.ErrUnexpectedEOF
			}
			if st.Role == "leader" && st.Leading {
				leader = u
			} else {
				follower = u
			}
		}
		var s admin.Stats
		if _, body := get(urls[0] + admin.PathStats); json.Unmarshal([]byte(body), &s) != nil || s.Commits == 0 || leader == "" {
			return io.EOF
		}
		return nil
	})
	resp, err := http.Post(follower+admin.PathLeaderTransfer, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Error admin.Error }
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 421 || e.Error.LeaderAdminURL != leader {
		t.Errorf("transfer on a follower: %d %+v, want 421 naming %s", resp.StatusCode, e.Error, leader)
	}
	resp, err = http.Post(leader+admin.PathLeaderTransfer, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("tokenless leader transfer in dev: %d, want 200", resp.StatusCode)
	}
}
