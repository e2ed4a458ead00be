package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader/filter"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// Query is the document every bundle must define.
const Query = "data.shardmatch.match"

// modesPath is where a bundle's data keeps the per-mode (queue) config that the
// engine copies into input.queue.
var modesPath = []string{"shardmatch", "modes"}

// QueuesRule is the document a bundle may define to derive input.queue from
// its data: the mode configs as the rules read them (defaults filled in,
// knobs combined). It may read data only. The engine evaluates it once, when
// the bundle loads, and gives each evaluation its mode's entry; a bundle
// without it gets data.shardmatch.modes[mode] as it is.
const QueuesRule = "data.shardmatch.queues"

// unsafeBuiltins are refused in policies: evaluation sits on the coordinator's
// hot path and must not wait on the network.
var unsafeBuiltins = map[string]struct{}{
	"http.send":          {},
	"net.lookup_ip_addr": {},
}

// snapshot is a bundle's files read once into memory: the bytes that are hashed
// are exactly the bytes that are compiled, whatever happens to the directory
// meanwhile.
type snapshot struct {
	source string            // for messages: the directory, or "embedded:default"
	files  map[string][]byte // slash-separated paths relative to the bundle root
	hash   string            // hex sha256 over paths and contents
	// fingerprint summarises names, sizes and mtimes, read before the contents:
	// Watch compares it to decide whether anything changed without reading files.
	fingerprint string
}

// isBundleFile reports whether a file (by its slash path) belongs to the bundle.
func isBundleFile(p string) bool {
	base := path.Base(p)
	switch {
	case p == ".manifest":
		return true
	case strings.HasPrefix(base, "."):
		return false
	case strings.HasSuffix(base, ".rego"):
		return true
	case base == "data.json" || base == "data.yaml" || base == "data.yml":
		return true
	}
	return false
}

// kubeDataLink is the symlink through which a Kubernetes volume projected by
// the kubelet (ConfigMap, Secret, projected) reaches its current files: the real
// files live in a hidden timestamped directory "..2006_01_02_15_04_05.<random>"
// that ..data points at, and each visible top-level name x is a symlink to
// "..data/x". An update writes a new timestamped directory and renames a new
// symlink over ..data: one atomic switch, whatever the files' stat says.
const kubeDataLink = "..data"

// bundleFiles lists the bundle's files in fsys with their stat info, sorted by
// path. Hidden files and directories are skipped (.git, and the ..data link and
// timestamped directories of a Kubernetes volume, whose files are reached
// through the visible symlinks at the top). Symlinks to files are followed; a
// symlink to a directory is followed only if it is a Kubernetes volume's
// visible link into ..data (a ConfigMap item with a path "dir/x.rego"). A
// symlink whose target does not exist is skipped: during a Kubernetes update a
// removed name dangles until the kubelet deletes it.
func bundleFiles(fsys fs.FS) ([]string, []fs.FileInfo, error) {
	var paths []string
	var infos []fs.FileInfo
	var visit fs.WalkDirFunc
	visit = func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 && !strings.HasPrefix(d.Name(), ".") && isKubeDirLink(fsys, p) {
			return fs.WalkDir(fsys, p, visit)
		}
		if !isBundleFile(p) {
			return nil
		}
		fi, err := fs.Stat(fsys, p) // follows symlinks
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a dangling symlink, or a file removed since the directory was read
		}
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		paths = append(paths, p)
		infos = append(infos, fi)
		return nil
	}
	err := fs.WalkDir(fsys, ".", visit)
	return paths, infos, err
}

// isKubeDirLink reports whether the symlink p is a Kubernetes volume's visible
// link to a directory inside ..data.
func isKubeDirLink(fsys fs.FS, p string) bool {
	if strings.Contains(p, "/") {
		return false // the kubelet links top-level names only
	}
	target, err := fs.ReadLink(fsys, p)
	if err != nil || target != kubeDataLink+"/"+p {
		return false
	}
	fi, err := fs.Stat(fsys, p)
	return err == nil && fi.IsDir()
}

// volumeVersion names the version of a Kubernetes volume: the target of its
// ..data link ("" if fsys is not one). Every update changes it, so it tells a
// rewrite that the files' sizes and mtimes cannot (same size, and an mtime
// the filesystem's granularity does not separate).
func volumeVersion(fsys fs.FS) string {
	target, err := fs.ReadLink(fsys, kubeDataLink)
	if err != nil {
		return ""
	}
	return target
}

// fingerprint of a bundle directory: cheap (stat only), for change detection.
func fingerprint(fsys fs.FS) (string, error) {
	version := volumeVersion(fsys)
	paths, infos, err := bundleFiles(fsys)
	if err != nil {
		return "", err
	}
	return fingerprintOf(version, paths, infos), nil
}

func fingerprintOf(version string, paths []string, infos []fs.FileInfo) string {
	var b strings.Builder
	if version != "" {
		b.WriteString(kubeDataLink + " -> " + version + "\n")
	}
	for i, p := range paths {
		b.WriteString(p)
		b.WriteByte(0)
		b.WriteString(strconv.FormatInt(infos[i].Size(), 10))
		b.WriteByte(0)
		b.WriteString(strconv.FormatInt(infos[i].ModTime().UnixNano(), 10))
		b.WriteByte('\n')
	}
	return b.String()
}

// readSnapshot reads every bundle file of fsys into memory.
func readSnapshot(fsys fs.FS, source string) (*snapshot, error) {
	version := volumeVersion(fsys)
	paths, infos, err := bundleFiles(fsys)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBundle, source, err)
	}
	s := &snapshot{source: source, files: make(map[string][]byte, len(paths)), fingerprint: fingerprintOf(version, paths, infos)}
	h := sha256.New()
	rego := 0
	for _, p := range paths {
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBundle, source, err)
		}
		s.files[p] = b
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		if strings.HasSuffix(p, ".rego") && !strings.HasSuffix(p, "_test.rego") {
			rego++
		}
	}
	if rego == 0 {
		return nil, fmt.Errorf("%w: %s: no policy (.rego) files", ErrBundle, source)
	}
	s.hash = hex.EncodeToString(h.Sum(nil))
	return s, nil
}

// memLoader feeds a snapshot to OPA's bundle reader.
type memLoader struct {
	s     *snapshot
	paths []string
	next  int
}

func newMemLoader(s *snapshot) *memLoader {
	paths := make([]string, 0, len(s.files))
	for p := range s.files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return &memLoader{s: s, paths: paths}
}

var _ bundle.DirectoryLoader = (*memLoader)(nil)

func (l *memLoader) NextFile() (*bundle.Descriptor, error) {
	if l.next >= len(l.paths) {
		return nil, io.EOF
	}
	p := l.paths[l.next]
	l.next++
	return bundle.NewDescriptor("/"+p, "/"+p, bytes.NewReader(l.s.files[p])), nil
}

func (l *memLoader) WithFilter(filter.LoaderFilter) bundle.DirectoryLoader   { return l }
func (l *memLoader) WithPathFormat(bundle.PathFormat) bundle.DirectoryLoader { return l }
func (l *memLoader) WithSizeLimitBytes(int64) bundle.DirectoryLoader         { return l }
func (l *memLoader) WithFollowSymlinks(bool) bundle.DirectoryLoader          { return l }

// parseBundle parses a snapshot as an OPA bundle (Rego v1).
func parseBundle(s *snapshot) (*bundle.Bundle, error) {
	b, err := bundle.NewCustomReader(newMemLoader(s)).
		WithRegoVersion(ast.RegoV1).
		WithSkipBundleVerification(true).
		WithProcessAnnotations(true).
		WithBaseDir(s.source).
		Read()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBundle, s.source, err)
	}
	if b.Data == nil {
		b.Data = map[string]any{}
	}
	return &b, nil
}

func isTestModule(m bundle.ModuleFile) bool {
	return strings.HasSuffix(m.RelativePath, "_test.rego")
}

// compiled is one loaded bundle version: everything an evaluation needs, never
// changed after it is built, and swapped in and out of the engine as a whole.
type compiled struct {
	revision    string
	hash        string
	fingerprint string
	source      string
	loadedAt    time.Time
	query       *preparedQuery
	// queues holds input.queue per mode as AST values, ready to be put into the
	// input without conversion: data.shardmatch.queues[mode] if the bundle
	// defines it, else data.shardmatch.modes[mode].
	queues map[string]*ast.Term
}

// revisionOf names a bundle version: the manifest revision if there is one, then
// the first 16 hex digits of the content hash.
func revisionOf(manifestRevision, hash string) string {
	r := "sha256:" + hash[:16]
	if manifestRevision != "" {
		r = manifestRevision + "@" + r
	}
	return r
}

// compile loads a snapshot into a prepared query and checks that the query
// answers a trivial proposal with a well-formed verdict.
func compile(ctx context.Context, s *snapshot, now time.Time) (*compiled, error) {
	b, err := parseBundle(s)
	if err != nil {
		return nil, err
	}
	queues, err := queuesOf(b.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBundle, s.source, err)
	}
	store := inmem.NewFromObjectWithOpts(b.Data,
		inmem.OptRoundTripOnWrite(false),
		inmem.OptReturnASTValuesOnRead(true))
	var modules []*ast.Module
	for _, m := range b.Modules {
		if !isTestModule(m) {
			modules = append(modules, m.Parsed)
		}
	}
	query, err := prepareQuery(ctx, modules, store)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBundle, s.source, err)
	}
	if derived, err := derivedQueues(ctx, query); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBundle, s.source, err)
	} else if derived != nil {
		// A derived config that drops a mode is a bug (a queues that reads
		// input is empty here): refuse it rather than deny the mode forever.
		for m := range queues {
			if _, ok := derived[m]; !ok {
				return nil, fmt.Errorf("%w: %s: %s has no entry for mode %q of data.%s (it may read data only, not input)",
					ErrBundle, s.source, QueuesRule, m, strings.Join(modesPath, "."))
			}
		}
		queues = derived
	}
	c := &compiled{
		revision:    revisionOf(b.Manifest.Revision, s.hash),
		hash:        s.hash,
		fingerprint: s.fingerprint,
		source:      s.source,
		loadedAt:    now,
		query:       query,
		queues:      queues,
	}
	if err := c.smokeTest(ctx); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBundle, s.source, err)
	}
	return c, nil
}

// queuesOf converts data.shardmatch.modes to one AST value per mode.
func queuesOf(data map[string]any) (map[string]*ast.Term, error) {
	var cur any = data
	for _, k := range modesPath {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("data.%s must be an object", strings.Join(modesPath, "."))
		}
		if cur, ok = m[k]; !ok {
			return map[string]*ast.Term{}, nil // no modes: every mode is unknown
		}
	}
	modes, ok := cur.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("data.%s must be an object of mode configs", strings.Join(modesPath, "."))
	}
	out := make(map[string]*ast.Term, len(modes))
	for name, cfg := range modes {
		if _, ok := cfg.(map[string]any); !ok {
			return nil, fmt.Errorf("data.%s[%q] must be an object", strings.Join(modesPath, "."), name)
		}
		v, err := ast.InterfaceToValue(cfg)
		if err != nil {
			return nil, fmt.Errorf("data.%s[%q]: %v", strings.Join(modesPath, "."), name, err)
		}
		out[name] = ast.NewTerm(v)
	}
	return out, nil
}

// derivedQueues evaluates QueuesRule once; nil if the bundle does not define
// it. It must be an object of objects, with an entry for every mode (compile
// checks that).
func derivedQueues(ctx context.Context, q *preparedQuery) (map[string]*ast.Term, error) {
	ref := ast.MustParseRef(QueuesRule)
	if len(q.compiler.GetRulesExact(ref)) == 0 {
		return nil, nil
	}
	t, err := q.evalStatic(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("evaluating %s: %v", QueuesRule, err)
	}
	if t == nil {
		return nil, fmt.Errorf("%s is undefined (it may read data only, not input)", QueuesRule)
	}
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%s must be an object of mode configs, not %s", QueuesRule, ast.ValueName(t.Value))
	}
	out := make(map[string]*ast.Term, obj.Len())
	err = obj.Iter(func(k, v *ast.Term) error {
		name, ok := k.Value.(ast.String)
		if !ok {
			return fmt.Errorf("%s has the key %v: mode names are strings", QueuesRule, k)
		}
		if _, ok := v.Value.(ast.Object); !ok {
			return fmt.Errorf("%s[%q] must be an object, not %s", QueuesRule, string(name), ast.ValueName(v.Value))
		}
		out[string(name)] = v
		return nil
	})
	return out, err
}

// smokeTest evaluates the query once on a one-player proposal: a bundle whose
// query is undefined, errors, or answers in the wrong shape is refused at load
// time instead of denying every proposal with POLICY_ERROR afterwards.
func (c *compiled) smokeTest(ctx context.Context) error {
	mode := ""
	for m := range c.queues {
		if mode == "" || m < mode {
			mode = m
		}
	}
	p := smokeProposal(mode)
	in, err := buildInput(p, nil, c.queues)
	if err != nil {
		return err
	}
	t, err := c.query.eval(ctx, in, 10*time.Second)
	if err != nil {
		return fmt.Errorf("smoke evaluation of %s: %v", Query, err)
	}
	if _, _, err := parseMatch(t); err != nil {
		return fmt.Errorf("smoke evaluation of %s: %v", Query, err)
	}
	return nil
}

// smokeProposal is the least a policy must be able to judge.
func smokeProposal(mode string) *smv1.Proposal {
	return &smv1.Proposal{
		ProposalId: "policy-smoke-test",
		Mode:       mode,
		Teams: []*smv1.Team{{Players: []*smv1.Player{{
			PlayerId:   "smoke-player",
			ShardId:    "smoke-shard",
			Attributes: &smv1.PlayerAttributes{Mmr: 1000, Region: "smoke-region"},
		}}}},
	}
}

// errUndefined: the bundle does not define the query for this input.
var errUndefined = errors.New(Query + " is undefined (does the bundle define package shardmatch with a rule `match`?)")
