package cmdsig_test

import (
	"errors"
	"testing"

	"github.com/shardmatch/shardmatch/twophase/cmdsig"
)

// FuzzVerifyHeader feeds the verifier arbitrary header values, subjects and payloads:
// it must never panic, must always answer with one of the three reasons, and must
// accept only what the trusted key signed for exactly that subject and payload.
func FuzzVerifyHeader(f *testing.F) {
	s := newSigner(f)
	v := newVerifier(f, s.PublicKey())
	payload := []byte("\x1a\x0a\x0a\x02tx\x12\x02s1")
	sig := s.Sign(subjS1, payload)
	f.Add(s.PublicKey(), sig, subjS1, payload, uint8(1), uint8(1))
	f.Add(s.PublicKey(), sig, subjS2, payload, uint8(1), uint8(1))
	f.Add(s.PublicKey(), sig[:85], subjS1, payload, uint8(1), uint8(1))
	f.Add(s.PublicKey(), sig+"==", subjS1, payload, uint8(1), uint8(2))
	f.Add("", "", subjS1, []byte{}, uint8(0), uint8(0))
	f.Add("N\x00\xff", "\xff\xfe", "", []byte(nil), uint8(3), uint8(1))
	f.Fuzz(func(t *testing.T, signer, sigv, subject string, data []byte, nSigner, nSig uint8) {
		h := map[string][]string{}
		for range nSigner % 4 {
			h[cmdsig.HeaderSigner] = append(h[cmdsig.HeaderSigner], signer)
		}
		for range nSig % 4 {
			h[cmdsig.HeaderSig] = append(h[cmdsig.HeaderSig], sigv)
		}
		if len(subject) > 1<<16-1 {
			subject = subject[:1<<16-1]
		}
		err := v.VerifyHeader(subject, data, h)
		if err == nil {
			// Only the one signed command may pass (an Ed25519 forgery is out of reach).
			if subject != subjS1 || string(data) != string(payload) || signer != s.PublicKey() || sigv != sig {
				t.Fatalf("accepted a command the key never signed: signer %q sig %q subject %q data %x", signer, sigv, subject, data)
			}
			return
		}
		var e *cmdsig.Error
		if !errors.As(err, &e) {
			t.Fatalf("error %T %v is not an *cmdsig.Error", err, err)
		}
		n := 0
		for _, r := range []error{cmdsig.ErrUnsigned, cmdsig.ErrUnknownSigner, cmdsig.ErrBadSignature} {
			if errors.Is(err, r) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("error %v matches %d reasons, want 1", err, n)
		}
	})
}
