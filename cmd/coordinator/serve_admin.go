package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardmatch/shardmatch/coordinator/admin"
	"github.com/shardmatch/shardmatch/internal/natsutil"
)

// adminSecurity is serve's admin API security settings: TLS, the read role's token,
// the audit log and the listener's limits. (--admin-token, the operate role, is
// serveOptions.adminToken.)
type adminSecurity struct {
	tlsCert, tlsKey, tlsClientCA string
	// ca is the CA serve's own --join trusts when it calls the leader's admin API.
	ca                string
	readToken         string
	auditLog          string
	maxBodyBytes      int64
	maxConnsPerClient int
}

func (a *adminSecurity) register(fs *flag.FlagSet) {
	fs.StringVar(&a.tlsCert, "admin-tls-cert", "", "serve the admin API over HTTPS with this certificate `file` (PEM, with --admin-tls-key); "+
		"re-read when it changes, so a renewal needs no restart")
	fs.StringVar(&a.tlsKey, "admin-tls-key", "", "private key `file` of --admin-tls-cert")
	fs.StringVar(&a.tlsClientCA, "admin-tls-client-ca", "", "CA `file`: a client certificate it verified grants the operate role "+
		"(clients without one, like kubelet probes, still connect)")
	fs.StringVar(&a.ca, "admin-ca", "", "CA `file` --join trusts when it calls an https:// admin API")
	fs.StringVar(&a.readToken, "admin-read-token", "", "bearer `token` (comma-separated list to rotate) of the read role: "+
		"GET /v1/... then needs it or --admin-token (empty: reads are open)")
	fs.StringVar(&a.auditLog, "audit-log", "", "append the audit trail of operator actions to this `file` (default: <--data>/audit.log)")
	fs.Int64Var(&a.maxBodyBytes, "admin-max-body-bytes", admin.DefaultMaxBodyBytes, "largest admin request body; a bigger one is answered 413 "+
		"(the snapshot upload is exempt)")
	fs.IntVar(&a.maxConnsPerClient, "admin-max-conns-per-client", admin.DefaultMaxConnsPerClient,
		"admin connections one client IP may hold open; more are closed at once")
}

func (a *adminSecurity) validate() error {
	switch {
	case (a.tlsCert == "") != (a.tlsKey == ""):
		return errors.New("--admin-tls-cert and --admin-tls-key go together")
	case a.tlsClientCA != "" && a.tlsCert == "":
		return errors.New("--admin-tls-client-ca needs --admin-tls-cert and --admin-tls-key")
	case a.maxBodyBytes < 1024 || a.maxBodyBytes > 1<<30:
		return fmt.Errorf("--admin-max-body-bytes (%d) must be in [1024, %d]", a.maxBodyBytes, 1<<30)
	case a.maxConnsPerClient < 1 || a.maxConnsPerClient > 1<<16:
		return fmt.Errorf("--admin-max-conns-per-client (%d) must be in [1, %d]", a.maxConnsPerClient, 1<<16)
	}
	if _, err := admin.ClientTLS(a.ca); err != nil {
		return err
	}
	return nil
}

// secureListener wraps the admin TCP listener: the per-client connection cap, then
// TLS when a certificate is configured.
func (a *adminSecurity) secureListener(ln net.Listener, log *slog.Logger) (net.Listener, *admin.ConnLimitListener, error) {
	lim := admin.LimitConnsPerClient(ln, a.maxConnsPerClient)
	if a.tlsCert == "" {
		return lim, lim, nil
	}
	tc, err := admin.ServerTLS(admin.ServerTLSConfig{CertFile: a.tlsCert, KeyFile: a.tlsKey, ClientCAFile: a.tlsClientCA, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	return tlsListener(lim, tc), lim, nil
}

// auditor opens the audit log (default <data>/audit.log) and publishes its records on
// <prefix>.v1.events.audit through pub.
func (a *adminSecurity) auditor(data, prefix string, pub admin.AuditPublisher, log *slog.Logger) (*admin.Auditor, error) {
	file := a.auditLog
	if file == "" {
		file = filepath.Join(data, "audit.log")
	}
	subj, err := natsutil.NewSubjects(prefix)
	if err != nil {
		return nil, err
	}
	return admin.NewAuditor(admin.AuditConfig{File: file, Publisher: pub, Subject: subj.EventsAudit(), Logger: log})
}

// adminHTTPServer is the admin API's http.Server, with every timeout set: a slow
// client cannot hold a connection (and its per-client slot) open forever. The snapshot
// endpoints lift the read/write deadlines for their streams themselves. TLS handshake
// failures (scanners, clients without the CA) are logged at debug level.
func adminHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(log.With("component", "admin-http").Handler(), slog.LevelDebug)}
}

// addConnRefusals exports shardmatch_admin_conns_refused_total.
func addConnRefusals(reg *prometheus.Registry, lim *admin.ConnLimitListener) error {
	c := prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: admin.Namespace, Subsystem: "admin", Name: "conns_refused_total",
		Help: "Admin connections closed at once for being over --admin-max-conns-per-client."},
		func() float64 { return float64(lim.Refused()) })
	if err := reg.Register(c); err != nil {
		return fmt.Errorf("metrics: admin connection refusals: %w", err)
	}
	return nil
}

func tlsListener(ln net.Listener, tc *tls.Config) net.Listener { return tls.NewListener(ln, tc) }
