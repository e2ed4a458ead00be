package main

import (
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/internal/config"
	"github.com/shardmatch/shardmatch/internal/natsauth"
	"github.com/shardmatch/shardmatch/internal/pki"
	"github.com/shardmatch/shardmatch/twophase/cmdsig"
)

// devSecurity is what `coordinator dev --secure` and `coordinator bench --secure` turn on
// in the one-process stack, the same defences a production deployment runs:
//   - the embedded NATS server in operator (JWT) mode with a fresh operator and
//     account, and every connection on its own role's credentials (natsauth): each
//     coordinator node, each shard, and the load driver as a proposer, so a shard can
//     vote only for itself and only coordinators can publish commands;
//   - commands signed by the coordinators and verified by every shard (cmdsig);
//   - NATS over mutual TLS: a throwaway CA, a server certificate for 127.0.0.1 and a
//     client certificate every connection presents.
//
// Raft runs in memory in this process, so its mutual TLS has nothing to protect here;
// the admin API is not served by dev.
type devSecurity struct {
	auth     *natsauth.Deployment
	dir      string // the deployment and every user's .creds, for inspection with the nats CLI
	signer   *cmdsig.Signer
	verifier *cmdsig.Verifier
	tls      *pki.Set // ca, "nats" (server) and "client"
}

// newDevSecurity makes fresh keys and writes them under dir/secure.
func newDevSecurity(dir string) (*devSecurity, error) {
	auth, err := natsauth.Init("", natsauth.Limits{})
	if err != nil {
		return nil, err
	}
	s := &devSecurity{auth: auth, dir: filepath.Join(dir, "secure")}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, err
	}
	if err := auth.Save(filepath.Join(s.dir, "nats-auth")); err != nil {
		return nil, err
	}
	seed, _, err := cmdsig.GenerateSeed()
	if err != nil {
		return nil, err
	}
	if s.signer, err = cmdsig.NewSigner(seed); err != nil {
		return nil, err
	}
	if s.verifier, err = cmdsig.NewVerifier(s.signer.PublicKey()); err != nil {
		return nil, err
	}
	if s.tls, err = pki.WriteSet(filepath.Join(s.dir, "tls"), nil, "nats", "client"); err != nil {
		return nil, err
	}
	return s, nil
}

// configureServer is natsembed.EmbeddedConfig.Configure: operator mode, and mutual TLS
// required of every client.
func (s *devSecurity) configureServer(opts *server.Options) error {
	srv := s.tls.Certs["nats"]
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CaFile: s.tls.CAFile, Verify: true})
	if err != nil {
		return err
	}
	opts.TLSConfig, opts.TLS, opts.TLSVerify, opts.TLSTimeout = tc, true, true, 2
	return s.auth.ConfigureServer(opts)
}

// dialOptions are the connection options of identity id in role: its own credentials
// (written to dir/secure/<role>-<id>.creds) and its own inbox prefix, the only one its
// permissions let it subscribe to.
func (s *devSecurity) dialOptions(role natsauth.Role, id string) ([]nats.Option, error) {
	path, err := s.auth.WriteUser(s.dir, role, id)
	if err != nil {
		return nil, err
	}
	opts, err := config.CredsOptions(path)
	if err != nil {
		return nil, err
	}
	cl := s.tls.Certs["client"]
	return append(opts, nats.RootCAs(s.tls.CAFile), nats.ClientCert(cl.CertFile, cl.KeyFile)), nil
}
