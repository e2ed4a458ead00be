package cmdsig_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/shardmatch/shardmatch/twophase/cmdsig"
)

const (
	subjS1 = "sm.v1.shard.s1.cmd"
	subjS2 = "sm.v1.shard.s2.cmd"
)

func newSigner(tb testing.TB) *cmdsig.Signer {
	tb.Helper()
	seed, _, err := cmdsig.GenerateSeed()
	if err != nil {
		tb.Fatal(err)
	}
	s, err := cmdsig.NewSigner(seed)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func newVerifier(tb testing.TB, keys ...string) *cmdsig.Verifier {
	tb.Helper()
	v, err := cmdsig.NewVerifier(keys...)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func header(s *cmdsig.Signer, subject string, payload []byte) map[string][]string {
	h := map[string][]string{}
	s.SignHeader(h, subject, payload)
	return h
}

// The layout of the signed bytes is a contract with shards in other languages: pin it.
func TestMessageLayout(t *testing.T) {
	got := cmdsig.AppendMessage([]byte("x"), "a.b", []byte{0xde, 0xad})
	want := append([]byte("x"+"shardmatch-cmdsig"), 0x00, 0x01, 0x00, 0x03, 'a', '.', 'b', 0xde, 0xad)
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendMessage = %x, want %x", got, want)
	}
	if cmdsig.SigLen != 86 {
		t.Fatalf("SigLen = %d, want 86", cmdsig.SigLen)
	}
}

// A known-answer vector: a fixed seed signs a fixed command; a shard written in
// another language can check its implementation against these values (docs/protocol.md).
func TestKnownAnswer(t *testing.T) {
	seed, err := nkeys.EncodeSeed(nkeys.PrefixByteServer, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	s, err := cmdsig.NewSigner(seed)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := hex.DecodeString("1a0a0a0274781202733120")
	sig := s.Sign(subjS1, payload)
	t.Logf("seed %s\npublic %s\nsubject %s payload %x\nSm-Sig %s", seed, s.PublicKey(), subjS1, payload, sig)
	const (
		wantPub = "NDVEU3DD4KOFECV66VIHWEZOYX4ZKR3WV27L464SIIPOU2IUI3JCYLVO"
		wantSig = "BvYLNkeRSxajQGoYubW4VYSp-Uoq1_Jt3TEqEySz-dM9vbF3jw_dy-yiFUs9KZXTQ_EaiFkCCVkylbSsgw-jBA"
	)
	if s.PublicKey() != wantPub || sig != wantSig {
		t.Fatalf("known answer changed:\n public %s\n sig    %s", s.PublicKey(), sig)
	}
	// Independently of this package: plain Ed25519 over the documented layout.
	raw, _ := base64.RawURLEncoding.DecodeString(sig)
	msg := append([]byte("shardmatch-cmdsig\x00\x01\x00\x12"+subjS1), payload...)
	// The public key decoded as docs/protocol.md tells a shard in another language to.
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(wantPub)
	if err != nil || len(key) != 35 || key[0] != 0x68 || binary.LittleEndian.Uint16(key[33:]) != crc16XModem(key[:33]) {
		t.Fatalf("public key does not decode as documented: %x, %v", key, err)
	}
	if !ed25519.Verify(ed25519.PublicKey(key[1:33]), msg, raw) {
		t.Fatal("the signature is not plain Ed25519 over the documented bytes")
	}
}

// crc16XModem is CRC-16/XMODEM (polynomial 0x1021, initial 0), bit by bit.
func crc16XModem(b []byte) uint16 {
	var crc uint16
	for _, x := range b {
		crc ^= uint16(x) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

func TestSignVerify(t *testing.T) {
	s := newSigner(t)
	other := newSigner(t)
	v := newVerifier(t, s.PublicKey())
	payload := []byte("commit tx1 s1")
	good := header(s, subjS1, payload)
	if err := v.VerifyHeader(subjS1, payload, good); err != nil {
		t.Fatalf("authentic command refused: %v", err)
	}
	// The same command signed again (a resend) verifies too: Ed25519 is deterministic,
	// and nothing but subject and payload is signed.
	if again := header(s, subjS1, payload); again[cmdsig.HeaderSig][0] != good[cmdsig.HeaderSig][0] {
		t.Error("re-signing the same command gave another signature")
	}

	sig := good[cmdsig.HeaderSig][0]
	flip := []byte(sig)
	flip[10] ^= 'A' ^ 'B'
	if flip[10] == sig[10] {
		flip[10] = 'C'
	}
	for _, c := range []struct {
		name    string
		subject string
		payload []byte
		h       map[string][]string
		want    error
	}{
		{"tampered payload", subjS1, []byte("commit tx1 s2"), good, cmdsig.ErrBadSignature},
		{"appended payload", subjS1, append([]byte("commit tx1 s1"), 0), good, cmdsig.ErrBadSignature},
		{"empty payload", subjS1, nil, good, cmdsig.ErrBadSignature},
		{"replayed on another shard's subject", subjS2, payload, good, cmdsig.ErrBadSignature},
		{"unsigned", subjS1, payload, map[string][]string{}, cmdsig.ErrUnsigned},
		{"nil header", subjS1, payload, nil, cmdsig.ErrUnsigned},
		{"signature only", subjS1, payload, map[string][]string{cmdsig.HeaderSig: {sig}}, cmdsig.ErrUnsigned},
		{"signer only", subjS1, payload, map[string][]string{cmdsig.HeaderSigner: {s.PublicKey()}}, cmdsig.ErrUnsigned},
		{"empty values", subjS1, payload, map[string][]string{cmdsig.HeaderSigner: {""}, cmdsig.HeaderSig: {""}}, cmdsig.ErrUnsigned},
		{"lower-case header names", subjS1, payload, map[string][]string{"sm-signer": {s.PublicKey()}, "sm-sig": {sig}}, cmdsig.ErrUnsigned},
		{"untrusted key", subjS1, payload, header(other, subjS1, payload), cmdsig.ErrUnknownSigner},
		{"trusted signer named, other key signed", subjS1, payload,
			map[string][]string{cmdsig.HeaderSigner: {s.PublicKey()}, cmdsig.HeaderSig: header(other, subjS1, payload)[cmdsig.HeaderSig]}, cmdsig.ErrBadSignature},
		{"garbage signer", subjS1, payload, map[string][]string{cmdsig.HeaderSigner: {strings.Repeat("\x00Z", 500)}, cmdsig.HeaderSig: {sig}}, cmdsig.ErrUnknownSigner},
		{"flipped signature", subjS1, payload, map[string][]string{cmdsig.HeaderSigner: {s.PublicKey()}, cmdsig.HeaderSig: {string(flip)}}, cmdsig.ErrBadSignature},
		{"truncated signature", subjS1, payload, map[string][]string{cmdsig.HeaderSigner: {s.PublicKey()}, cmdsig.HeaderSig: {sig[:85]}}, cmdsig.ErrBadSignature},
		{"padded signature", subjS1, payload, map[string][]string{cmdsig.HeaderSigner: {s.PublicKey()}, cmdsig.HeaderSig: {sig + "=="}}, cmdsig.ErrBadSignature},
		{"standard base64", subjS1, payload, map[string][]string{cmdsig.HeaderSigner: {s.PublicKey()}, cmdsig.HeaderSig: {strings.Repeat("+/", 43)}}, cmdsig.ErrBadSignature},
		{"not base64", subjS1, payload, map[string][]string{cmdsig.HeaderSigner: {s.PublicKey()}, cmdsig.HeaderSig: {strings.Repeat("!", 86)}}, cmdsig.ErrBadSignature},
		{"zero signature", subjS1, payload, map[string][]string{cmdsig.HeaderSigner: {s.PublicKey()}, cmdsig.HeaderSig: {strings.Repeat("A", 86)}}, cmdsig.ErrBadSignature},
		{"repeated signature", subjS1, payload, map[string][]string{cmdsig.HeaderSigner: {s.PublicKey()}, cmdsig.HeaderSig: {sig, sig}}, cmdsig.ErrBadSignature},
		{"repeated signer", subjS1, payload, map[string][]string{cmdsig.HeaderSigner: {s.PublicKey(), s.PublicKey()}, cmdsig.HeaderSig: {sig}}, cmdsig.ErrBadSignature},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := v.VerifyHeader(c.subject, c.payload, c.h)
			if !errors.Is(err, c.want) {
				t.Fatalf("VerifyHeader = %v, want %v", err, c.want)
			}
			var e *cmdsig.Error
			if !errors.As(err, &e) || e.Reason != c.want {
				t.Fatalf("error %#v is not an *Error with Reason %v", err, c.want)
			}
			if len(e.Signer) > 70 || len(err.Error()) > 400 {
				t.Errorf("error repeats too much of the attacker's input: %d bytes", len(err.Error()))
			}
			for _, other := range []error{cmdsig.ErrUnsigned, cmdsig.ErrUnknownSigner, cmdsig.ErrBadSignature} {
				if other != c.want && errors.Is(err, other) {
					t.Errorf("error also matches %v", other)
				}
			}
		})
	}
}

// Rotation: shards trust old and new at once; either signs; dropping the old key
// refuses what it signs.
func TestRotation(t *testing.T) {
	oldK, newK := newSigner(t), newSigner(t)
	both, err := cmdsig.ParseKeys(" " + oldK.PublicKey() + " ,, " + newK.PublicKey() + ",")
	if err != nil {
		t.Fatal(err)
	}
	if got := both.Keys(); len(got) != 2 || !both.Trusts(oldK.PublicKey()) || !both.Trusts(newK.PublicKey()) {
		t.Fatalf("Keys = %v", got)
	}
	p := []byte("prepare")
	for _, s := range []*cmdsig.Signer{oldK, newK} {
		if err := both.VerifyHeader(subjS1, p, header(s, subjS1, p)); err != nil {
			t.Errorf("trusted key %s refused: %v", s.PublicKey(), err)
		}
	}
	onlyNew := newVerifier(t, newK.PublicKey())
	if err := onlyNew.VerifyHeader(subjS1, p, header(oldK, subjS1, p)); !errors.Is(err, cmdsig.ErrUnknownSigner) {
		t.Errorf("dropped key: %v, want ErrUnknownSigner", err)
	}
}

func TestNewVerifierRefusesBadKeys(t *testing.T) {
	seed, pub, err := cmdsig.GenerateSeed()
	if err != nil {
		t.Fatal(err)
	}
	// A one-character typo in the last position: pick a character other than
	// the one there, or the "typo" is the key itself (1 in 32 runs).
	typo := pub[:len(pub)-1] + "A"
	if pub[len(pub)-1] == 'A' {
		typo = pub[:len(pub)-1] + "B"
	}
	user, _ := nkeys.CreateUser()
	upub, _ := user.PublicKey()
	for name, keys := range map[string][]string{
		"none":         nil,
		"blank":        {" "},
		"seed":         {string(seed)},
		"user key":     {upub},
		"typo":         {typo},
		"garbage":      {"hello"},
		"one bad of 2": {pub, "Nxyz"},
	} {
		if _, err := cmdsig.NewVerifier(keys...); err == nil {
			t.Errorf("%s: NewVerifier(%q) accepted", name, keys)
		} else if strings.Contains(err.Error(), string(seed)) {
			t.Errorf("%s: the error repeats the seed: %v", name, err)
		}
	}
	if _, err := cmdsig.ParseKeys(""); err == nil {
		t.Error("ParseKeys(\"\") accepted")
	}
}

func TestNewSigner(t *testing.T) {
	seed, pub, err := cmdsig.GenerateSeed()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(seed), "SN") || !strings.HasPrefix(pub, "N") {
		t.Fatalf("seed %.2s…, public %s: want SN… and N…", seed, pub)
	}
	for name, contents := range map[string]string{
		"plain":     string(seed),
		"newline":   string(seed) + "\n",
		"crlf":      string(seed) + "\r\n",
		"decorated": "-----BEGIN SERVER NKEY SEED-----\n" + string(seed) + "\n------END SERVER NKEY SEED------\n",
		"comment":   "# shardmatch command signing key\n\n" + string(seed) + "\n",
	} {
		s, err := cmdsig.NewSigner([]byte(contents))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if s.PublicKey() != pub {
			t.Errorf("%s: public key %s, want %s", name, s.PublicKey(), pub)
		}
	}
	corrupt := string(seed[:len(seed)-2]) + "AA"
	if corrupt == string(seed) {
		corrupt = string(seed[:len(seed)-2]) + "BB"
	}
	user, _ := nkeys.CreateUser()
	useed, _ := user.Seed()
	for name, contents := range map[string]string{
		"empty":      "",
		"public key": pub,
		"user seed":  string(useed),
		"two seeds":  string(seed) + "\n" + string(seed),
		"corrupt":    corrupt,
	} {
		if _, err := cmdsig.NewSigner([]byte(contents)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSeedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "signing.nk")
	pub, err := cmdsig.WriteSeedFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Errorf("mode %#o, want 0600", st.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	if _, err := cmdsig.WriteSeedFile(path); !errors.Is(err, fs.ErrExist) {
		t.Errorf("overwrite: %v, want fs.ErrExist", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("the refused overwrite changed the file")
	}
	s, err := cmdsig.LoadSigner(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.PublicKey() != pub {
		t.Fatalf("loaded %s, wrote %s", s.PublicKey(), pub)
	}
	if runtime.GOOS == "windows" {
		return
	}
	for mode, ok := range map[fs.FileMode]bool{0o400: true, 0o440: true, 0o640: true, 0o644: false, 0o604: false, 0o660: false, 0o666: false} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := cmdsig.LoadSigner(path)
		if ok != (err == nil) || (!ok && !errors.Is(err, cmdsig.ErrKeyFileMode)) {
			t.Errorf("mode %#o: LoadSigner = %v, want ok=%v", mode, err, ok)
		}
	}
	if _, err := cmdsig.LoadSigner(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := cmdsig.LoadSigner(dir); err == nil {
		t.Error("a directory was accepted")
	}
}
