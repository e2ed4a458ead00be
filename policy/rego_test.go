package policy

import (
	"context"
	"testing"
)

// TestDefaultBundleRegoTests runs the default bundle's Rego tests
// (bundles/default/*_test.rego), as `coordinator policy test` does.
func TestDefaultBundleRegoTests(t *testing.T) {
	rep, err := TestBundle(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	pass, fail, skip := rep.Counts()
	t.Logf("%s %s: %d passed, %d failed, %d skipped", rep.Source, rep.Revision, pass, fail, skip)
	if pass < 40 {
		t.Errorf("only %d Rego tests passed; the default bundle has more", pass)
	}
	for _, r := range rep.Results {
		if !r.Pass && !r.Skip {
			t.Errorf("%s (%s) failed: err=%v output=%q", r.Name, r.Location, r.Err, r.Output)
		}
	}
}
