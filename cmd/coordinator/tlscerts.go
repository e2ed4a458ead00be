package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
	"github.com/shardmatch/shardmatch/internal/pki"
)

// newTLSCertsCmd is `coordinator tls-certs --out DIR --hosts H[,H...]`: a new CA and
// one certificate per name (server and client use, SANs = the hosts) as PEM files, for
// Raft mutual TLS (serve --raft-tls-*) on small installations and dev machines.
func newTLSCertsCmd() *cobra.Command {
	return goFlagsCmd(&cobra.Command{
		Use:   "tls-certs --out DIR --hosts H[,H...]",
		Short: "Generate a CA and node certificates for Raft mutual TLS (--raft-tls-*)",
		Long: "Generate a certificate authority (DIR/ca.pem, DIR/ca-key.pem) and, per name, a certificate\n" +
			"good for TLS server and client use (DIR/<name>.pem, DIR/<name>-key.pem), valid for a year. Keys\n" +
			"are written 0600. Give each node serve --raft-tls-cert DIR/<name>.pem --raft-tls-key\n" +
			"DIR/<name>-key.pem --raft-tls-ca DIR/ca.pem. Keep ca-key.pem offline: whoever holds it can mint\n" +
			"a Raft member. The written files are listed on stdout.",
		Example: "  coordinator tls-certs --out DIR --hosts 10.0.0.1,*.coord.ns.svc --names c1,c2,c3",
		Args:    cli.NoArgs,
	}, defineTLSCerts, nil)
}

func defineTLSCerts(fs *flag.FlagSet) legacyRun {
	out := fs.String("out", "", "`directory` to write into (created 0700; one already holding ca.pem is refused)")
	hosts := fs.String("hosts", "", "SANs of every certificate, `host[,host...]`: IPs and DNS names (wildcards such as *.coord.ns.svc work), "+
		"at least the host of each node's --raft-advertise")
	names := fs.String("names", "node", "certificate `name[,name...]`: one certificate per name (e.g. one per node)")
	return func(_ context.Context, _ []string, stdout, stderr io.Writer) int {
		list := func(s string) (out []string) {
			for _, h := range strings.Split(s, ",") {
				if h = strings.TrimSpace(h); h != "" {
					out = append(out, h)
				}
			}
			return out
		}
		if *out == "" || len(list(*hosts)) == 0 || len(list(*names)) == 0 {
			fmt.Fprintln(stderr, "coordinator tls-certs: --out DIR, --hosts and --names are required")
			return 2
		}
		if _, err := os.Stat(filepath.Join(*out, "ca.pem")); !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "coordinator tls-certs: %s already holds ca.pem (or cannot be read): refusing to overwrite\n", *out)
			return 1
		}
		set, err := pki.WriteSet(*out, list(*hosts), list(*names)...)
		if err != nil {
			fmt.Fprintf(stderr, "coordinator tls-certs: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, set.CAFile)
		fmt.Fprintln(stdout, set.CAKeyFile)
		for _, n := range list(*names) {
			fmt.Fprintln(stdout, set.Certs[n].CertFile)
			fmt.Fprintln(stdout, set.Certs[n].KeyFile)
		}
		return 0
	}
}
