package policy

import (
	"embed"
	"io/fs"
)

//go:embed bundles/default
var embedded embed.FS

// DefaultBundle returns the default bundle compiled into the binary, rooted at
// the bundle directory. It is what an Engine loads when Config.BundleDir is
// empty, and what `coordinator policy test` tests without --bundle.
func DefaultBundle() fs.FS {
	sub, err := fs.Sub(embedded, "bundles/default")
	if err != nil {
		panic("policy: embedded default bundle missing: " + err.Error())
	}
	return sub
}
