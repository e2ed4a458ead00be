package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shardmatch/shardmatch/internal/fsutil"
)

// DefaultValidity is how long a certificate is valid when no validity is given.
const DefaultValidity = 365 * 24 * time.Hour

// backdate is how far NotBefore lies before now by default, to absorb clock skew
// between the machine that issues and the ones that verify.
const backdate = time.Hour

// CA is a certificate authority: its certificate and signing key.
type CA struct {
	// Cert is the CA certificate.
	Cert *x509.Certificate
	// Key signs the certificates the CA issues.
	Key crypto.Signer
}

// NewCA generates a self-signed CA named name, valid for validity from an hour ago
// (DefaultValidity when validity is 0).
func NewCA(name string, validity time.Duration) (*CA, error) {
	if name == "" {
		return nil, errors.New("pki: a CA needs a name")
	}
	if validity <= 0 {
		validity = DefaultValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-backdate), NotAfter: now.Add(validity),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: CA %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LoadCA reads a CA certificate and its PKCS#8 key from PEM files (as WriteFiles
// writes them), to issue more certificates from an existing CA.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || cb.Type != "CERTIFICATE" || kb == nil || kb.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("pki: %s and %s must hold a PEM CERTIFICATE and a PEM PRIVATE KEY", certFile, keyFile)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", certFile, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", keyFile, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok || !cert.IsCA {
		return nil, fmt.Errorf("pki: %s is not a CA certificate with a signing key", certFile)
	}
	return &CA{Cert: cert, Key: signer}, nil
}

// CertPEM is the CA certificate as PEM (the content of a --*-ca file).
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// WriteFiles writes the CA certificate (0644) and, when keyFile is not empty, its
// key (0600).
func (ca *CA) WriteFiles(certFile, keyFile string) error {
	if err := fsutil.WriteFileAtomic(certFile, ca.CertPEM(), 0o644); err != nil {
		return err
	}
	if keyFile == "" {
		return nil
	}
	keyPEM, err := keyToPEM(ca.Key)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(keyFile, keyPEM, 0o600)
}

// LeafOptions describe a certificate to issue.
type LeafOptions struct {
	// Name is the subject's common name (informational; verification uses the SANs).
	Name string
	// Hosts are the SANs: IP addresses and DNS names (e.g. "127.0.0.1",
	// "coord-0.coord.ns.svc"). A node's certificate must name the host of its
	// --raft-advertise address.
	Hosts []string
	// NotBefore and NotAfter bound the validity; zero means an hour ago and
	// NotBefore+Validity.
	NotBefore, NotAfter time.Time
	// Validity is used when NotAfter is zero (DefaultValidity when 0).
	Validity time.Duration
	// ServerOnly and ClientOnly restrict the extended key usage; by default a leaf is
	// good for both server and client authentication.
	ServerOnly, ClientOnly bool
}

// Leaf is an issued certificate and its private key.
type Leaf struct {
	// Cert is the certificate.
	Cert *x509.Certificate
	// Key is its private key.
	Key crypto.Signer
}

// Issue signs a new leaf certificate with a fresh P-256 key.
func (ca *CA) Issue(o LeafOptions) (*Leaf, error) {
	if o.ServerOnly && o.ClientOnly {
		return nil, errors.New("pki: ServerOnly and ClientOnly exclude each other")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-backdate)
	}
	if o.NotAfter.IsZero() {
		if o.Validity <= 0 {
			o.Validity = DefaultValidity
		}
		o.NotAfter = o.NotBefore.Add(backdate + o.Validity)
	}
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	switch {
	case o.ServerOnly:
		usage = usage[:1]
	case o.ClientOnly:
		usage = usage[1:]
	}
	name := o.Name
	if name == "" && len(o.Hosts) > 0 {
		name = o.Hosts[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: o.NotBefore, NotAfter: o.NotAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
	}
	for _, h := range o.Hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: issue %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Leaf{Cert: cert, Key: key}, nil
}

// CertPEM is the certificate as PEM.
func (l *Leaf) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: l.Cert.Raw})
}

// KeyPEM is the private key as PKCS#8 PEM.
func (l *Leaf) KeyPEM() ([]byte, error) { return keyToPEM(l.Key) }

// WriteFiles writes the certificate (0644) and its key (0600).
func (l *Leaf) WriteFiles(certFile, keyFile string) error {
	keyPEM, err := l.KeyPEM()
	if err != nil {
		return err
	}
	// The key first: a reader that sees the new certificate then finds its key.
	if err := fsutil.WriteFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(certFile, l.CertPEM(), 0o644)
}

// Bundle is the PEM concatenation of CA certificates: the content of a CA file
// trusting all of them, as during a CA rotation (old and new).
func Bundle(cas ...*CA) []byte {
	var out []byte
	for _, ca := range cas {
		out = append(out, ca.CertPEM()...)
	}
	return out
}

// Pair names a certificate file and its key file.
type Pair struct {
	// CertFile is the PEM certificate.
	CertFile string
	// KeyFile is the PEM (PKCS#8) private key.
	KeyFile string
}

// Set is what WriteSet wrote.
type Set struct {
	// CAFile is the CA certificate: the value of --raft-tls-ca, --admin-ca and
	// --admin-tls-client-ca.
	CAFile string
	// CAKeyFile is the CA's key, to issue more certificates later (LoadCA).
	CAKeyFile string
	// Certs are the issued certificates by name.
	Certs map[string]Pair
	// CA is the authority itself.
	CA *CA
}

// WriteSet generates a CA and, for each name, a certificate for hosts good for
// server and client authentication, into dir (created 0700 if missing): ca.pem,
// ca-key.pem, <name>.pem and <name>-key.pem. hosts empty means 127.0.0.1, ::1 and
// localhost.
func WriteSet(dir string, hosts []string, names ...string) (*Set, error) {
	if dir == "" || len(names) == 0 {
		return nil, errors.New("pki: WriteSet needs a directory and at least one name")
	}
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "::1", "localhost"}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := NewCA("shardmatch CA", 0)
	if err != nil {
		return nil, err
	}
	s := &Set{CAFile: filepath.Join(dir, "ca.pem"), CAKeyFile: filepath.Join(dir, "ca-key.pem"), Certs: map[string]Pair{}, CA: ca}
	if err := ca.WriteFiles(s.CAFile, s.CAKeyFile); err != nil {
		return nil, err
	}
	for _, n := range names {
		if n == "" || strings.ContainsAny(n, `/\`) || n == "ca" || n == "ca-key" {
			return nil, fmt.Errorf("pki: %q is not usable as a certificate name", n)
		}
		if _, dup := s.Certs[n]; dup {
			return nil, fmt.Errorf("pki: certificate name %q given twice", n)
		}
		l, err := ca.Issue(LeafOptions{Name: n, Hosts: hosts})
		if err != nil {
			return nil, err
		}
		p := Pair{CertFile: filepath.Join(dir, n+".pem"), KeyFile: filepath.Join(dir, n+"-key.pem")}
		if err := l.WriteFiles(p.CertFile, p.KeyFile); err != nil {
			return nil, err
		}
		s.Certs[n] = p
	}
	return s, nil
}

func keyToPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// newSerial is a random 128-bit serial number.
func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}
