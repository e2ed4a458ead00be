package natsauth_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/shardmatch/shardmatch/internal/natsauth"
)

// TestServerTrustHoldsNoSeed: Save writes the server's public half alone in
// DIR/server; LoadServerTrust configures a server from it (or from DIR) with the same
// trust as the full deployment, and refuses a JWT from another deployment.
func TestServerTrustHoldsNoSeed(t *testing.T) {
	d, err := natsauth.Init("", natsauth.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "auth")
	if err := d.Save(dir); err != nil {
		t.Fatal(err)
	}
	sdir := filepath.Join(dir, natsauth.ServerDir)
	ents, err := os.ReadDir(sdir)
	if err != nil {
		t.Fatal(err)
	}
	var seeds []string
	for _, f := range []string{natsauth.FileOperatorSeed, natsauth.FileSystemSeed, natsauth.FileAccountSeed, natsauth.FileSigningSeed} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, strings.TrimSpace(string(b)))
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		b, err := os.ReadFile(filepath.Join(sdir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, seed := range seeds {
			if strings.Contains(string(b), seed) {
				t.Errorf("%s holds a seed", e.Name())
			}
		}
	}
	if len(names) != len(natsauth.ServerFiles) {
		t.Errorf("server dir holds %v, want exactly %v", names, natsauth.ServerFiles)
	}
	want := &server.Options{}
	if err := d.ConfigureServer(want); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{sdir, dir} {
		st, err := natsauth.LoadServerTrust(from)
		if err != nil {
			t.Fatalf("LoadServerTrust(%s): %v", from, err)
		}
		got := &server.Options{}
		if err := st.ConfigureServer(got); err != nil {
			t.Fatal(err)
		}
		if got.SystemAccount != want.SystemAccount || len(got.TrustedOperators) != 1 ||
			got.TrustedOperators[0].Subject != want.TrustedOperators[0].Subject {
			t.Errorf("from %s: operator/system differ: %+v vs %+v", from, got.TrustedOperators, want.TrustedOperators)
		}
	}

	// Another deployment's account JWT is refused.
	other, err := natsauth.Init("", natsauth.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sdir, "account.jwt"), []byte(other.AccountJWT()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := natsauth.LoadServerTrust(sdir); err == nil || !strings.Contains(err.Error(), "account.jwt") {
		t.Errorf("a foreign account JWT was accepted: %v", err)
	}
	if _, err := natsauth.LoadServerTrust(t.TempDir()); !errors.Is(err, natsauth.ErrNoDeployment) {
		t.Errorf("empty dir: %v, want ErrNoDeployment", err)
	}
}
