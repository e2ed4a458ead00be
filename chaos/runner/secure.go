package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/coordinator/admin"
	"github.com/shardmatch/shardmatch/internal/config"
	"github.com/shardmatch/shardmatch/internal/natsauth"
	"github.com/shardmatch/shardmatch/internal/pki"
	"github.com/shardmatch/shardmatch/twophase/cmdsig"
)

// workloadIdentity is the proposer identity of the runner's load driver.
const workloadIdentity = "workload"

// security is a secure run's credentials (Config.Secure), all under work/secure: the
// NATS JWT deployment (`coordinator nats --auth-dir`), one .creds per process in its
// role, the command signing key with its public key, a CA with one certificate per
// coordinator (its IP) for Raft mutual TLS and its HTTPS admin API, and the admin
// API's operate and read tokens. Every process then runs as a production deployment
// does, so faults are injected into the secured system; the runner itself talks to
// the admin APIs over HTTPS with the operate token.
type security struct {
	dir         string
	authDir     string
	auth        *natsauth.Deployment
	signingKey  string // seed file for serve --command-signing-key
	verifyKey   string // its public key for shardsvc --command-verify-keys
	ca          *pki.CA
	caFile      string
	operate     string // --admin-token
	read        string // --admin-read-token
	coordCerts  map[string]pki.Pair
	coordHosts  map[string]string
	adminClient *http.Client
}

// newSecurity generates the run's credentials under dir; coordHosts maps each
// coordinator to the IP its certificate names.
func newSecurity(dir string, coordHosts map[string]string) (*security, error) {
	s := &security{dir: dir, authDir: filepath.Join(dir, "nats-auth"), signingKey: filepath.Join(dir, "command-signing.nk"),
		caFile: filepath.Join(dir, "tls", "ca.pem"), coordCerts: map[string]pki.Pair{}, coordHosts: coordHosts}
	if err := os.MkdirAll(filepath.Join(dir, "tls"), 0o700); err != nil {
		return nil, err
	}
	var err error
	if s.ca, err = pki.NewCA("shardmatch chaos CA", 0); err != nil {
		return nil, err
	}
	if err := s.ca.WriteFiles(s.caFile, filepath.Join(dir, "tls", "ca-key.pem")); err != nil {
		return nil, err
	}
	for name, host := range coordHosts {
		leaf, err := s.ca.Issue(pki.LeafOptions{Name: name, Hosts: []string{host}})
		if err != nil {
			return nil, err
		}
		p := pki.Pair{CertFile: filepath.Join(dir, "tls", name+".pem"), KeyFile: filepath.Join(dir, "tls", name+"-key.pem")}
		if err := leaf.WriteFiles(p.CertFile, p.KeyFile); err != nil {
			return nil, err
		}
		s.coordCerts[name] = p
	}
	if s.operate, err = randomToken(); err != nil {
		return nil, err
	}
	if s.read, err = randomToken(); err != nil {
		return nil, err
	}
	hc, err := admin.NewHTTPClient(s.caFile, 3*time.Second)
	if err != nil {
		return nil, err
	}
	hc.Transport = bearer{token: s.operate, next: hc.Transport}
	s.adminClient = hc
	if s.auth, err = natsauth.Init("", natsauth.Limits{}); err != nil {
		return nil, err
	}
	if err := s.auth.Save(s.authDir); err != nil {
		return nil, err
	}
	if s.verifyKey, err = cmdsig.WriteSeedFile(s.signingKey); err != nil {
		return nil, err
	}
	return s, nil
}

// creds writes the credentials of id in role and returns the file.
func (s *security) creds(role natsauth.Role, id string) (string, error) {
	return s.auth.WriteUser(s.dir, role, id)
}

// natsArgs, coordinatorArgs and shardArgs are what each process adds to its command
// line in a secure run.
func (s *security) natsArgs() []string {
	return []string{"--auth-dir", filepath.Join(s.authDir, natsauth.ServerDir)}
}

func (s *security) coordinatorArgs(id string) ([]string, error) {
	c, err := s.creds(natsauth.RoleCoordinator, id)
	if err != nil {
		return nil, err
	}
	p, ok := s.coordCerts[id]
	if !ok {
		return nil, fmt.Errorf("runner: no certificate for %s", id)
	}
	return []string{"--nats-creds", c, "--command-signing-key", s.signingKey,
		"--raft-tls-cert", p.CertFile, "--raft-tls-key", p.KeyFile, "--raft-tls-ca", s.caFile,
		"--admin-tls-cert", p.CertFile, "--admin-tls-key", p.KeyFile, "--admin-ca", s.caFile}, nil
}

// coordinatorEnv carries the admin tokens (kept off the command line, as a Secret would).
func (s *security) coordinatorEnv() []string {
	return []string{"SHARDMATCH_ADMIN_TOKEN=" + s.operate, "SHARDMATCH_ADMIN_READ_TOKEN=" + s.read}
}

// randomToken is 32 random bytes in hex.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// bearer adds the operate token to every request the runner makes (status reads, fault
// injection, final-state reads), as an operator's tooling would.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func (s *security) shardArgs(id string) ([]string, error) {
	c, err := s.creds(natsauth.RoleShard, id)
	if err != nil {
		return nil, err
	}
	return []string{"--nats-creds", c, "--command-verify-keys", s.verifyKey}, nil
}

// workloadOptions are the load driver's NATS options: a proposer's credentials and
// the inbox its permissions let it read.
func (s *security) workloadOptions() ([]nats.Option, error) {
	c, err := s.creds(natsauth.RoleProposer, workloadIdentity)
	if err != nil {
		return nil, err
	}
	return config.CredsOptions(c)
}

// verifyInEffect checks, on the running deployment, that the defences are on and not
// just configured: NATS refuses a connection without credentials, a coordinator's
// admin API refuses plain HTTP, and its operate endpoints refuse a call without the
// token. A secure run that would silently test an open system fails its setup instead.
func (s *security) verifyInEffect(ctx context.Context, d *deployment) error {
	nc, err := nats.Connect(d.natsURL(), nats.Name("chaos-unauthenticated"), nats.MaxReconnects(0))
	if err == nil {
		nc.Close()
		return fmt.Errorf("%w: secure run: NATS took a connection without credentials", ErrSetup)
	}
	c := d.coords[0]
	plain := &http.Client{Timeout: 3 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+netipPort(c.host.IP.String(), coordAdminPort)+"/v1/status", nil)
	if resp, err := plain.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return fmt.Errorf("%w: secure run: %s's admin API answered plain HTTP", ErrSetup, c.name)
		}
	}
	noToken, err := admin.NewHTTPClient(s.caFile, 3*time.Second)
	if err != nil {
		return err
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, c.admin+"/v1/leader/transfer", nil)
	resp, err := noToken.Do(req)
	if err != nil {
		return fmt.Errorf("%w: secure run: %s's admin API over HTTPS: %v", ErrSetup, c.name, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("%w: secure run: an operate call without a token got %d, want 401", ErrSetup, resp.StatusCode)
	}
	return nil
}
