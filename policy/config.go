package policy

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/shardmatch/shardmatch/clock"
)

// Config configures an Engine. The zero value is usable: the embedded default
// bundle, a 50ms evaluation timeout, no logging, the real clock.
type Config struct {
	// BundleDir is the directory of the policy bundle: *.rego files (those ending
	// in _test.rego are tests and are not loaded into the engine), data.json (or
	// data.yaml) files, and an optional .manifest whose "revision" is prefixed to
	// the bundle's content hash. Hidden files and directories are ignored, except
	// that symlinked files are followed, and a Kubernetes volume's layout (the
	// ..data link and its timestamped directory) is read through its visible
	// links only, once. Empty means the default bundle embedded in the binary.
	BundleDir string

	// EvalTimeout bounds one evaluation; past it the proposal is denied with
	// POLICY_ERROR. Zero means DefaultEvalTimeout. It bounds CPU spent in this
	// process, so it is measured on the runtime's timers, not on Clock.
	EvalTimeout time.Duration

	// PollInterval is how often Watch looks for changed bundle files. Zero means
	// DefaultPollInterval; negative disables polling (SIGHUP still reloads).
	PollInterval time.Duration

	// Logger receives reload events and errors. Nil discards them.
	Logger *slog.Logger

	// Clock drives Watch's poll ticker and the reload timestamps. Nil means the
	// real clock.
	Clock clock.Clock

	// Signals, if not nil, replaces SIGHUP as Watch's "reload now" trigger: every
	// value received reloads. Tests use it; production leaves it nil.
	Signals <-chan os.Signal
}

// Defaults for Config's zero fields.
const (
	DefaultEvalTimeout  = 50 * time.Millisecond
	DefaultPollInterval = 2 * time.Second
)

// withDefaults validates c and fills its zero fields.
func (c Config) withDefaults() (Config, error) {
	if c.EvalTimeout < 0 {
		return c, fmt.Errorf("%w: EvalTimeout (%s) must be >= 0", ErrConfig, c.EvalTimeout)
	}
	if c.EvalTimeout == 0 {
		c.EvalTimeout = DefaultEvalTimeout
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = clock.NewReal()
	}
	return c, nil
}
