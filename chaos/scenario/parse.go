package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shardmatch/shardmatch/chaos/history"
	"github.com/shardmatch/shardmatch/chaos/scenarios"
)

// Errors. Test with errors.Is; a *ValidationError matches ErrInvalid.
var (
	// ErrSyntax: the YAML is malformed, has an unknown field, or a value of the
	// wrong type.
	ErrSyntax = errors.New("scenario: syntax error")
	// ErrInvalid: the scenario decodes but breaks a rule (see Validate).
	ErrInvalid = errors.New("scenario: invalid")
	// ErrNotFound: Lookup found neither a builtin scenario nor a file by that name.
	ErrNotFound = errors.New("scenario: not found")
)

// Defaults of every field a scenario may leave out.
const (
	DefaultSettle          = 15 * time.Second
	DefaultCoordinators    = 3
	DefaultShards          = 3
	DefaultPlayersPerShard = 200
	DefaultRho             = 0.01
	DefaultPrepareTimeout  = 2 * time.Second
	DefaultRate            = 40.0
	DefaultInFlight        = 16
	DefaultMatchSize       = 0 // the reference mix of duels and 5v5s
	DefaultHotPlayers      = 8
	DefaultMatchTTL        = 5 * time.Second
	DefaultRenewEvery      = time.Second
	DefaultMatchLength     = 3 * time.Second
	DefaultAbandonShare    = 0.1
	DefaultResumeWithin    = 3 * time.Second
	DefaultTerminateWithin = 10 * time.Second
)

// New returns a scenario with every default filled in and no name, duration or
// faults. Parse decodes onto it, so a field the YAML leaves out keeps its default
// while an explicit zero (renew_every: 0) stays zero.
func New() *Scenario {
	return &Scenario{
		Settle: Duration(DefaultSettle),
		Topology: Topology{
			Coordinators: DefaultCoordinators, Shards: DefaultShards, PlayersPerShard: DefaultPlayersPerShard,
			Rho: DefaultRho, PrepareTimeout: Duration(DefaultPrepareTimeout),
		},
		Workload: Workload{
			Rate: DefaultRate, InFlight: DefaultInFlight, MatchSize: DefaultMatchSize, HotPlayers: DefaultHotPlayers,
			MatchTTL: Duration(DefaultMatchTTL), RenewEvery: Duration(DefaultRenewEvery),
			MatchLength: Duration(DefaultMatchLength), AbandonShare: DefaultAbandonShare,
		},
		Checks: Checks{
			Invariants:      slices.Clone(history.Invariants),
			ResumeWithin:    Duration(DefaultResumeWithin),
			TerminateWithin: Duration(DefaultTerminateWithin),
		},
	}
}

// Parse decodes one scenario strictly (an unknown field is an error), fills in the
// defaults and validates it.
func Parse(data []byte) (*Scenario, error) { return parse(data, "") }

// parse is Parse with a name to use if the YAML has none (a file's base name).
func parse(data []byte, defaultName string) (*Scenario, error) {
	s := New()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty document", ErrSyntax)
		}
		if errors.Is(err, ErrSyntax) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one YAML document; a file holds one scenario", ErrSyntax)
	}
	if s.Name == "" {
		s.Name = defaultName
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// Load reads and parses a scenario file. A scenario without a name takes the file's
// base name without its extension.
func Load(file string) (*Scenario, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	s, err := parse(data, strings.TrimSuffix(filepath.Base(file), filepath.Ext(file)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return s, nil
}

// Builtin parses every shipped scenario (chaos/scenarios/*.yaml), keyed by name. Each
// call returns fresh values the caller may change. An error names the broken file;
// the package's tests make sure there is none.
func Builtin() (map[string]*Scenario, error) { return loadFS(scenarios.FS) }

func loadFS(fsys fs.FS) (map[string]*Scenario, error) {
	files, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	out := make(map[string]*Scenario, len(files))
	var errs []error
	for _, f := range files {
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		base := strings.TrimSuffix(f, path.Ext(f))
		s, err := parse(data, base)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("builtin %s: %w", f, err))
		case s.Name != base:
			errs = append(errs, fmt.Errorf("%w: builtin %s: name %q must match the file name", ErrInvalid, f, s.Name))
		default:
			out[s.Name] = s
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// BuiltinNames lists the shipped scenarios: the experiments sorted by name, then the
// hidden (checker-bites) ones sorted by name. If a builtin does not parse, it falls
// back to the sorted file names.
func BuiltinNames() []string {
	all, err := Builtin()
	if err != nil {
		files, _ := fs.Glob(scenarios.FS, "*.yaml")
		for i, f := range files {
			files[i] = strings.TrimSuffix(f, ".yaml")
		}
		return files
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		if ha, hb := all[a].Hidden, all[b].Hidden; ha != hb {
			if ha {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})
	return names
}

// Lookup returns the builtin scenario of that name or, failing that, loads the file
// at that path.
func Lookup(nameOrPath string) (*Scenario, error) {
	all, err := Builtin()
	if err != nil {
		return nil, err
	}
	if s, ok := all[nameOrPath]; ok {
		return s, nil
	}
	if _, statErr := os.Stat(nameOrPath); statErr == nil {
		return Load(nameOrPath)
	}
	return nil, fmt.Errorf("%w: %q is neither a builtin scenario (%s) nor a file",
		ErrNotFound, nameOrPath, strings.Join(BuiltinNames(), ", "))
}
