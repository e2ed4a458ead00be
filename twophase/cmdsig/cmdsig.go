package cmdsig

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/nats-io/nkeys"
)

// Headers of a signed command.
const (
	// HeaderSigner carries the signer's public key, "N..." (an nkey of the server type).
	HeaderSigner = "Sm-Signer"
	// HeaderSig carries the Ed25519 signature, base64url without padding.
	HeaderSig = "Sm-Sig"
)

// Domain and Version start every signed message (see the package doc for the layout).
const (
	Domain  = "shardmatch-cmdsig"
	Version = 1
)

// SigLen is the length of a signature in Sm-Sig: 64 bytes, base64url without padding.
var SigLen = base64.RawURLEncoding.EncodedLen(ed25519.SignatureSize)

var sigEncoding = base64.RawURLEncoding.Strict()

// Reasons a Verifier refuses a command; an *Error wraps one of them, so test with
// errors.Is.
var (
	// ErrUnsigned: the command has no Sm-Sig or no Sm-Signer header.
	ErrUnsigned = errors.New("cmdsig: command is not signed")
	// ErrUnknownSigner: Sm-Signer names a key the verifier does not trust.
	ErrUnknownSigner = errors.New("cmdsig: command signed by an untrusted key")
	// ErrBadSignature: Sm-Sig is malformed, repeated, or not a valid signature of this
	// subject and payload by the named key.
	ErrBadSignature = errors.New("cmdsig: bad command signature")
)

// maxSignerInError bounds how much of an attacker's Sm-Signer an error repeats.
const maxSignerInError = 64

// Error is why a command was refused. Reason is ErrUnsigned, ErrUnknownSigner or
// ErrBadSignature, and errors.Is matches it.
type Error struct {
	Reason error
	// Signer is the Sm-Signer header as received (cut to 64 bytes), "" if absent.
	Signer string
	// Detail says what exactly was wrong.
	Detail string
}

func (e *Error) Error() string {
	s := e.Reason.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Signer != "" {
		s += fmt.Sprintf(" (signer %q)", e.Signer)
	}
	return s
}

// Unwrap returns Reason.
func (e *Error) Unwrap() error { return e.Reason }

func refuse(reason error, signer, format string, a ...any) *Error {
	if len(signer) > maxSignerInError {
		signer = signer[:maxSignerInError] + "…"
	}
	return &Error{Reason: reason, Signer: signer, Detail: fmt.Sprintf(format, a...)}
}

// AppendMessage appends to dst the bytes that are signed for a command published on
// subject with payload: Domain, 0x00, Version, the subject's length (2 bytes, big
// endian), the subject, the payload. It panics if the subject is longer than 65535
// bytes (NATS refuses such subjects long before).
func AppendMessage(dst []byte, subject string, payload []byte) []byte {
	if len(subject) > math.MaxUint16 {
		panic("cmdsig: subject longer than 65535 bytes")
	}
	dst = slices.Grow(dst, len(Domain)+4+len(subject)+len(payload))
	dst = append(dst, Domain...)
	dst = append(dst, 0, Version)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(subject)))
	dst = append(dst, subject...)
	return append(dst, payload...)
}

// Signer signs commands with one server-type nkey. Safe for concurrent use.
type Signer struct {
	pub  string
	priv ed25519.PrivateKey
}

// NewSigner makes a Signer from a seed: the text "SN..." (surrounding blank space is
// ignored), or a file's contents holding one such line (blank lines, lines starting
// with # and "-----" decoration lines, as nk and nsc write them, are skipped). A seed
// of another key type (a user's "SU...", an account's "SA...") is refused.
func NewSigner(seed []byte) (*Signer, error) {
	line, err := findSeed(seed)
	if err != nil {
		return nil, err
	}
	prefix, raw, err := nkeys.DecodeSeed(line)
	if err != nil {
		return nil, fmt.Errorf("cmdsig: seed: %w", err)
	}
	if prefix != nkeys.PrefixByteServer {
		return nil, fmt.Errorf("cmdsig: seed is of a %s key; command signing takes a server key (seed \"SN...\")", prefix)
	}
	priv := ed25519.NewKeyFromSeed(raw)
	clear(raw)
	pub, err := nkeys.Encode(nkeys.PrefixByteServer, priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("cmdsig: public key: %w", err)
	}
	return &Signer{pub: string(pub), priv: priv}, nil
}

// findSeed returns the one "SN..." token of contents.
func findSeed(contents []byte) ([]byte, error) {
	var found []byte
	for line := range bytes.Lines(contents) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' || bytes.HasPrefix(line, []byte("---")) {
			continue
		}
		if found != nil {
			return nil, errors.New("cmdsig: seed: more than one non-blank line; want a single seed \"SN...\"")
		}
		found = line
	}
	if found == nil {
		return nil, errors.New("cmdsig: seed: empty; want a seed \"SN...\"")
	}
	if !bytes.HasPrefix(found, []byte("S")) {
		return nil, errors.New("cmdsig: seed: not an nkey seed (it must start with \"SN\"); is this a public key?")
	}
	return found, nil
}

// PublicKey is the signer's public key, "N...": what shards trust and what Sm-Signer
// carries.
func (s *Signer) PublicKey() string { return s.pub }

// Sign returns the Sm-Sig value for payload published on subject.
func (s *Signer) Sign(subject string, payload []byte) string {
	sig := ed25519.Sign(s.priv, AppendMessage(nil, subject, payload))
	return sigEncoding.EncodeToString(sig)
}

// SignHeader sets Sm-Signer and Sm-Sig on h (which must not be nil) for payload
// published on subject, replacing any earlier values.
func (s *Signer) SignHeader(h map[string][]string, subject string, payload []byte) {
	h[HeaderSigner] = []string{s.pub}
	h[HeaderSig] = []string{s.Sign(subject, payload)}
}

// Verifier checks command signatures against a fixed set of trusted public keys.
// Safe for concurrent use; the zero value trusts nothing.
type Verifier struct {
	keys map[string]ed25519.PublicKey
}

// NewVerifier trusts the given public keys ("N...", server type). It fails on an
// invalid key, a key of another type, or none at all.
func NewVerifier(publicKeys ...string) (*Verifier, error) {
	v := &Verifier{keys: make(map[string]ed25519.PublicKey, len(publicKeys))}
	for _, k := range publicKeys {
		k = strings.TrimSpace(k)
		raw, err := nkeys.Decode(nkeys.PrefixByteServer, []byte(k))
		if err != nil {
			if strings.HasPrefix(k, "S") {
				return nil, fmt.Errorf("cmdsig: %q looks like a seed: give shards the public key (\"N...\"), never the seed", k[:min(len(k), 2)]+"…")
			}
			return nil, fmt.Errorf("cmdsig: public key %q: %w (want a server nkey \"N...\")", k, err)
		}
		if len(raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("cmdsig: public key %q: %d bytes, want %d", k, len(raw), ed25519.PublicKeySize)
		}
		v.keys[k] = ed25519.PublicKey(raw)
	}
	if len(v.keys) == 0 {
		return nil, errors.New("cmdsig: no public key to trust")
	}
	return v, nil
}

// ParseKeys is NewVerifier on a comma-separated list (the --command-verify-keys
// form); blank entries are ignored.
func ParseKeys(list string) (*Verifier, error) {
	var keys []string
	for _, k := range strings.Split(list, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	return NewVerifier(keys...)
}

// Keys returns the trusted public keys, sorted.
func (v *Verifier) Keys() []string {
	out := make([]string, 0, len(v.keys))
	for k := range v.keys {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Trusts reports whether publicKey is one of the trusted keys.
func (v *Verifier) Trusts(publicKey string) bool {
	_, ok := v.keys[publicKey]
	return ok
}

// Verify checks that sig (an Sm-Sig value) is signer's signature of payload published
// on subject, and that signer (an Sm-Signer value) is trusted. A nil error means the
// command is authentic; otherwise it is an *Error.
func (v *Verifier) Verify(subject string, payload []byte, signer, sig string) error {
	switch {
	case signer == "" && sig == "":
		return refuse(ErrUnsigned, "", "no %s and no %s header", HeaderSigner, HeaderSig)
	case sig == "":
		return refuse(ErrUnsigned, signer, "no %s header", HeaderSig)
	case signer == "":
		return refuse(ErrUnsigned, "", "no %s header", HeaderSigner)
	}
	key, ok := v.keys[signer]
	if !ok {
		return refuse(ErrUnknownSigner, signer, "not one of the %d trusted keys", len(v.keys))
	}
	if len(sig) != SigLen {
		return refuse(ErrBadSignature, signer, "%s is %d characters, want %d", HeaderSig, len(sig), SigLen)
	}
	var raw [ed25519.SignatureSize]byte
	if n, err := sigEncoding.Decode(raw[:], []byte(sig)); err != nil || n != len(raw) {
		return refuse(ErrBadSignature, signer, "%s is not base64url without padding", HeaderSig)
	}
	if !ed25519.Verify(key, AppendMessage(nil, subject, payload), raw[:]) {
		return refuse(ErrBadSignature, signer, "signature does not match subject %q and the %d payload bytes", subject, len(payload))
	}
	return nil
}

// VerifyHeader is Verify with the signer and signature taken from h. Each header must
// appear at most once: a repeated one is ErrBadSignature.
func (v *Verifier) VerifyHeader(subject string, payload []byte, h map[string][]string) error {
	signer, sig := h[HeaderSigner], h[HeaderSig]
	if len(signer) > 1 || len(sig) > 1 {
		first := ""
		if len(signer) > 0 {
			first = signer[0]
		}
		return refuse(ErrBadSignature, first, "%s or %s repeated (%d and %d values)", HeaderSigner, HeaderSig, len(signer), len(sig))
	}
	var s1, s2 string
	if len(signer) == 1 {
		s1 = signer[0]
	}
	if len(sig) == 1 {
		s2 = sig[0]
	}
	return v.Verify(subject, payload, s1, s2)
}
