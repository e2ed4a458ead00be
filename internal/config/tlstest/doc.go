// Package tlstest generates throwaway certificate authorities and certificates for
// tests of TLS connections (NATS with --nats-tls-*): a CA, a server certificate for
// loopback and a client certificate, written as PEM files into a test's directory.
//
// It is for tests only: the keys are generated fresh, never persisted beyond the given
// directory, and must never be used to protect anything.
package tlstest
