package doctest

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

var metricNameRE = regexp.MustCompile(`\bshardmatch_[a-z0-9_]+`)

// onFirstEvent are the metrics with no series until their first event (one series per
// label value, made when it first occurs), which a short run may not see.
var onFirstEvent = map[string]bool{
	"shardmatch_policy_denials_total": true, // {code}: from a proposal's first denial of that code
}

// checkGuideMetrics: every metric the operator's guide names (its alerts above all)
// is one the running coordinators or shards export, so an alert written from the
// guide does not watch a series that never exists.
func checkGuideMetrics(t *testing.T, admins, shards []string) {
	t.Helper()
	named := map[string]bool{}
	for _, m := range metricNameRE.FindAllString(readDoc(t, "docs/operations.md"), -1) {
		named[m] = true
	}
	if len(named) == 0 {
		t.Fatal("docs/operations.md names no shardmatch_ metric")
	}
	exported := map[string]bool{}
	urls := append([]string{}, admins...)
	for _, s := range shards {
		urls = append(urls, "http://"+strings.TrimSuffix(s, "/status"))
	}
	for _, u := range urls {
		for name := range scrapeNames(t, u+"/metrics") {
			exported[name] = true
		}
	}
	var missing []string
	for m := range named {
		if !exported[m] && !exported[m+"_bucket"] && !onFirstEvent[m] {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("docs/operations.md names metrics that no coordinator or shard exports: %v", missing)
	}
}

// scrapeNames returns the metric names of one Prometheus text exposition, from its
// samples and from its HELP and TYPE lines.
func scrapeNames(t *testing.T, url string) map[string]bool {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && (f[1] == "HELP" || f[1] == "TYPE") {
			names[f[2]] = true
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return names
}

var endpointRE = regexp.MustCompile("`(GET|POST|DELETE|PUT) (/[^`?\\s]*)[^`]*`")

// checkGuideEndpoints: every endpoint of the guide's table marked
// `<!-- test: endpoints -->` is routed by a running coordinator (the chaos-only rows,
// off by default, excepted). The calls carry no token, so an operator action is
// refused (401) before it does anything; a read answers, or names another problem
// (NOT_FOUND of the made-up id, NOT_LEADER) than a missing route.
func checkGuideEndpoints(t *testing.T, admin string) {
	t.Helper()
	blocks, err := Blocks(readDoc(t, "docs/operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range blocks {
		if b.Marker != "endpoints" {
			continue
		}
		_, rows := TableRows(b.Text)
		for _, row := range rows {
			if strings.Contains(strings.Join(row, " "), "chaos testing only") {
				continue
			}
			for _, m := range endpointRE.FindAllStringSubmatch(row[0], -1) {
				n++
				path := regexp.MustCompile(`\{[a-z]+\}`).ReplaceAllString(m[2], "doctest-x")
				req, err := http.NewRequest(m[1], admin+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				c := http.Client{Timeout: 10 * time.Second}
				resp, err := c.Do(req)
				if err != nil {
					t.Errorf("%s %s: %v", m[1], m[2], err)
					continue
				}
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusMethodNotAllowed ||
					resp.StatusCode == http.StatusNotFound && strings.Contains(string(body), "no endpoint") {
					t.Errorf("docs/operations.md documents `%s %s`, which the coordinator does not serve: %s %s",
						m[1], m[2], resp.Status, bytes.TrimSpace(body))
				}
			}
		}
	}
	if n < 15 {
		t.Errorf("docs/operations.md: only %d endpoints checked: the endpoints marker went missing", n)
	}
}
