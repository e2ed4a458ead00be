package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is set at build time: go build -ldflags "-X github.com/shardmatch/shardmatch/cmd/internal/cli.Version=v1.2.3".
var Version = ""

// BuildInfo is what `version -o json|yaml` prints.
type BuildInfo struct {
	Binary    string `json:"binary"`
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
}

// ReadBuildInfo is binary's build: Version (or the module's), the VCS revision and the
// Go release.
func ReadBuildInfo(binary string) BuildInfo {
	b := BuildInfo{Binary: binary, Version: Version, GoVersion: runtime.Version()}
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

// String is the one-line form: "coordinator v1.2.3 0123456789ab-dirty go1.26".
func (b BuildInfo) String() string {
	out := b.Binary + " " + b.Version
	if len(b.Revision) >= 12 {
		out += " " + b.Revision[:12]
		if b.Modified {
			out += "-dirty"
		}
	}
	return out + " " + b.GoVersion
}

// NewVersionCmd is `<binary> version [-o json|yaml]`; the root's --version prints the
// same line.
func NewVersionCmd(binary string) *cobra.Command {
	c := &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Long:    "Print the version, the VCS revision and the Go release this binary was built from (also: " + binary + " --version).",
		Example: "  " + binary + " version\n  " + binary + " version -o json",
		Args:    NoArgs,
	}
	out := AddOutputFlag(c)
	c.RunE = func(c *cobra.Command, _ []string) error {
		b := ReadBuildInfo(binary)
		return out.Print(c.OutOrStdout(), b, func(w io.Writer) error {
			_, err := fmt.Fprintln(w, b.String())
			return err
		})
	}
	return c
}
