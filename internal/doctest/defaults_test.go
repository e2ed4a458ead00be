package doctest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The docs checked for the defaults they state.
var defaultDocs = []string{"README.md", "docs/operations.md", "docs/policy.md", "docs/security.md", "docs/kubernetes.md", "docs/chaos.md"}

// inlineCommands are the commands an inline "`--flag` (default `X`)" is looked up in
// when the code span does not name one.
var inlineCommands = [][]string{
	{"coordinator", "serve"}, {"coordinator", "dev"}, {"coordinator", "nats"}, {"coordinator", "status"},
	{"coordinator", "prestop"}, {"shardsvc"},
}

// TestDocDefaults compares every default the docs state with the one the binary
// prints in its help: the rows of each table marked `<!-- test: defaults BIN SUB -->`
// (a `--flag` cell and a "default" column) and every inline "`--flag` (default `X`)".
// It reads `--help` of the freshly built binaries, so it holds whatever parses the
// flags (the settings printer of serve and shardsvc, the standard flag package, or
// cobra and pflag): each prints a flag's default after it as `default "X"` or
// `(default X)`.
func TestDocDefaults(t *testing.T) {
	bin := binaries(t)
	checked := 0
	for _, doc := range defaultDocs {
		md := readDoc(t, doc)
		blocks, err := Blocks(md)
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		for _, b := range blocks {
			args, ok := strings.CutPrefix(b.Marker, "defaults ")
			if !ok {
				continue
			}
			if b.Lang != "table" {
				t.Errorf("%s:%d: a defaults marker must precede a table", doc, b.Line)
				continue
			}
			rows := checkDefaultsTable(t, bin, fmt.Sprintf("%s:%d", doc, b.Line), strings.Fields(args), b.Text)
			if rows == 0 {
				t.Errorf("%s:%d: the table marked %q has no `--flag` row", doc, b.Line, b.Marker)
			}
			checked += rows
		}
		checked += checkInlineDefaults(t, bin, doc, md)
	}
	if checked < 10 {
		t.Errorf("only %d defaults checked: the markers or the inline form went missing", checked)
	}
	t.Logf("%d defaults checked", checked)
}

// checkDefaultsTable checks one marked table; it returns the rows checked.
func checkDefaultsTable(t *testing.T, bin, where string, cmd []string, table string) int {
	t.Helper()
	header, rows := TableRows(table)
	col := -1
	for i, h := range header {
		if strings.EqualFold(strings.Trim(h, "* "), "default") {
			col = i
		}
	}
	if col < 0 {
		t.Errorf("%s: the table has no \"default\" column: %q", where, header)
		return 0
	}
	flags := helpDefaults(t, bin, cmd)
	n := 0
	for _, row := range rows {
		flag := ""
		for i, c := range row {
			if m := flagCellRE.FindStringSubmatch(c); m != nil && i != col {
				flag = m[1]
				break
			}
		}
		if flag == "" || col >= len(row) {
			continue // a row about something else than a flag (security.md's limits)
		}
		n++
		got, ok := flags[flag]
		if !ok {
			t.Errorf("%s: `%s --%s`: no such flag in its help", where, strings.Join(cmd, " "), flag)
			continue
		}
		docVal, docHas := docDefault(row[col])
		switch {
		case !docHas && got != nil:
			t.Errorf("%s: `%s --%s`: the doc gives no default (%q), the binary's is %q", where, strings.Join(cmd, " "), flag, row[col], *got)
		case docHas && got == nil:
			t.Errorf("%s: `%s --%s`: the doc says the default is %q, the binary has none", where, strings.Join(cmd, " "), flag, docVal)
		case docHas && !sameValue(docVal, *got):
			t.Errorf("%s: `%s --%s`: the doc says the default is %q, the binary's is %q", where, strings.Join(cmd, " "), flag, docVal, *got)
		}
	}
	return n
}

var (
	flagCellRE = regexp.MustCompile("^`--([a-z][a-z0-9-]*)")
	codeSpanRE = regexp.MustCompile("`([^`]*)`")
	envNameRE  = regexp.MustCompile(`^\$?[A-Z][A-Z0-9_]+$`)
	// "`[coordinator] [SUB] --flag ...` (default `X`)"
	inlineRE = regexp.MustCompile("`((?:coordinator |shardsvc )?(?:[a-z][a-z-]* )?)--([a-z][a-z0-9-]*)[^`]*`\\s*\\(default `([^`]*)`")
)

// docDefault reads a table's default cell: its first code span is the value; a cell
// without one, or whose value is computed, states no literal default (prose such as
// "none", "unlimited", `<--data>/audit.log` or `--raft-addr`).
func docDefault(cell string) (string, bool) {
	if m := codeSpanRE.FindStringSubmatch(cell); m != nil && !computedDefault(m[1]) {
		return strings.Trim(m[1], `"`), true
	}
	return "", false
}

// computedDefault: a documented default that names where the value comes from (a
// placeholder, another flag, an environment variable) rather than the value.
func computedDefault(v string) bool {
	return strings.Contains(v, "<") || strings.HasPrefix(v, "--") || envNameRE.MatchString(v)
}

// checkInlineDefaults checks every "`--flag` (default `X`)" of one doc.
func checkInlineDefaults(t *testing.T, bin, doc, md string) int {
	t.Helper()
	n := 0
	for _, m := range inlineRE.FindAllStringSubmatchIndex(md, -1) {
		line := 1 + strings.Count(md[:m[0]], "\n")
		prefix := strings.Fields(md[m[2]:m[3]])
		flag, want := md[m[4]:m[5]], strings.Trim(md[m[6]:m[7]], `"`)
		// A computed default ("<--data>/audit.log", "SHARDMATCH_ADMIN_TOKEN") is prose:
		// the binary must print no literal one.
		computed := computedDefault(want)
		var cmds [][]string
		switch {
		case len(prefix) == 0:
			cmds = inlineCommands
		case prefix[0] == "shardsvc":
			cmds = [][]string{{"shardsvc"}}
		case prefix[0] == "coordinator":
			cmds = [][]string{prefix}
		default:
			cmds = [][]string{append([]string{"coordinator"}, prefix...)}
		}
		var found []string
		match := false
		for _, c := range cmds {
			got, ok := helpDefaults(t, bin, c)[flag]
			if !ok {
				continue
			}
			v := "(none)"
			if got != nil {
				v = *got
				match = match || !computed && sameValue(want, v)
			} else {
				match = match || computed
			}
			found = append(found, fmt.Sprintf("%s: %s", strings.Join(c, " "), v))
		}
		n++
		switch {
		case len(found) == 0:
			t.Errorf("%s:%d: `--%s` (default `%s`): no command among %v has that flag", doc, line, flag, want, cmds)
		case !match:
			t.Errorf("%s:%d: `--%s` (default `%s`): the binaries say %v", doc, line, flag, want, found)
		case len(found) > 1 && !allSame(found):
			t.Errorf("%s:%d: `--%s` (default `%s`): commands differ (%v); name the command in the code span, e.g. `serve --%s`",
				doc, line, flag, want, found, flag)
		}
	}
	return n
}

func allSame(found []string) bool {
	v := func(s string) string { _, x, _ := strings.Cut(s, ": "); return x }
	for _, f := range found[1:] {
		if !sameValue(v(f), v(found[0])) {
			return false
		}
	}
	return true
}

// sameValue compares a documented default with a printed one: equal strings, equal
// durations ("10m" and "10m0s") or equal numbers ("1048576" and "1.048576e+06").
func sameValue(doc, got string) bool {
	doc, got = strings.TrimSpace(doc), strings.TrimSpace(got)
	if doc == got {
		return true
	}
	if a, err := time.ParseDuration(doc); err == nil {
		if b, err := time.ParseDuration(got); err == nil {
			return a == b
		}
	}
	if a, err := strconv.ParseFloat(doc, 64); err == nil {
		if b, err := strconv.ParseFloat(got, 64); err == nil {
			return a == b
		}
	}
	return false
}

var (
	helpMu    sync.Mutex
	helpCache = map[string]map[string]*string{}
	// A flag's line: "  --name type", "  -name type" (the flag package),
	// "  -n, --name type" (pflag).
	helpFlagRE = regexp.MustCompile(`^\s+(?:-[a-zA-Z], )?--?([a-z][a-z0-9-]*)(?:[ \t=]|$)`)
	// Its default: `default "X"` (the settings printer, and quoted strings in the
	// flag package and pflag) or `(default X)`; "(default: prose)" is not one.
	helpQuotedRE = regexp.MustCompile(`\bdefault "([^"]*)"`)
	helpBareRE   = regexp.MustCompile(`\(default ([^)"][^)]*)\)`)
)

// helpDefaults runs `BIN SUB... --help` and returns each flag's default (nil: none).
func helpDefaults(t *testing.T, bin string, cmd []string) map[string]*string {
	t.Helper()
	key := strings.Join(cmd, " ")
	helpMu.Lock()
	defer helpMu.Unlock()
	if m, ok := helpCache[key]; ok {
		return m
	}
	c := exec.Command(filepath.Join(bin, cmd[0]), append(slices.Clone(cmd[1:]), "--help")...)
	c.Dir = t.TempDir()
	c.Env = cleanEnv()
	out, _ := c.CombinedOutput() // the exit status is the CLI tests' business
	m := parseHelpDefaults(string(out))
	if len(m) == 0 {
		t.Fatalf("`%s --help` lists no flags:\n%s", key, out)
	}
	helpCache[key] = m
	return m
}

// parseHelpDefaults reads the flags and their defaults out of a help text.
func parseHelpDefaults(help string) map[string]*string {
	m := map[string]*string{}
	var name string
	var entry []string
	flush := func() {
		if name == "" {
			return
		}
		text := strings.Join(entry, " ")
		var v *string
		if all := helpQuotedRE.FindAllStringSubmatch(text, -1); all != nil {
			v = &all[len(all)-1][1]
		} else if all := helpBareRE.FindAllStringSubmatch(text, -1); all != nil {
			s := strings.TrimSpace(all[len(all)-1][1])
			if !strings.HasPrefix(s, "$") { // "(default $SHARDMATCH_X)": an environment variable, not a value
				v = &s
			}
		}
		if _, dup := m[name]; !dup {
			m[name] = v
		}
	}
	examples := false // cobra's Examples: command lines, whose flags are no definitions
	for _, line := range strings.Split(help, "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(line, " ") && strings.HasSuffix(t, ":") {
			examples = t == "Examples:"
		}
		if examples {
			flush()
			name, entry = "", nil
			continue
		}
		if f := helpFlagRE.FindStringSubmatch(line); f != nil {
			flush()
			name, entry = f[1], []string{line}
			continue
		}
		if strings.TrimSpace(line) == "" || !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
			flush()
			name, entry = "", nil
			continue
		}
		entry = append(entry, line)
	}
	flush()
	return m
}

// TestParseHelpDefaults: the three help layouts the binaries print, before and after
// the move to cobra.
func TestParseHelpDefaults(t *testing.T) {
	help := strings.Join([]string{
		"settings:",
		"  --admin-addr host:port",
		"      admin HTTP host:port",
		`      (env SHARDMATCH_ADMIN_ADDR, file key admin-addr, default ":8080")`,
		"  --audit-log file",
		"      the trail (default: <--data>/audit.log)",
		"      (env SHARDMATCH_AUDIT_LOG, file key audit-log)",
		"flags:",
		"  -hot float",
		"    \tshare of proposals (default 0.05)",
		"  -log-level string",
		`    	log level (default "warn")`,
		"  -admin-ca file",
		"    \tCA file (default $SHARDMATCH_ADMIN_CA); with it",
		"Examples:",
		"  coordinator serve --id c1 \\",
		"    --nats-url nats://127.0.0.1:4222 --admin-addr 127.0.0.1:8081",
		"Flags:",
		`  -o, --output string         output format (default "table")`,
		"      --policy-timeout duration   bound on one evaluation (default 250ms)",
		"      --bootstrap                 form a new cluster",
		"Global Flags:",
		"      --endpoints strings   admin URLs",
	}, "\n")
	got := parseHelpDefaults(help)
	want := map[string]string{"admin-addr": ":8080", "audit-log": "-", "hot": "0.05", "log-level": "warn", "admin-ca": "-",
		// --nats-url only appears in the examples: not a flag definition
		"output": "table", "policy-timeout": "250ms", "bootstrap": "-", "endpoints": "-"}
	for k, w := range want {
		v, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: not found", k)
		case w == "-" && v != nil:
			t.Errorf("%s: default %q, want none", k, *v)
		case w != "-" && (v == nil || *v != w):
			t.Errorf("%s: default %v, want %q", k, v, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d flags, want %d: %v", len(got), len(want), got)
	}
}
