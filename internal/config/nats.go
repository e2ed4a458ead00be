package config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"

	"github.com/shardmatch/shardmatch/internal/natsutil"
)

// Errors Connect returns at once, without retrying: no number of retries fixes them.
var (
	// ErrNATSAuth: the server refused the credentials (--nats-user/--nats-password,
	// --nats-creds), or the credentials file cannot be read.
	ErrNATSAuth = errors.New("config: NATS refused the credentials")
	// ErrNATSTLS: TLS could not be set up: a certificate or key file is unreadable, the
	// server's certificate is not signed by --nats-tls-ca or not for its host name, the
	// server refused the client certificate, or one side wants TLS and the other not.
	ErrNATSTLS = errors.New("config: NATS TLS failed")
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
	return checkNATSURLs(n.URL)
}

// checkNATSURLs refuses a --nats-url that can never connect (one that does not parse,
// or names no host) at start, rather than retrying it forever. Like nats.go, a URL
// without a scheme is taken as nats://.
// The message never quotes an entry that does not parse: it may hold a password.
func checkNATSURLs(urls string) error {
	all := strings.Split(urls, ",")
	for i, raw := range all {
		raw = strings.TrimSpace(raw)
		s := raw
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("%w: --nats-url: URL %d of %d does not parse as [nats://][user:password@]host[:port]", ErrConfig, i+1, len(all))
		}
		if u.Hostname() == "" {
			return fmt.Errorf("%w: --nats-url %q names no host", ErrConfig, redactURLs(raw))
		}
	}
	return nil
}

// Ping settings of every connection Options makes: a silent connection is declared
// dead after about PingInterval × (MaxPingsOutstanding+1).
const (
	PingInterval        = 500 * time.Millisecond
	MaxPingsOutstanding = 3
)

// Options are the connection options: named, reconnecting forever, with the
// credentials and TLS asked for; reconnects and errors are logged. Giving a CA or a
// client certificate makes TLS mandatory (the connection fails rather than fall back
// to plain text). The certificate files are read again at every (re)connect, so
// rotated certificates are picked up without a restart.
func (n *NATS) Options(name string, log *slog.Logger) []nats.Option {
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(64 << 20),
		// A connection whose peer vanished (a partition, a dead NATS host) is noticed
		// by missed pings only; the library's default takes 4 minutes. After a
		// partition heals, a connection given up for dead is re-dialled within
		// ReconnectWait, while one kept open waits out TCP's retransmission backoff
		// (seconds). So ping often.
		nats.PingInterval(PingInterval), nats.MaxPingsOutstanding(MaxPingsOutstanding),
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
		co, err := CredsOptions(n.Creds)
		if err != nil {
			log.Warn("cannot take the inbox prefix from the credentials; using the default one", "creds", n.Creds, "err", err)
			co = []nats.Option{nats.UserCredentials(n.Creds)}
		}
		opts = append(opts, co...)
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

// CredsOptions are the options of a connection on the credentials file path: the
// credentials, and the inbox prefix _INBOX.<user name> that NATS permissions made by
// 'coordinator nats-auth' let the user subscribe to (replies come nowhere else).
func CredsOptions(path string) ([]nats.Option, error) {
	name, err := CredsUserName(path)
	if err != nil {
		return nil, err
	}
	prefix, err := natsutil.InboxPrefix(name)
	if err != nil {
		return nil, fmt.Errorf("config: the credentials' user name cannot be an inbox token: %w", err)
	}
	return []nats.Option{nats.UserCredentials(path), nats.CustomInboxPrefix(prefix)}, nil
}

// CredsUserName returns the name in the user JWT of a credentials file (what
// 'coordinator nats-auth' sets to "<role>-<id>"), "" if the JWT has none.
func CredsUserName(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok, err := jwt.ParseDecoratedJWT(b)
	if err != nil {
		return "", fmt.Errorf("config: %s: %w", path, err)
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return "", fmt.Errorf("config: %s: not a user JWT: %w", path, err)
	}
	return uc.Name, nil
}

// Connect dials NATS, retrying the first connection with backoff until ctx ends (a
// node may start before its NATS server); once connected it reconnects forever.
// Failures that retrying cannot fix end it at once: ErrNATSAuth and ErrNATSTLS, with
// the cause and the flags to check in the message.
func (n *NATS) Connect(ctx context.Context, name string, log *slog.Logger) (*nats.Conn, error) {
	if err := n.checkFiles(); err != nil {
		return nil, err
	}
	opts := n.Options(name, log)
	wait := 100 * time.Millisecond
	for {
		nc, err := nats.Connect(n.URL, opts...)
		if err == nil {
			return nc, nil
		}
		if perm := n.permanent(err); perm != nil {
			return nil, perm
		}
		log.Warn("nats connect failed; retrying", "url", redactURLs(n.URL), "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("config: connect to NATS at %s: %w (last error: %w)", redactURLs(n.URL), ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// checkFiles reads the credentials and certificate files as the connection will:
// a missing or unparsable one fails every dial the same way, so it is reported
// before dialling.
func (n *NATS) checkFiles() error {
	probe := nats.GetDefaultOptions()
	if n.Creds != "" {
		if err := nats.UserCredentials(n.Creds)(&probe); err != nil {
			return fmt.Errorf("%w: credentials file %s: %w (check --nats-creds)", ErrNATSAuth, n.Creds, err)
		}
	}
	if n.TLSCA != "" {
		if err := nats.RootCAs(n.TLSCA)(&probe); err != nil {
			return fmt.Errorf("%w: %w (check --nats-tls-ca)", ErrNATSTLS, err)
		}
	}
	if n.TLSCert != "" {
		if err := nats.ClientCert(n.TLSCert, n.TLSKey)(&probe); err != nil {
			return fmt.Errorf("%w: %w (check --nats-tls-cert and --nats-tls-key)", ErrNATSTLS, err)
		}
	}
	return nil
}

// permanent wraps err in ErrNATSAuth or ErrNATSTLS if it is a failure that retrying
// cannot fix, and returns nil otherwise.
func (n *NATS) permanent(err error) error {
	at := redactURLs(n.URL)
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired):
		return fmt.Errorf("%w: NATS at %s: %w (check --nats-user, --nats-password, --nats-creds)", ErrNATSAuth, at, err)
	case n.Creds != "" && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)):
		return fmt.Errorf("%w: credentials file %s: %w (check --nats-creds)", ErrNATSAuth, n.Creds, err)
	}
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		record    tls.RecordHeaderError
		op        *net.OpError
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		return fmt.Errorf("%w: NATS at %s: the server's certificate: %w (check --nats-tls-ca and the host in --nats-url)",
			ErrNATSTLS, at, err)
	case errors.As(err, &op) && op.Op == "remote error", // a TLS alert from the server
		errors.Is(err, nats.ErrTLS) && strings.Contains(err.Error(), "after TLS handshake"): // closed on our certificate
		return fmt.Errorf("%w: NATS at %s refused the TLS handshake: %w (check --nats-tls-cert and --nats-tls-key)",
			ErrNATSTLS, at, err)
	case errors.As(err, &record), errors.Is(err, nats.ErrSecureConnRequired), errors.Is(err, nats.ErrSecureConnWanted):
		return fmt.Errorf("%w: NATS at %s: %w (TLS on one side only: check --nats-tls-ca and the server's tls block)",
			ErrNATSTLS, at, err)
	}
	return nil
}

// redactURLs hides the passwords of a comma-separated list of NATS URLs, for logs.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else { // nats://TOKEN@host: the user name is the secret
			u.User = url.User("xxxxx")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
