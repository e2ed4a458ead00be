package natsauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/shardmatch/shardmatch/internal/fsutil"
	"github.com/shardmatch/shardmatch/internal/natsutil"
)

// Account limits Init uses where Limits leaves a field zero. Storage is unlimited by
// default: bounded by the server's own JetStream limits (max_file_store,
// max_memory_store). A byte limit on the account is a reservation: a server whose store
// is smaller than it refuses JetStream to the whole account.
const (
	DefaultMaxConnections = 1024
	DefaultMaxStreams     = 16
	DefaultMaxConsumers   = 4096
	DefaultDiskStorage    = -1
	DefaultMemoryStorage  = -1
)

// Names of the files a Deployment is saved as, in its directory.
const (
	FileMeta          = "deployment.json"    // prefix and public keys
	FileOperatorJWT   = "operator.jwt"       // self-signed operator
	FileOperatorSeed  = "operator.nk"        // 0600
	FileSystemJWT     = "system.jwt"         // the system account, signed by the operator
	FileSystemSeed    = "system.nk"          // 0600
	FileSystemCreds   = "system-user.creds"  // a system account user (pushes account updates), 0600
	FileAccountJWT    = "account.jwt"        // the deployment account, signed by the operator
	FileAccountSeed   = "account.nk"         // 0600; signs account updates (revocations) with the operator
	FileSigningSeed   = "account-signing.nk" // 0600; signs every user
	FileServerConf    = "nats-server.conf"   // include for a stock nats-server
	FileCoordinator   = "coordinator.creds"  // the coordinator's credentials, 0600
	DefaultCoordID    = "main"               // identity of the coordinator credentials Init writes
	accountName       = "shardmatch"
	systemAccountName = "SYS"
)

// Errors; each is wrapped with the detail.
var (
	// ErrNoDeployment: the directory does not hold a deployment (missing, or not made by Save).
	ErrNoDeployment = errors.New("natsauth: no deployment")
	// ErrExists: Save refuses to overwrite a deployment's keys.
	ErrExists = errors.New("natsauth: a deployment already exists")
)

// Limits are the deployment account's limits. Zero fields take the defaults; -1 is
// unlimited.
type Limits struct {
	MaxConnections int64 // client connections at once
	MaxStreams     int64
	MaxConsumers   int64
	DiskStorage    int64 // bytes
	MemoryStorage  int64 // bytes
}

func (l Limits) withDefaults() Limits {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxConnections, DefaultMaxConnections)
	def(&l.MaxStreams, DefaultMaxStreams)
	def(&l.MaxConsumers, DefaultMaxConsumers)
	def(&l.DiskStorage, DefaultDiskStorage)
	def(&l.MemoryStorage, DefaultMemoryStorage)
	return l
}

// Deployment holds the keys and JWTs of one deployment's NATS auth. Make one with Init
// or Load. Its seeds are secrets.
type Deployment struct {
	prefix   string
	subj     natsutil.Subjects
	operator nkeys.KeyPair
	system   nkeys.KeyPair
	account  nkeys.KeyPair
	signing  nkeys.KeyPair
	opJWT    string
	sysJWT   string
	accJWT   string
	sysCreds []byte
}

// meta is deployment.json.
type meta struct {
	Prefix     string `json:"prefix"`
	Operator   string `json:"operator"`
	System     string `json:"system_account"`
	Account    string `json:"account"`
	SigningKey string `json:"account_signing_key"`
}

// Init makes a new deployment for subject prefix ("" is natsutil.DefaultPrefix): fresh
// operator, system account and deployment account keys, an account signing key, the
// account's JetStream and connection limits, and a system user.
func Init(prefix string, lim Limits) (*Deployment, error) {
	subj, err := natsutil.NewSubjects(prefix)
	if err != nil {
		return nil, err
	}
	lim = lim.withDefaults()
	d := &Deployment{prefix: subj.Prefix(), subj: subj}
	if d.operator, err = nkeys.CreateOperator(); err != nil {
		return nil, err
	}
	if d.system, err = nkeys.CreateAccount(); err != nil {
		return nil, err
	}
	if d.account, err = nkeys.CreateAccount(); err != nil {
		return nil, err
	}
	if d.signing, err = nkeys.CreateAccount(); err != nil {
		return nil, err
	}
	opPub, _ := d.operator.PublicKey()
	sysPub, _ := d.system.PublicKey()
	accPub, _ := d.account.PublicKey()
	sigPub, _ := d.signing.PublicKey()

	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = accountName
	oc.SystemAccount = sysPub
	if d.opJWT, err = oc.Encode(d.operator); err != nil {
		return nil, fmt.Errorf("natsauth: operator jwt: %w", err)
	}
	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = systemAccountName
	if d.sysJWT, err = sc.Encode(d.operator); err != nil {
		return nil, fmt.Errorf("natsauth: system account jwt: %w", err)
	}
	ac := jwt.NewAccountClaims(accPub)
	ac.Name = accountName
	ac.SigningKeys.Add(sigPub)
	ac.Limits.Conn = lim.MaxConnections
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: lim.MemoryStorage, DiskStorage: lim.DiskStorage,
		Streams: lim.MaxStreams, Consumer: lim.MaxConsumers}
	if d.accJWT, err = ac.Encode(d.operator); err != nil {
		return nil, fmt.Errorf("natsauth: account jwt: %w", err)
	}
	// The system user is signed by the system account itself: it publishes account
	// updates (revocations) to a running server.
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = "system"
	tok, err := uc.Encode(d.system)
	if err != nil {
		return nil, err
	}
	useed, _ := ukp.Seed()
	if d.sysCreds, err = jwt.FormatUserConfig(tok, useed); err != nil {
		return nil, err
	}
	return d, nil
}

// Prefix is the deployment's subject prefix.
func (d *Deployment) Prefix() string { return d.prefix }

// Subjects are the deployment's subjects.
func (d *Deployment) Subjects() natsutil.Subjects { return d.subj }

// OperatorJWT, SystemAccountJWT and AccountJWT are the signed JWTs a server trusts and
// preloads.
func (d *Deployment) OperatorJWT() string      { return d.opJWT }
func (d *Deployment) SystemAccountJWT() string { return d.sysJWT }
func (d *Deployment) AccountJWT() string       { return d.accJWT }

// SystemAccount and Account are the accounts' public keys.
func (d *Deployment) SystemAccount() string { pub, _ := d.system.PublicKey(); return pub }
func (d *Deployment) Account() string       { pub, _ := d.account.PublicKey(); return pub }

// SystemCreds are the credentials of the system account's user, for pushing account
// updates to running servers (see PushAccount).
func (d *Deployment) SystemCreds() []byte { return append([]byte(nil), d.sysCreds...) }

// User is one user's signed credentials.
type User struct {
	Name      string // "<role>-<id>"
	PublicKey string // the user's nkey, what a revocation names
	Creds     []byte // the .creds file: JWT and seed (a secret)
	Perms     Perms
}

// WriteUser signs credentials for role's identity id (never expiring) and writes them
// to dir/<role>-<id>.creds (0600), returning the path.
func (d *Deployment) WriteUser(dir string, role Role, id string) (string, error) {
	u, err := d.NewUser(role, id, 0)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, u.Name+".creds")
	return path, fsutil.WriteFileAtomic(path, u.Creds, 0o600)
}

// NewUser signs credentials for role's identity id with the account signing key,
// carrying Permissions(role, id). expires 0 never expires. The server needs no change:
// it trusts whatever the account's signing key signs.
func (d *Deployment) NewUser(role Role, id string, expires time.Duration) (*User, error) {
	name, err := UserName(role, id)
	if err != nil {
		return nil, err
	}
	perms, err := Permissions(d.subj, role, id)
	if err != nil {
		return nil, err
	}
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = name
	uc.IssuerAccount = d.Account()
	uc.Pub.Allow.Add(perms.Pub...)
	uc.Sub.Allow.Add(perms.Sub...)
	if expires > 0 {
		uc.Expires = time.Now().Add(expires).Unix()
	}
	tok, err := uc.Encode(d.signing)
	if err != nil {
		return nil, fmt.Errorf("natsauth: sign user %s: %w", name, err)
	}
	seed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(tok, seed)
	if err != nil {
		return nil, err
	}
	return &User{Name: name, PublicKey: upub, Creds: creds, Perms: perms}, nil
}

// Revoke adds a revocation of every JWT issued to the user nkey userKey before now to
// the account JWT and re-signs it. A running server learns it by PushAccount (or a
// restart with the new preload); its connections are then closed and refused.
func (d *Deployment) Revoke(userKey string, at time.Time) error {
	if !nkeys.IsValidPublicUserKey(userKey) {
		return fmt.Errorf("%w: %q is not a user public key (U...)", ErrBadID, userKey)
	}
	ac, err := jwt.DecodeAccountClaims(d.accJWT)
	if err != nil {
		return err
	}
	ac.RevokeAt(userKey, at)
	tok, err := ac.Encode(d.operator)
	if err != nil {
		return err
	}
	d.accJWT = tok
	return nil
}

// Revocations lists the revoked user keys.
func (d *Deployment) Revocations() []string {
	ac, err := jwt.DecodeAccountClaims(d.accJWT)
	if err != nil {
		return nil
	}
	var out []string
	for k := range ac.Revocations {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// CredsPublicKey returns the user public key of a .creds file's JWT.
func CredsPublicKey(creds []byte) (string, error) {
	tok, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return "", fmt.Errorf("natsauth: not a creds file: %w", err)
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return "", fmt.Errorf("natsauth: not a user JWT: %w", err)
	}
	return uc.Subject, nil
}

// ConfigureServer puts opts in operator mode: the deployment's operator trusted, a
// memory resolver preloaded with the system and deployment accounts, the system
// account set. It touches nothing else (listeners, JetStream, cluster routes).
func (d *Deployment) ConfigureServer(opts *server.Options) error {
	return d.ServerTrust().ConfigureServer(opts)
}

// ServerTrust is the public half of a deployment, all a NATS server needs: the
// operator, system account and deployment account JWTs. It holds no seed, so a NATS
// server (a pod, a host) given only these files cannot mint credentials.
type ServerTrust struct {
	OperatorJWT, SystemJWT, AccountJWT string
	System, Account                    string // public keys of the two accounts
}

// ServerTrust returns the deployment's public half.
func (d *Deployment) ServerTrust() *ServerTrust {
	return &ServerTrust{OperatorJWT: d.opJWT, SystemJWT: d.sysJWT, AccountJWT: d.accJWT,
		System: d.SystemAccount(), Account: d.Account()}
}

// ServerFiles are the files LoadServerTrust reads: public JWTs and deployment.json.
// Save also writes them, alone, to the subdirectory ServerDir, which is what to hand to
// NATS servers (e.g. as a Kubernetes Secret made with --from-file=DIR/server).
var ServerFiles = []string{FileMeta, FileOperatorJWT, FileSystemJWT, FileAccountJWT}

// ServerDir is the subdirectory of a saved deployment holding only ServerFiles.
const ServerDir = "server"

// LoadServerTrust reads the public half of a deployment from dir: a deployment's
// directory or its ServerDir (the files are looked up by name, so a Kubernetes Secret
// volume's ..data entries do not matter, and nothing is written).
func LoadServerTrust(dir string) (*ServerTrust, error) {
	m, err := readMeta(dir)
	if err != nil {
		return nil, err
	}
	t := &ServerTrust{System: m.System, Account: m.Account}
	for _, j := range []struct {
		file string
		dst  *string
	}{{FileOperatorJWT, &t.OperatorJWT}, {FileSystemJWT, &t.SystemJWT}, {FileAccountJWT, &t.AccountJWT}} {
		if *j.dst, err = readTrimmed(dir, j.file); err != nil {
			return nil, err
		}
	}
	oc, err := jwt.DecodeOperatorClaims(t.OperatorJWT)
	if err != nil || oc.Subject != m.Operator {
		return nil, fmt.Errorf("natsauth: %s is not operator %s's JWT (%v)", FileOperatorJWT, m.Operator, err)
	}
	for _, a := range []struct{ file, tok, want string }{{FileSystemJWT, t.SystemJWT, m.System}, {FileAccountJWT, t.AccountJWT, m.Account}} {
		ac, err := jwt.DecodeAccountClaims(a.tok)
		if err != nil || ac.Subject != a.want {
			return nil, fmt.Errorf("natsauth: %s is not account %s's JWT (%v)", a.file, a.want, err)
		}
		if ac.Issuer != m.Operator && !oc.SigningKeys.Contains(ac.Issuer) {
			return nil, fmt.Errorf("natsauth: %s is not signed by operator %s", a.file, m.Operator)
		}
	}
	return t, nil
}

// ConfigureServer puts opts in operator mode, as Deployment.ConfigureServer does.
func (t *ServerTrust) ConfigureServer(opts *server.Options) error {
	oc, err := jwt.DecodeOperatorClaims(t.OperatorJWT)
	if err != nil {
		return err
	}
	res := &server.MemAccResolver{}
	if err := res.Store(t.System, t.SystemJWT); err != nil {
		return err
	}
	if err := res.Store(t.Account, t.AccountJWT); err != nil {
		return err
	}
	opts.TrustedOperators = []*jwt.OperatorClaims{oc}
	opts.AccountResolver = res
	opts.SystemAccount = t.System
	return nil
}

// ServerConfig is a nats-server configuration include for a stock nats-server: the
// operator, a MEMORY resolver preloaded with both accounts, and the system account.
// JetStream, listeners and clustering are the including file's business.
func (d *Deployment) ServerConfig() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# shardmatch NATS auth (prefix %q), generated by 'coordinator nats-auth'.\n", d.prefix)
	b.WriteString("# Include it from a nats-server config that enables JetStream, e.g.\n")
	b.WriteString("#   jetstream { store_dir: /data }\n#   include ./nats-server.conf\n")
	b.WriteString("# Users are not listed: any user signed by the account's signing key is accepted.\n")
	fmt.Fprintf(&b, "operator: %q\n", d.opJWT)
	fmt.Fprintf(&b, "system_account: %s\n", d.SystemAccount())
	b.WriteString("resolver: MEMORY\n")
	b.WriteString("resolver_preload: {\n")
	fmt.Fprintf(&b, "  %s: %q\n", d.SystemAccount(), d.sysJWT)
	fmt.Fprintf(&b, "  %s: %q\n", d.Account(), d.accJWT)
	b.WriteString("}\n")
	return b.String()
}

// Save writes the deployment to dir (created if missing, 0700): its JWTs, seeds (0600),
// deployment.json, nats-server.conf and the system user's creds. It refuses a dir that
// already holds a deployment (ErrExists); use Update to rewrite a loaded one.
func (d *Deployment) Save(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, FileMeta)); err == nil {
		return fmt.Errorf("%w in %s (refusing to overwrite its keys)", ErrExists, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return d.write(dir, true)
}

// Update rewrites the parts of a saved deployment that change (the account JWT and
// nats-server.conf), after Revoke.
func (d *Deployment) Update(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, FileMeta)); err != nil {
		return fmt.Errorf("%w in %s: %w", ErrNoDeployment, dir, err)
	}
	return d.write(dir, false)
}

func (d *Deployment) write(dir string, all bool) error {
	seed := func(kp nkeys.KeyPair) []byte { s, _ := kp.Seed(); return append(s, '\n') }
	files := []struct {
		name string
		data []byte
		mode fs.FileMode
	}{
		{FileAccountJWT, []byte(d.accJWT + "\n"), 0o644},
		{FileServerConf, []byte(d.ServerConfig()), 0o644},
	}
	if all {
		m := meta{Prefix: d.prefix, Operator: pub(d.operator), System: d.SystemAccount(), Account: d.Account(),
			SigningKey: pub(d.signing)}
		mb, _ := json.MarshalIndent(m, "", "  ")
		files = append(files, []struct {
			name string
			data []byte
			mode fs.FileMode
		}{
			{FileOperatorJWT, []byte(d.opJWT + "\n"), 0o644},
			{FileOperatorSeed, seed(d.operator), 0o600},
			{FileSystemJWT, []byte(d.sysJWT + "\n"), 0o644},
			{FileSystemSeed, seed(d.system), 0o600},
			{FileSystemCreds, d.sysCreds, 0o600},
			{FileAccountSeed, seed(d.account), 0o600},
			{FileSigningSeed, seed(d.signing), 0o600},
			{FileMeta, append(mb, '\n'), 0o644}, // last: its presence marks a complete deployment
		}...)
	}
	// The server's public half, alone in ServerDir.
	if err := os.MkdirAll(filepath.Join(dir, ServerDir), 0o755); err != nil {
		return err
	}
	for _, f := range slices.Clone(files) {
		if slices.Contains(ServerFiles, f.name) {
			f.name = filepath.Join(ServerDir, f.name)
			files = append(files[:len(files):len(files)], f)
		}
	}
	var written []string
	for _, f := range files {
		if err := fsutil.WriteFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			if all {
				for _, w := range written {
					_ = os.Remove(w)
				}
			}
			return err
		}
		written = append(written, filepath.Join(dir, f.name))
	}
	return nil
}

func pub(kp nkeys.KeyPair) string { p, _ := kp.PublicKey(); return p }

// Load reads a deployment saved in dir. ErrNoDeployment if dir holds none.
func Load(dir string) (*Deployment, error) {
	m, err := readMeta(dir)
	if err != nil {
		return nil, err
	}
	t, err := LoadServerTrust(dir)
	if err != nil {
		return nil, err
	}
	subj, err := natsutil.NewSubjects(m.Prefix)
	if err != nil {
		return nil, err
	}
	d := &Deployment{prefix: subj.Prefix(), subj: subj, opJWT: t.OperatorJWT, sysJWT: t.SystemJWT, accJWT: t.AccountJWT}
	keys := []struct {
		file string
		dst  *nkeys.KeyPair
		want string
	}{
		{FileOperatorSeed, &d.operator, m.Operator},
		{FileSystemSeed, &d.system, m.System},
		{FileAccountSeed, &d.account, m.Account},
		{FileSigningSeed, &d.signing, m.SigningKey},
	}
	for _, k := range keys {
		s, err := readTrimmed(dir, k.file)
		if err != nil {
			return nil, err
		}
		kp, err := nkeys.FromSeed([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("natsauth: %s: %w", k.file, err)
		}
		if p, _ := kp.PublicKey(); p != k.want {
			return nil, fmt.Errorf("natsauth: %s holds %s, %s says %s", k.file, p, FileMeta, k.want)
		}
		*k.dst = kp
	}
	if d.sysCreds, err = os.ReadFile(filepath.Join(dir, FileSystemCreds)); err != nil {
		return nil, fmt.Errorf("natsauth: %w", err)
	}
	return d, nil
}

// readTrimmed reads dir/name without surrounding white space.
func readTrimmed(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", fmt.Errorf("natsauth: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// readMeta reads dir's deployment.json; ErrNoDeployment if it is missing or unreadable.
func readMeta(dir string) (meta, error) {
	var m meta
	b, err := os.ReadFile(filepath.Join(dir, FileMeta))
	if errors.Is(err, fs.ErrNotExist) {
		return m, fmt.Errorf("%w in %s (run 'coordinator nats-auth init --out DIR' and give DIR, or DIR/%s to a NATS server)", ErrNoDeployment, dir, ServerDir)
	}
	if err != nil {
		return m, fmt.Errorf("natsauth: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w in %s: %s: %w", ErrNoDeployment, dir, FileMeta, err)
	}
	return m, nil
}

// PushAccount sends the deployment's current account JWT to the running servers at
// urls as the system user ($SYS.REQ.ACCOUNT.<account>.CLAIMS.UPDATE) and waits for one
// to confirm it. Servers of a cluster pass it on to each other. A server restarted
// from an older nats-server.conf goes back to the older JWT: rewrite its config too.
func PushAccount(ctx context.Context, urls string, d *Deployment) error {
	tok, err := jwt.ParseDecoratedJWT(d.sysCreds)
	if err != nil {
		return err
	}
	seed, err := jwt.ParseDecoratedNKey(d.sysCreds)
	if err != nil {
		return err
	}
	seedBytes, _ := seed.Seed()
	nc, err := nats.Connect(urls, nats.UserJWTAndSeed(tok, string(seedBytes)), nats.Name("shardmatch-nats-auth"))
	if err != nil {
		return fmt.Errorf("natsauth: connect as the system user: %w", err)
	}
	defer nc.Close()
	m, err := nc.RequestWithContext(ctx, "$SYS.REQ.ACCOUNT."+d.Account()+".CLAIMS.UPDATE", []byte(d.accJWT))
	if err != nil {
		return fmt.Errorf("natsauth: push account: %w", err)
	}
	var resp struct {
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return fmt.Errorf("natsauth: push account: undecodable answer %q", m.Data)
	}
	if resp.Error != nil {
		return fmt.Errorf("natsauth: push account: server refused it: %s", resp.Error.Description)
	}
	return nil
}
