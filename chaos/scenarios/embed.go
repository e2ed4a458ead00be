// Package scenarios holds the shipped chaos scenarios as YAML files and embeds them.
// It is data only: package chaos/scenario parses, defaults and validates them.
//
// Each file is one scenario; its name without .yaml is the scenario's name. A file
// whose scenario sets unsafe: is a checker-bites run (it proves a checker catches a
// deliberately broken coordinator) and is marked hidden.
package scenarios

import "embed"

// FS holds every shipped scenario file (*.yaml) at its root.
//
//go:embed *.yaml
var FS embed.FS
