package doctest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDocCommands: every CLI command the operator's guide lists in a table marked
// `<!-- test: commands -->` exists, and takes the flags the table shows. A command
// exists when its parent's help lists it (`coordinator txn --help` names `list`), so
// no command is run to find out; the flags are read from the command's own --help,
// except under `chaos`, whose commands the test never calls.
func TestDocCommands(t *testing.T) {
	bin := binaries(t)
	n := 0
	for _, doc := range defaultDocs {
		blocks, err := Blocks(readDoc(t, doc))
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		for _, b := range blocks {
			if b.Marker != "commands" {
				continue
			}
			_, rows := TableRows(b.Text)
			for _, row := range rows {
				for _, m := range codeSpanRE.FindAllStringSubmatch(row[0], -1) {
					for _, c := range expandCommand(m[1]) {
						n++
						checkCommand(t, bin, fmt.Sprintf("%s:%d", doc, b.Line), c)
					}
				}
			}
		}
	}
	if n < 20 {
		t.Errorf("only %d commands checked: a marker went missing", n)
	}
}

// docCommand is one command line of the guide: the words naming the command and the
// flags it shows.
type docCommand struct {
	words []string
	flags []string
}

var docFlagRE = regexp.MustCompile(`(?:^|[\s\[])(--?[a-z][a-z0-9-]*)`)

// expandCommand reads "coordinator txn list [--state S] [--all]" and
// "coordinator policy test|eval" (one command per alternative).
func expandCommand(s string) []docCommand {
	fields := strings.Fields(s)
	var words []string
	var alts []string
	i := 0
	for ; i < len(fields); i++ {
		f := fields[i]
		if strings.HasPrefix(f, "-") || strings.ContainsAny(f, "[<") || f != strings.ToLower(f) {
			break
		}
		if strings.Contains(f, "|") {
			alts = strings.Split(f, "|")
			i++
			break
		}
		words = append(words, f)
	}
	var flags []string
	for _, m := range docFlagRE.FindAllStringSubmatch(strings.Join(fields[i:], " "), -1) {
		flags = append(flags, m[1])
	}
	if alts == nil {
		return []docCommand{{words: words, flags: flags}}
	}
	var out []docCommand
	for _, a := range alts {
		out = append(out, docCommand{words: append(append([]string{}, words...), a), flags: flags})
	}
	return out
}

// checkCommand checks that c exists and that its help shows its flags.
func checkCommand(t *testing.T, bin, where string, c docCommand) {
	t.Helper()
	name := strings.Join(c.words, " ")
	if len(c.words) == 0 || (c.words[0] != "coordinator" && c.words[0] != "shardsvc") {
		t.Errorf("%s: %q is not a coordinator or shardsvc command", where, name)
		return
	}
	// Each word is listed by the help of the command before it, which exists (its
	// --help exits 0: an unknown command's does not, whatever it prints).
	for i := 1; i < len(c.words); i++ {
		parent := strings.Join(c.words[:i], " ")
		out, code := help(t, bin, c.words[:i])
		if code != 0 {
			t.Errorf("%s: `%s`: `%s --help` exits %d:\n%s", where, name, parent, code, firstLines(out, 3))
			return
		}
		if !regexp.MustCompile(`(?m)(^|\s)` + regexp.QuoteMeta(c.words[i]) + `\b`).MatchString(out) {
			t.Errorf("%s: `%s`: `%s --help` does not list %q", where, name, parent, c.words[i])
			return
		}
	}
	if len(c.flags) == 0 || len(c.words) > 1 && c.words[1] == "chaos" {
		return
	}
	own, _ := help(t, bin, c.words)
	for _, f := range c.flags {
		if !regexp.MustCompile(`(^|[\s,\[])` + regexp.QuoteMeta(f) + `\b`).MatchString(own) {
			t.Errorf("%s: `%s %s`: its --help shows no such flag", where, name, f)
		}
	}
}

// help returns what `BIN SUB... --help` prints (stdout and stderr) and its exit status.
func help(t *testing.T, bin string, words []string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, words[0]), append(slices.Clone(words[1:]), "--help")...)
	cmd.Dir = t.TempDir()
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	code := 0
	if e, ok := err.(*exec.ExitError); ok {
		code = e.ExitCode()
	} else if err != nil {
		t.Fatalf("%s --help: %v", strings.Join(words, " "), err)
	}
	return string(out), code
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
