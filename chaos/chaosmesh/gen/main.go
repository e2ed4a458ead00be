// Command gen writes the Chaos Mesh manifests of the shipped chaos scenarios, one
// file of standalone objects and one timed Workflow per scenario, and removes
// generated files whose scenario is gone. Run it through `go generate
// ./chaos/chaosmesh`. With -chart it writes the Helm chart's templates/chaos instead.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/shardmatch/shardmatch/chaos/chaosmesh"
)

func main() {
	out := flag.String("out", "deploy/chaos-mesh", "output `directory`")
	release := flag.String("release", chaosmesh.DefaultRelease, "Helm release the manifests select")
	namespace := flag.String("namespace", "", "namespace of the experiments and pods (default: the one kubectl applies to)")
	chart := flag.Bool("chart", false, "write the Helm chart's templates (templates/chaos) to -out instead: selectors from the release, behind chaosMesh.enabled")
	flag.Parse()
	write := func() ([]string, []string, error) {
		return chaosmesh.WriteFiles(*out, chaosmesh.Options{Release: *release, Namespace: *namespace})
	}
	if *chart {
		write = func() ([]string, []string, error) { return chaosmesh.WriteChartFiles(*out) }
	}
	written, removed, err := write()
	for _, p := range written {
		fmt.Println("wrote", p)
	}
	for _, p := range removed {
		fmt.Println("removed", p)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
