package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/shardmatch/shardmatch/internal/config"
)

// GoFlagsOptions tunes AddGoFlags.
type GoFlagsOptions struct {
	// Env names the environment variable that sets a flag, shown in its help ("": none).
	Env func(name string) string
	// Long renames flags on the command line: a one-letter standard flag ("v", "i")
	// keeps its letter as the shorthand (-v) and gets this long name (--verbose).
	Long map[string]string
}

// AddGoFlags puts every flag of fs on pfs, parsed the pflag way (--name value,
// --name=value, interspersed with arguments). A value given on the command line is set
// through fs.Set, so fs.Visit sees it as set: config.Loader then knows the command line
// set it (flag > env > config file).
func AddGoFlags(pfs *pflag.FlagSet, fs *flag.FlagSet, o GoFlagsOptions) {
	fs.VisitAll(func(f *flag.Flag) {
		name, short := f.Name, ""
		if long, ok := o.Long[f.Name]; ok {
			name = long
			if len(f.Name) == 1 {
				short = f.Name
			}
		} else if len(f.Name) == 1 {
			short = f.Name
		}
		v := goValue{fs: fs, f: f}
		var pv pflag.Value = v
		if isBool(f) {
			pv = goBoolValue{v}
		}
		usage := f.Usage
		if o.Env != nil {
			if env := o.Env(f.Name); env != "" {
				usage += " (env " + env + ")"
			}
		}
		pf := pfs.VarPF(pv, name, short, usage)
		pf.DefValue = f.DefValue
		if pf.DefValue == "0s" {
			pf.DefValue = "0"
		}
		if isBool(f) {
			pf.NoOptDefVal = "true"
		}
	})
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// goValue is a standard library flag seen through pflag.Value.
type goValue struct {
	fs *flag.FlagSet
	f  *flag.Flag
}

func (v goValue) String() string { return v.f.Value.String() }

func (v goValue) Set(s string) error {
	if err := v.fs.Set(v.f.Name, s); err != nil {
		return explainValue(v.f, s, err)
	}
	return nil
}

// Type is the value's kind, the placeholder pflag shows in help.
func (v goValue) Type() string {
	g, ok := v.f.Value.(flag.Getter)
	if !ok {
		return "value"
	}
	switch g.Get().(type) {
	case time.Duration:
		return "duration"
	case bool:
		return "bool"
	case int, int64, uint, uint64:
		return "int"
	case float64:
		return "float"
	case string:
		return "string"
	}
	return "value"
}

// goBoolValue is a goValue whose flag needs no value (--flag means --flag=true).
type goBoolValue struct{ goValue }

func (goBoolValue) IsBoolFlag() bool { return true }

// explainValue says what a typed flag wants instead of the flag package's bare
// "parse error".
func explainValue(f *flag.Flag, s string, err error) error {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return err
	}
	want := ""
	switch g.Get().(type) {
	case time.Duration:
		want = durationHint
	case bool:
		want = "want true or false"
	case int, int64, uint, uint64:
		want = "want an integer"
	case float64:
		want = "want a number"
	}
	if want == "" || strings.Contains(err.Error(), "want") {
		return err
	}
	if msg := err.Error(); msg != "parse error" && msg != "value out of range" {
		return fmt.Errorf("%w (%s)", err, want)
	}
	return errors.New(want)
}

// DurationValue is a time.Duration flag whose error says what it wants.
type DurationValue struct{ D *time.Duration }

func (d DurationValue) String() string {
	if d.D == nil {
		return "0"
	}
	return d.D.String()
}
func (d DurationValue) Type() string { return "duration" }
func (d DurationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New(durationHint)
	}
	*d.D = v
	return nil
}

// ParseConfigured parses args into fs as a command whose flags AddGoFlags bridged does
// (for tests and callers that do not run the cobra tree): the command line in pflag's
// syntax, with no positional argument, then every flag it did not set from ld's
// environment variables and config file. -h and --help return pflag.ErrHelp.
func ParseConfigured(fs *flag.FlagSet, ld config.Loader, args []string) error {
	pfs := pflag.NewFlagSet(fs.Name(), pflag.ContinueOnError)
	pfs.SetOutput(io.Discard)
	AddGoFlags(pfs, fs, GoFlagsOptions{Env: ld.EnvName})
	if err := pfs.Parse(args); err != nil {
		return err
	}
	if pfs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", pfs.Arg(0))
	}
	return ld.Parse(fs, nil)
}
