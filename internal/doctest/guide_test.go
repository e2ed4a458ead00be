package doctest

import (
	"bufio"
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
