package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Roles. Every endpoint under /v1/ needs one of them; /healthz, /readyz and /metrics
// need none (kubelet probes and annotation-based scrapes present no credential, and
// they expose no player, transaction or key material).
//
//	read     every GET under /v1/ except the snapshot download: status, txns, leases,
//	         shards, debug state, fault state, the audit trail. Needs the read or the
//	         operate token; open when no read token is configured (compatible with
//	         clusters set up before roles existed).
//	operate  every change (leader transfer, voters, force-abort, snapshot restore,
//	         fault injection) and GET /v1/snapshot, which hands out the whole state.
//	         Needs an operate token or a client certificate verified against the
//	         admin client CA.
type Role int

// The roles, weakest first.
const (
	RoleNone Role = iota
	RoleRead
	RoleOperate
)

func (r Role) String() string {
	switch r {
	case RoleRead:
		return "read"
	case RoleOperate:
		return "operate"
	}
	return "none"
}

// principal is who made a request: a role and an identity that names the credential
// without revealing it.
type principal struct {
	role Role
	// id is "operate-token#<8 hex of sha256(token)>", "read-token#...",
	// "cert:CN=<subject CN>" or "anonymous".
	id string
}

var anonymous = principal{role: RoleNone, id: "anonymous"}

// tokenSet is the sha256 digests of the tokens accepted for one role. Several tokens
// let an operator rotate one without downtime: add the new one, move the clients,
// drop the old one.
type tokenSet [][sha256.Size]byte

// parseTokens reads a comma-separated token list; empty entries are skipped.
func parseTokens(list string) tokenSet {
	var out tokenSet
	for _, t := range strings.Split(list, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, sha256.Sum256([]byte(t)))
		}
	}
	return out
}

// match reports whether sum is one of the set's digests, comparing every one in
// constant time (no early exit, no length leak: all are digests).
func (ts tokenSet) match(sum [sha256.Size]byte) bool {
	found := 0
	for _, want := range ts {
		found |= subtle.ConstantTimeCompare(sum[:], want[:])
	}
	return found == 1
}

// TokenIdentity is how the audit trail names a token: the role, then the first 8 hex
// digits of the token's sha256 ("operate-token#1a2b3c4d"). It tells rotated tokens
// apart without revealing them.
func TokenIdentity(role Role, token string) string {
	sum := sha256.Sum256([]byte(token))
	return tokenIdentity(role, sum)
}

func tokenIdentity(role Role, sum [sha256.Size]byte) string {
	return role.String() + "-token#" + hex.EncodeToString(sum[:4])
}

// authenticate names who made r. A client certificate verified against the admin
// client CA is an operate identity; else the bearer token decides. No credential is
// anonymous; a malformed or unknown token is an error (401).
func (s *Server) authenticate(r *http.Request) (principal, *Error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		return principal{role: RoleOperate, id: "cert:CN=" + r.TLS.VerifiedChains[0][0].Subject.CommonName}, nil
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return anonymous, nil
	}
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return anonymous, &Error{Code: CodeUnauthenticated, Message: "this call needs an `Authorization: Bearer <token>` header"}
	}
	sum := sha256.Sum256([]byte(token))
	switch {
	case s.operateTokens.match(sum):
		return principal{role: RoleOperate, id: tokenIdentity(RoleOperate, sum)}, nil
	case s.readTokens.match(sum):
		return principal{role: RoleRead, id: tokenIdentity(RoleRead, sum)}, nil
	}
	return principal{role: RoleNone, id: "invalid-token#" + hex.EncodeToString(sum[:4])},
		&Error{Code: CodeUnauthenticated, Message: "the bearer token is not valid"}
}

// read guards a GET with the read role: the read or operate token (or a verified
// client certificate); anyone when no read token is configured. A body over the limit
// is refused (413) even though reads ignore it.
func (s *Server) read(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, e := s.authenticate(r)
		if e == nil && p.role == RoleNone && len(s.readTokens) > 0 {
			e = &Error{Code: CodeUnauthenticated, Message: "this call needs the read role: `Authorization: Bearer <read or operate token>`"}
		}
		if e == nil {
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				e = bodyError(err)
			}
		}
		if e != nil {
			s.log.Warn("admin read refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "who", p.id, "code", e.Code)
			writeError(w, e)
			return
		}
		h(w, r)
	}
}

// operate guards an operator action with the operate role and writes the attempt,
// refused or not, to the audit trail. open lets anyone through when no operate token is
// configured (the fault-injection endpoints, enabled on purpose by the operator).
func (s *Server) operate(h http.HandlerFunc, open bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := s.cfg.Clock.Mono()
		rw := &statusWriter{ResponseWriter: w}
		p, e := s.authenticate(r)
		body := ""
		if e2 := s.authorizeOperate(p, e, open); e2 != nil {
			e = e2
			if r.ContentLength > 0 {
				body = fmt.Sprintf("(not read: %d bytes)", r.ContentLength)
			}
		} else {
			e = nil
			body, e = s.readBodyForAudit(r)
		}
		if e != nil {
			writeError(rw, e)
		} else {
			h(rw, r)
		}
		s.auditCall(p, r, body, rw, s.cfg.Clock.Mono()-start)
	}
}

// authorizeOperate decides an operate call from the authenticated principal p (authErr
// if the credential was bad).
func (s *Server) authorizeOperate(p principal, authErr *Error, open bool) *Error {
	if p.role == RoleOperate {
		return nil
	}
	if len(s.operateTokens) == 0 {
		if s.cfg.AllowUnauthenticated || open {
			return nil
		}
		return &Error{Code: CodeForbidden, Message: "mutating admin calls are disabled on this node: " +
			"no admin token is configured (set one to enable them)"}
	}
	if authErr != nil {
		return authErr
	}
	if p.role == RoleRead {
		return &Error{Code: CodeForbidden, Message: "this call needs the operate role; the read token only reads"}
	}
	return &Error{Code: CodeUnauthenticated, Message: "this call needs the operate role: `Authorization: Bearer <operate token>`"}
}

// maxAuditBody is how much of a request body an audit record keeps.
const maxAuditBody = 512

// readBodyForAudit reads an authorized call's body (bounded by the body limit) so the
// audit record can summarize it, and puts it back for the handler. The snapshot
// upload is not read: it is summarized by its size.
func (s *Server) readBodyForAudit(r *http.Request) (string, *Error) {
	if r.URL.Path == PathSnapshotRestore {
		return fmt.Sprintf("(snapshot file: %d bytes)", r.ContentLength), nil
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return fmt.Sprintf("(refused: %d bytes declared)", r.ContentLength), bodyError(err)
	}
	r.Body = io.NopCloser(strings.NewReader(string(b)))
	sum := strings.TrimSpace(string(b))
	if len(sum) > maxAuditBody {
		sum = fmt.Sprintf("%s…(%d bytes)", sum[:maxAuditBody], len(b))
	}
	return sum, nil
}

// bodyError is the answer to a body that could not be read: 413 over the limit.
func bodyError(err error) *Error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &Error{Code: CodeTooLarge, Field: "body", Message: fmt.Sprintf("request body exceeds %d bytes", tooBig.Limit)}
	}
	return invalid("body", "cannot read the request body: %v", err)
}

// limitBody bounds every request body by Config.MaxBodyBytes, except the snapshot
// upload, whose size the node bounds itself.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != PathSnapshotRestore {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}

// statusWriter records the status and, for an error, the start of the body (the
// typed error's code) of a response, for the audit trail.
type statusWriter struct {
	http.ResponseWriter
	status int
	errBuf []byte
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.status >= 400 && len(w.errBuf) < 4096 {
		w.errBuf = append(w.errBuf, b[:min(len(b), 4096-len(w.errBuf))]...)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (snapshot deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
