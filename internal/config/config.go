package config

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// ErrConfig marks a bad config file, a bad environment value or a bad flag value
// found while loading: callers exit with a usage error (2).
var ErrConfig = errors.New("config: invalid configuration")

// FileFlag is the name of the flag that names the config file.
const FileFlag = "config"

// Loader applies a config file and environment variables to the flags of a FlagSet
// that the command line left unset.
type Loader struct {
	// EnvPrefix starts every environment variable, e.g. "SHARDMATCH".
	EnvPrefix string
	// LookupEnv reads the environment (nil: os.LookupEnv). Tests replace it.
	LookupEnv func(string) (string, bool)
	// ReadFile reads the config file (nil: os.ReadFile).
	ReadFile func(string) ([]byte, error)
}

// EnvName is the environment variable that sets flag name: FOO_RAFT_ADDR for
// "raft-addr" with prefix FOO.
func (l Loader) EnvName(name string) string {
	n := strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	if l.EnvPrefix == "" {
		return n
	}
	return l.EnvPrefix + "_" + n
}

// Parse parses args into fs, then gives every flag not set on the command line the
// value of its environment variable, or else of its key in the config file named by
// the -config flag (itself settable from the environment), if fs has one. A
// flag.ErrHelp is returned as is; every other failure wraps ErrConfig and names the
// flag, variable or file line at fault.
func (l Loader) Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrConfig, fs.Arg(0))
	}
	lookup := l.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	// The config file's path follows the same precedence, minus the file itself.
	if f := fs.Lookup(FileFlag); f != nil && !set[FileFlag] {
		if v, ok := lookup(l.EnvName(FileFlag)); ok {
			if err := fs.Set(FileFlag, v); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrConfig, l.EnvName(FileFlag), err)
			}
		}
	}
	var file map[string]fileValue
	if f := fs.Lookup(FileFlag); f != nil && f.Value.String() != "" {
		var err error
		if file, err = l.readFile(f.Value.String()); err != nil {
			return err
		}
		for key, v := range file {
			if key == FileFlag || fs.Lookup(key) == nil {
				return fmt.Errorf("%w: %s:%d: unknown key %q", ErrConfig, f.Value.String(), v.line, v.key)
			}
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == FileFlag {
			return
		}
		if v, ok := lookup(l.EnvName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%w: %s=%q: %w", ErrConfig, l.EnvName(f.Name), v, err))
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if err := fs.Set(f.Name, v.value); err != nil {
				errs = append(errs, fmt.Errorf("%w: %s:%d: %s = %q: %w", ErrConfig, fs.Lookup(FileFlag).Value, v.line, v.key, v.value, err))
			}
		}
	})
	return errors.Join(errs...)
}

type fileValue struct {
	key, value string
	line       int
}

// readFile parses `key = value` lines; keys are normalised to flag names.
func (l Loader) readFile(path string) (map[string]fileValue, error) {
	read := l.ReadFile
	if read == nil {
		read = os.ReadFile
	}
	raw, err := read(path)
	if err != nil {
		return nil, fmt.Errorf("%w: config file: %w", ErrConfig, err)
	}
	out := map[string]fileValue{}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%w: %s:%d: want `key = value`, got %q", ErrConfig, path, n, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else if i := strings.Index(v, " #"); i >= 0 { // trailing comment on an unquoted value
			v = strings.TrimSpace(v[:i])
		}
		name := strings.ReplaceAll(strings.ToLower(k), "_", "-")
		if name == "" {
			return nil, fmt.Errorf("%w: %s:%d: empty key", ErrConfig, path, n)
		}
		if prev, dup := out[name]; dup {
			return nil, fmt.Errorf("%w: %s:%d: key %q repeats line %d", ErrConfig, path, n, k, prev.line)
		}
		out[name] = fileValue{key: k, value: v, line: n}
	}
	return out, sc.Err()
}

// PrintDefaults writes every flag of fs with its environment variable, config file
// key, default and usage: the listing `--help` shows.
func (l Loader) PrintDefaults(w io.Writer, fs *flag.FlagSet) {
	var flags []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f) })
	sort.Slice(flags, func(i, j int) bool { return flags[i].Name < flags[j].Name })
	for _, f := range flags {
		name, usage := flag.UnquoteUsage(f)
		head := "  --" + f.Name
		if name != "" {
			head += " " + name
		}
		fmt.Fprintln(w, head)
		fmt.Fprintf(w, "      %s\n", usage)
		src := "env " + l.EnvName(f.Name)
		if f.Name != FileFlag {
			src += ", file key " + f.Name
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			src += fmt.Sprintf(", default %q", f.DefValue)
		}
		fmt.Fprintf(w, "      (%s)\n", src)
	}
}
