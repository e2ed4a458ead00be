package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/shardmatch/shardmatch/twophase/cmdsig"
)

// --command-verify-keys (or SHARDSVC_COMMAND_VERIFY_KEYS) becomes the Verifier of the
// shard's command server; a bad key is a usage error; without it nothing is verified.
func TestCommandVerifyKeys(t *testing.T) {
	seed, k1, _ := cmdsig.GenerateSeed()
	_, k2, _ := cmdsig.GenerateSeed()
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	var stderr bytes.Buffer
	o, code, done := parseOptions([]string{"--id", "s1", "--command-verify-keys", k1 + "," + k2}, &stderr, env(nil))
	if done || o.verifier == nil || !o.verifier.Trusts(k1) || !o.verifier.Trusts(k2) {
		t.Fatalf("flag: exit %d done %v verifier %v: %s", code, done, o.verifier, stderr.String())
	}
	o, _, done = parseOptions([]string{"--id", "s1"}, &stderr, env(map[string]string{"SHARDSVC_COMMAND_VERIFY_KEYS": k2}))
	if done || o.verifier == nil || o.verifier.Trusts(k1) || !o.verifier.Trusts(k2) {
		t.Fatalf("environment: verifier %v", o.verifier)
	}
	if o, _, done = parseOptions([]string{"--id", "s1"}, &stderr, env(nil)); done || o.verifier != nil {
		t.Fatalf("default: verifier %v, want none", o.verifier)
	}
	for _, bad := range []string{"hello", string(seed), k1 + ",Nnope", ","} {
		stderr.Reset()
		if _, code, _ := parseOptions([]string{"--id", "s1", "--command-verify-keys", bad}, &stderr, env(nil)); code != 2 ||
			!strings.Contains(stderr.String(), "--command-verify-keys") || strings.Contains(stderr.String(), string(seed)) {
			t.Errorf("%.8q…: exit %d, stderr %s", bad, code, stderr.String())
		}
	}
}
