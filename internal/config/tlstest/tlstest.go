package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// PKI is one certificate authority and the certificates it signed, as PEM files.
type PKI struct {
	// CAFile is the CA's certificate (what --nats-tls-ca names).
	CAFile string
	// ServerCertFile and ServerKeyFile are a server certificate for the hosts given to
	// New.
	ServerCertFile, ServerKeyFile string
	// ClientCertFile and ClientKeyFile are a client certificate (mutual TLS).
	ClientCertFile, ClientKeyFile string

	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
}

// New generates a CA called name and a server and a client certificate it signed,
// into dir (files <name>-ca.pem, <name>-server.pem, <name>-server-key.pem,
// <name>-client.pem, <name>-client-key.pem). hosts are the server certificate's IP
// addresses and DNS names; none means 127.0.0.1 and localhost.
func New(dir, name string, hosts ...string) (*PKI, error) {
	if dir == "" || name == "" {
		return nil, errors.New("tlstest: New needs a directory and a name")
	}
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("tlstest: CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	p := &PKI{ca: ca, caKey: caKey, CAFile: filepath.Join(dir, name+"-ca.pem")}
	if err := writePEM(p.CAFile, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	p.ServerCertFile, p.ServerKeyFile, err = p.issue(dir, name+"-server", 2, hosts, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	p.ClientCertFile, p.ClientKeyFile, err = p.issue(dir, name+"-client", 3, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// issue signs a leaf certificate for hosts and writes it and its key.
func (p *PKI) issue(dir, base string, serial int64, hosts []string, usage x509.ExtKeyUsage) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: base},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		return "", "", fmt.Errorf("tlstest: %s: %w", base, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, base+".pem"), filepath.Join(dir, base+"-key.pem")
	if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
		return "", "", err
	}
	return certFile, keyFile, writePEM(keyFile, "PRIVATE KEY", keyDER)
}

// ServerConfig is a TLS configuration for a server presenting the server
// certificate; with verifyClients it also demands a client certificate signed by
// the CA.
func (p *PKI) ServerConfig(verifyClients bool) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(p.ServerCertFile, p.ServerKeyFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if verifyClients {
		pool := x509.NewCertPool()
		pool.AddCert(p.ca)
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
