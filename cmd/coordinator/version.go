package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = ""

// versionString names the build: the version (or the module's), the VCS revision and
// the Go release.
func versionString() string {
	v, rev, dirty := version, "", false
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && len(s.Value) >= 12:
				rev = s.Value[:12]
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = true
			}
		}
	}
	if rev != "" && dirty {
		rev += "-dirty"
	}
	if v == "" {
		v = "(devel)"
	}
	out := "coordinator " + v
	if rev != "" {
		out += " " + rev
	}
	return out + " " + runtime.Version()
}

// buildInfo is `version -o json|yaml`.
type buildInfo struct {
	Binary    string `json:"binary"`
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
}

// readBuildInfo is the build versionString describes, field by field.
func readBuildInfo() buildInfo {
	b := buildInfo{Binary: "coordinator", Version: version, GoVersion: runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" {
			b.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	return b
}

func newVersionCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Long:    "Print the version, the VCS revision and the Go release this binary was built from (also: coordinator --version).",
		Example: "  coordinator version\n  coordinator version -o json",
		Args:    cli.NoArgs,
	}
	out := cli.AddOutputFlag(c)
	c.RunE = func(c *cobra.Command, _ []string) error {
		return out.Print(c.OutOrStdout(), readBuildInfo(), func(w io.Writer) error {
			_, err := fmt.Fprintln(w, versionString())
			return err
		})
	}
	return c
}
