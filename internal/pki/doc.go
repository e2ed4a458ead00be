// Package pki generates a small certificate authority and the leaf certificates it
// signs, and writes them as PEM files: what mutual TLS between coordinator nodes
// (serve --raft-tls-*) and the admin API need on a development machine, in a
// benchmark, in the chaos runner's secure mode and in tests.
//
// Keys are ECDSA P-256. A leaf is good for both TLS server and client
// authentication, so one certificate per node serves for accepting and for dialing
// peers. Hosts become IP address SANs when they parse as IPs and DNS name SANs
// otherwise. Private keys are written 0600, certificates 0644, each file atomically
// (a temporary file renamed into place) so a process re-reading them during a
// rotation never sees half a file.
//
// For a production cluster, prefer the organisation's CA or cert-manager; this
// package is meant for small installations and throwaway clusters.
package pki
