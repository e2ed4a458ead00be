package runner

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/internal/natsauth"
	"github.com/shardmatch/shardmatch/internal/natsutil"
	"github.com/shardmatch/shardmatch/twophase/cmdsig"
)

// workloadIdentity is the proposer identity of the runner's load driver.
const workloadIdentity = "workload"

// security is a secure run's credentials (Config.Secure), all under work/secure: the
// NATS JWT deployment (`coordinator nats --auth-dir`), one .creds per process in its
// role, and the command signing key with its public key. Every process then runs as a
// production deployment does, so faults are injected into the secured system.
type security struct {
	dir        string
	authDir    string
	auth       *natsauth.Deployment
	signingKey string // seed file for serve --command-signing-key
	verifyKey  string // its public key for shardsvc --command-verify-keys
}

// newSecurity generates the run's credentials under dir.
func newSecurity(dir string) (*security, error) {
	s := &security{dir: dir, authDir: filepath.Join(dir, "nats-auth"), signingKey: filepath.Join(dir, "command-signing.nk")}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var err error
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
	u, err := s.auth.NewUser(role, id, 0)
	if err != nil {
		return "", err
	}
	path := filepath.Join(s.dir, u.Name+".creds")
	return path, natsauth.WriteFileAtomic(path, u.Creds, 0o600)
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
	return []string{"--nats-creds", c, "--command-signing-key", s.signingKey}, nil
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
	name, _ := natsauth.UserName(natsauth.RoleProposer, workloadIdentity)
	inbox, err := natsutil.InboxPrefix(name)
	if err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	return []nats.Option{nats.UserCredentials(c), nats.CustomInboxPrefix(inbox)}, nil
}
