package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// testTree is a root with a group `txn` holding `get ID`, whose flags come from a
// standard library FlagSet (as serve's do) and from pflag.
func testTree(ran *[]string) *cobra.Command {
	root := Group(&cobra.Command{Use: "tool"})
	txn := Group(&cobra.Command{Use: "txn"})
	get := &cobra.Command{Use: "get ID", Args: ExactArgs(1, "ID"), Example: "  tool txn get 7"}
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	wait := fs.Duration("wait", time.Second, "how long")
	id := fs.String("id", "", "an id")
	AddGoFlags(get.Flags(), fs, GoFlagsOptions{})
	out := AddOutputFlag(get)
	get.RunE = func(c *cobra.Command, args []string) error {
		*ran = append(*ran, args[0]+" "+*id+" "+wait.String()+" "+out.Format)
		if args[0] == "fail" {
			return errors.New("it failed\nbadly")
		}
		return nil
	}
	txn.AddCommand(get)
	root.AddCommand(txn)
	return root
}

func TestExecute(t *testing.T) {
	for _, c := range []struct {
		args     []string
		code     int
		ran      string
		stderr   string // first line
		hintLine bool
	}{
		{[]string{"txn", "get", "7", "--wait", "2s"}, 0, "7  2s table", "", false},
		// Flags after arguments, and a single-dash long flag as the flag package took it.
		{[]string{"txn", "get", "7", "-id", "x", "-o", "json"}, 0, "7 x 1s json", "", false},
		{[]string{"txn", "get", "7", "--wait", "5"}, 2, "", `tool txn get: invalid argument "5" for "--wait" flag: want a Go duration like 5s or 2m`, true},
		{[]string{"txn", "get", "7", "-o", "xml"}, 2, "", `"xml": want table, json or yaml`, true},
		{[]string{"txn", "get"}, 2, "", "tool txn get: missing ID", true},
		{[]string{"txn", "get", "1", "2"}, 2, "", `tool txn get: unexpected argument "2"`, true},
		{[]string{"txn", "frob"}, 2, "", `tool txn: unknown command "frob": want one of get`, true},
		{[]string{}, 2, "", "tool: missing command: want one of", true},
		{[]string{"txn", "get", "fail"}, 1, "fail  1s table", "tool txn get: it failed; badly", false},
	} {
		var ran []string
		var stdout, stderr bytes.Buffer
		code := Execute(context.Background(), testTree(&ran), c.args, &stdout, &stderr)
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		switch {
		case code != c.code:
			t.Errorf("%v: exit %d, want %d (stderr %q)", c.args, code, c.code, stderr.String())
		case strings.Join(ran, "|") != c.ran:
			t.Errorf("%v: ran %q, want %q", c.args, ran, c.ran)
		case c.stderr != "" && !strings.Contains(lines[0], c.stderr):
			t.Errorf("%v: stderr %q, want %q first", c.args, stderr.String(), c.stderr)
		case c.hintLine && (len(lines) != 2 || !strings.HasPrefix(lines[1], "Run '") || !strings.HasSuffix(lines[1], " --help' for usage.")):
			t.Errorf("%v: stderr %q: want one line and the --help hint", c.args, stderr.String())
		case !c.hintLine && c.stderr != "" && len(lines) != 1:
			t.Errorf("%v: stderr %q: want one line", c.args, stderr.String())
		}
	}
}

// A single-dash word is rewritten only when it names a long flag of the command: -o
// stays a shorthand, and arguments after -- are left alone.
func TestNormaliseArgs(t *testing.T) {
	var ran []string
	root := testTree(&ran)
	got := normaliseArgs(root, []string{"txn", "get", "-id=7", "-wait", "1s", "-o", "json", "-nope", "--", "-id"})
	want := []string{"txn", "get", "--id=7", "--wait", "1s", "-o", "json", "-nope", "--", "-id"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("normaliseArgs = %q, want %q", got, want)
	}
}
