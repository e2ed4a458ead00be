package scenario

import (
	"io/fs"
	"testing"

	"github.com/shardmatch/shardmatch/chaos/scenarios"
)

// FuzzParse: a scenario file either parses to a scenario that validates (again), or
// fails with ErrSyntax or a validation error; it never panics. The built-in
// scenarios are the seeds.
func FuzzParse(f *testing.F) {
	files, _ := fs.Glob(scenarios.FS, "*.yaml")
	for _, name := range files {
		b, err := fs.ReadFile(scenarios.FS, name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("name: x\n---\nname: y\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			if s != nil || err.Error() == "" {
				t.Fatalf("Parse returned a scenario and %v", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("a parsed scenario does not validate: %v", err)
		}
	})
}
