// Command gen writes the chart's README.md from README.md.gotmpl and the `# --`
// comments of values.yaml. Run it through `go generate ./deploy/helm/...`.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shardmatch/shardmatch/deploy/helm/render"
)

func main() {
	chart := flag.String("chart", render.ChartDir(), "chart `directory`")
	flag.Parse()
	out, err := render.Readme(*chart)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	path := filepath.Join(*chart, "README.md")
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, out) {
		return
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	fmt.Println("wrote", path)
}
