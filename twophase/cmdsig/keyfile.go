package cmdsig

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"

	"github.com/nats-io/nkeys"
)

// ErrKeyFileMode is returned by LoadSigner for a seed file others may read or anyone
// but its owner may write.
var ErrKeyFileMode = errors.New("cmdsig: signing key file is readable by others")

// GenerateSeed returns a new server-type nkey seed ("SN...") and its public key.
func GenerateSeed() (seed []byte, publicKey string, err error) {
	kp, err := nkeys.CreateServer()
	if err != nil {
		return nil, "", fmt.Errorf("cmdsig: generate key: %w", err)
	}
	defer kp.Wipe()
	s, err := kp.Seed()
	if err != nil {
		return nil, "", fmt.Errorf("cmdsig: generate key: %w", err)
	}
	seed = bytes.Clone(s) // Wipe clears the key pair's own copy
	if publicKey, err = kp.PublicKey(); err != nil {
		return nil, "", fmt.Errorf("cmdsig: generate key: %w", err)
	}
	return seed, publicKey, nil
}

// WriteSeedFile writes a new seed to path, created with mode 0600, and returns its
// public key. It never overwrites: an existing path is an error (fs.ErrExist).
func WriteSeedFile(path string) (publicKey string, err error) {
	seed, pub, err := GenerateSeed()
	if err != nil {
		return "", err
	}
	defer clear(seed)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("cmdsig: %w", err)
	}
	_, err = f.Write(append(seed, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("cmdsig: write %s: %w", path, err)
	}
	return pub, nil
}

// LoadSigner reads a seed file (see NewSigner for what it may hold). On Unix the file
// must not be readable or writable by others nor writable by its group (0600, 0400,
// 0640 and 0440 pass; a Kubernetes Secret volume needs defaultMode 0400 or 0440):
// otherwise the error wraps ErrKeyFileMode. Symbolic links are followed, as a Secret
// volume's files are links.
func LoadSigner(path string) (*Signer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cmdsig: signing key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("cmdsig: signing key %s is not a regular file", path)
	}
	if err := checkMode(path, st.Mode().Perm()); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cmdsig: signing key: %w", err)
	}
	defer clear(b)
	s, err := NewSigner(b)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return s, nil
}

func checkMode(path string, perm fs.FileMode) error {
	if runtime.GOOS == "windows" {
		return nil // the permission bits mean nothing there
	}
	if perm&0o027 != 0 {
		return fmt.Errorf("%w: %s has mode %#o; chmod 600 it (others must not read it, nor its group write it)", ErrKeyFileMode, path, perm)
	}
	return nil
}
