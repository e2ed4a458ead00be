package procs

import (
	"runtime"
	"testing"
)

func TestApply(t *testing.T) {
	def := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(def) })
	if got := Apply(func(string) string { return "3" }); got != def || runtime.GOMAXPROCS(0) != def {
		t.Fatalf("with GOMAXPROCS set: %d (runtime %d), want %d unchanged", got, runtime.GOMAXPROCS(0), def)
	}
	if got := Apply(func(string) string { return "" }); got != def*Factor || runtime.GOMAXPROCS(0) != def*Factor {
		t.Fatalf("without GOMAXPROCS: %d (runtime %d), want %d", got, runtime.GOMAXPROCS(0), def*Factor)
	}
}
