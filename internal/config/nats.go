package config

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// NATS is how a long-running command connects to NATS: the --nats-* flags.
type NATS struct {
	URL                    string
	Creds                  string
	User, Password         string
	TLSCA, TLSCert, TLSKey string
}

// Register adds the --nats-* flags to fs.
func (n *NATS) Register(fs *flag.FlagSet) {
	fs.StringVar(&n.URL, "nats-url", nats.DefaultURL, "NATS server `URLs`, comma-separated")
	fs.StringVar(&n.Creds, "nats-creds", "", "NATS credentials `file` (JWT + nkey seed)")
	fs.StringVar(&n.User, "nats-user", "", "NATS user `name`")
	fs.StringVar(&n.Password, "nats-password", "", "NATS `password` (prefer the environment variable)")
	fs.StringVar(&n.TLSCA, "nats-tls-ca", "", "CA certificate `file` that signed the NATS server's certificate")
	fs.StringVar(&n.TLSCert, "nats-tls-cert", "", "client certificate `file` for NATS mutual TLS (with --nats-tls-key)")
	fs.StringVar(&n.TLSKey, "nats-tls-key", "", "client key `file` for NATS mutual TLS")
}

// Validate reports inconsistent options.
func (n *NATS) Validate() error {
	switch {
	case n.URL == "":
		return fmt.Errorf("%w: --nats-url is empty", ErrConfig)
	case (n.TLSCert == "") != (n.TLSKey == ""):
		return fmt.Errorf("%w: --nats-tls-cert and --nats-tls-key go together", ErrConfig)
	case n.Creds != "" && n.User != "":
		return fmt.Errorf("%w: give --nats-creds or --nats-user, not both", ErrConfig)
	case n.Password != "" && n.User == "":
		return fmt.Errorf("%w: --nats-password needs --nats-user", ErrConfig)
	}
	return nil
}

// Options are the connection options: named, reconnecting forever, with the
// credentials and TLS asked for; reconnects and errors are logged.
func (n *NATS) Options(name string, log *slog.Logger) []nats.Option {
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(64 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			log.Warn("nats async error", "subject", subj, "err", err)
		}),
	}
	if n.Creds != "" {
		opts = append(opts, nats.UserCredentials(n.Creds))
	}
	if n.User != "" {
		opts = append(opts, nats.UserInfo(n.User, n.Password))
	}
	if n.TLSCA != "" {
		opts = append(opts, nats.RootCAs(n.TLSCA))
	}
	if n.TLSCert != "" {
		opts = append(opts, nats.ClientCert(n.TLSCert, n.TLSKey))
	}
	return opts
}

// Connect dials NATS, retrying the first connection with backoff until ctx ends (a
// node may start before its NATS server); once connected it reconnects forever.
func (n *NATS) Connect(ctx context.Context, name string, log *slog.Logger) (*nats.Conn, error) {
	wait := 100 * time.Millisecond
	for {
		nc, err := nats.Connect(n.URL, n.Options(name, log)...)
		if err == nil {
			return nc, nil
		}
		log.Warn("nats connect failed; retrying", "url", n.URL, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("config: connect to NATS at %s: %w (last error: %w)", n.URL, ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}
