package config

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func newFS() (*flag.FlagSet, *string, *string, *int, *time.Duration) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String(FileFlag, "", "")
	a := fs.String("raft-addr", "default-a", "")
	b := fs.String("name", "default-b", "")
	c := fs.Int("count", 1, "")
	d := fs.Duration("wait", time.Second, "")
	return fs, a, b, c, d
}

func loader(env map[string]string, file string) Loader {
	return Loader{EnvPrefix: "SM",
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		ReadFile:  func(string) ([]byte, error) { return []byte(file), nil }}
}

// Precedence: flag > env > file > default, for every flag independently.
func TestPrecedence(t *testing.T) {
	fs, a, b, c, d := newFS()
	ld := loader(map[string]string{"SM_NAME": "env-b", "SM_COUNT": "7"},
		"# comment\nraft_addr = file-a\nname = \"file-b\"\ncount = 3\n")
	if err := ld.Parse(fs, []string{"--config", "x", "--count", "9"}); err != nil {
		t.Fatal(err)
	}
	if *a != "file-a" || *b != "env-b" || *c != 9 || *d != time.Second {
		t.Errorf("got a=%q b=%q c=%d d=%s", *a, *b, *c, *d)
	}
}

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		env        map[string]string
		file, want string
		args       []string
	}{
		{file: "bogus = 1\n", want: `unknown key "bogus"`},
		{file: "count\n", want: "key = value"},
		{file: "count = x\n", want: "x:1: count"},
		{file: "count = 1\ncount = 2\n", want: "repeats line 1"},
		{env: map[string]string{"SM_WAIT": "soon"}, want: "SM_WAIT"},
		{args: []string{"--nope"}, want: "nope"},
		{args: []string{"stray"}, want: "unexpected argument"},
	} {
		fs, _, _, _, _ := newFS()
		args := c.args
		if c.file != "" {
			args = append(args, "--config", "x")
		}
		err := loader(c.env, c.file).Parse(fs, args)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want ErrConfig mentioning %q", c, err, c.want)
		}
	}
	fs, _, _, _, _ := newFS()
	if err := loader(nil, "").Parse(fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestPrintDefaults(t *testing.T) {
	fs, _, _, _, _ := newFS()
	var b strings.Builder
	Loader{EnvPrefix: "SM"}.PrintDefaults(&b, fs)
	for _, want := range []string{"--raft-addr", "env SM_RAFT_ADDR, file key raft-addr", `default "default-a"`, "env SM_CONFIG"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("listing lacks %q:\n%s", want, b.String())
		}
	}
}

func TestNewLoggerAndNATS(t *testing.T) {
	if _, err := NewLogger(io.Discard, "loud", "json"); !errors.Is(err, ErrConfig) {
		t.Errorf("bad level: %v", err)
	}
	if _, err := NewLogger(io.Discard, "info", "xml"); !errors.Is(err, ErrConfig) {
		t.Errorf("bad format: %v", err)
	}
	for _, n := range []NATS{{}, {URL: "u", TLSCert: "c"}, {URL: "u", Creds: "c", User: "x"}, {URL: "u", Password: "p"}} {
		if err := n.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v", n, err)
		}
	}
	if err := (&NATS{URL: "nats://x", User: "u", Password: "p"}).Validate(); err != nil {
		t.Error(err)
	}
}
