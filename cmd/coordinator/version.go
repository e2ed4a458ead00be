package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
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

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "usage: coordinator version")
		return 2
	}
	fmt.Fprintln(stdout, versionString())
	return 0
}
