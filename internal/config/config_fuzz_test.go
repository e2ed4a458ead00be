package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"testing"
)

// FuzzConfigFile: any config file either loads or fails with ErrConfig, and it never
// panics; one that loads loads the same again (no hidden state).
func FuzzConfigFile(f *testing.F) {
	f.Add([]byte("# a node\nid = c0\nport = 7000\n\nwait = 2s\nverbose = true\n"))
	f.Add([]byte("id=\nport = x\n"))
	f.Add([]byte("unknown = 1\n"))
	f.Add([]byte("id = a = b\n"))
	f.Fuzz(func(t *testing.T, file []byte) {
		load := func() (string, error) {
			fs := flag.NewFlagSet("fuzz", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			id := fs.String("id", "", "")
			port := fs.Int("port", 0, "")
			wait := fs.Duration("wait", 0, "")
			verbose := fs.Bool("verbose", false, "")
			fs.String(FileFlag, "", "")
			ld := Loader{EnvPrefix: "FUZZ", LookupEnv: func(string) (string, bool) { return "", false },
				ReadFile: func(string) ([]byte, error) { return file, nil }}
			err := ld.Parse(fs, []string{"--" + FileFlag, "node.conf"})
			return fmt.Sprint(*id, *port, *wait, *verbose), err
		}
		got, err := load()
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v is not ErrConfig", err)
			}
			return
		}
		if again, err := load(); err != nil || again != got {
			t.Fatalf("loaded %s, then %s (%v)", got, again, err)
		}
	})
}
