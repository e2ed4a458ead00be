package doctest

import (
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// ruleFile is the part of a Prometheus rule file the guide's alerts use.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert  string            `json:"alert"`
			Expr   string            `json:"expr"`
			For    string            `json:"for,omitempty"`
			Labels map[string]string `json:"labels,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

// TestGuideAlertRules: the alerts block of the operator's guide (marked
// `<!-- test: alert-rules -->`) is a Prometheus rule file, strictly decoded: every rule
// has a name and an expression with balanced brackets, and a valid `for`. (That each
// metric it names exists is checked against a live cluster by
// TestReadmeMultiProcess/GuideMetrics.)
func TestGuideAlertRules(t *testing.T) {
	blocks, err := Blocks(readDoc(t, "docs/operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range blocks {
		if b.Marker != "alert-rules" {
			continue
		}
		var f ruleFile
		if err := yaml.UnmarshalStrict([]byte(b.Text), &f); err != nil {
			t.Fatalf("docs/operations.md:%d: not a rule file: %v", b.Line, err)
		}
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				n++
				if r.Alert == "" || strings.TrimSpace(r.Expr) == "" {
					t.Errorf("docs/operations.md:%d: a rule without alert or expr: %+v", b.Line, r)
				}
				if !balanced(r.Expr) {
					t.Errorf("docs/operations.md:%d: %s: unbalanced brackets in %q", b.Line, r.Alert, r.Expr)
				}
				if r.For != "" {
					if _, err := time.ParseDuration(r.For); err != nil {
						t.Errorf("docs/operations.md:%d: %s: for %q: %v", b.Line, r.Alert, r.For, err)
					}
				}
			}
		}
	}
	if n < 5 {
		t.Errorf("only %d alert rules found: the alert-rules marker went missing", n)
	}
}

func balanced(s string) bool {
	var stack []rune
	pair := map[rune]rune{')': '(', ']': '[', '}': '{'}
	inQuote := false
	for _, c := range s {
		switch {
		case c == '"':
			inQuote = !inQuote
		case inQuote:
		case c == '(' || c == '[' || c == '{':
			stack = append(stack, c)
		case pair[c] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pair[c] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0 && !inQuote
}
