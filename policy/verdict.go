package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

var (
	kAllow   = ast.StringTerm("allow")
	kDeny    = ast.StringTerm("deny")
	kCode    = ast.StringTerm("code")
	kMessage = ast.StringTerm("message")
)

// parseMatch reads the answer of the query, {"allow": bool, "deny": [{code,
// message, players}]}; nil means it was undefined. Denials come back sorted by
// code, then players, then message, and each denial's players sorted, so that
// equal verdicts compare equal.
func parseMatch(t *ast.Term) (allow bool, denials []*smv1.Denial, err error) {
	if t == nil {
		return false, nil, errUndefined
	}
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return false, nil, fmt.Errorf("%s is %s, want an object {allow, deny}", Query, ast.ValueName(t.Value))
	}
	at := obj.Get(kAllow)
	if at == nil {
		return false, nil, fmt.Errorf("%s has no \"allow\"", Query)
	}
	b, ok := at.Value.(ast.Boolean)
	if !ok {
		return false, nil, fmt.Errorf("%s.allow is %s, want a boolean", Query, ast.ValueName(at.Value))
	}
	allow = bool(b)
	if dt := obj.Get(kDeny); dt != nil {
		if denials, err = parseDenials(dt.Value); err != nil {
			return false, nil, err
		}
	}
	return allow, denials, nil
}

func parseDenials(v ast.Value) ([]*smv1.Denial, error) {
	var elems []*ast.Term
	switch c := v.(type) {
	case ast.Set:
		elems = c.Slice()
	case *ast.Array:
		elems = make([]*ast.Term, 0, c.Len())
		c.Foreach(func(t *ast.Term) { elems = append(elems, t) })
	default:
		return nil, fmt.Errorf("%s.deny is %s, want an array or set", Query, ast.ValueName(v))
	}
	out := make([]*smv1.Denial, 0, len(elems))
	for i, e := range elems {
		d, err := parseDenial(e.Value)
		if err != nil {
			return nil, fmt.Errorf("%s.deny[%d]: %v", Query, i, err)
		}
		out = append(out, d)
	}
	slices.SortFunc(out, compareDenials)
	return out, nil
}

func parseDenial(v ast.Value) (*smv1.Denial, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("is %s, want an object {code, message, players}", ast.ValueName(v))
	}
	d := &smv1.Denial{}
	ct := obj.Get(kCode)
	if ct == nil {
		return nil, fmt.Errorf("has no code")
	}
	code, ok := ct.Value.(ast.String)
	if !ok || code == "" {
		return nil, fmt.Errorf("code is %v, want a non-empty string", ct)
	}
	d.Code = string(code)
	if mt := obj.Get(kMessage); mt != nil {
		if s, ok := mt.Value.(ast.String); ok {
			d.Message = string(s)
		} else {
			d.Message = mt.String()
		}
	}
	if pt := obj.Get(kPlayers); pt != nil {
		var err error
		if d.Players, err = stringList(pt.Value); err != nil {
			return nil, fmt.Errorf("players: %v", err)
		}
	}
	return d, nil
}

// stringList reads an array or set of strings, sorted.
func stringList(v ast.Value) ([]string, error) {
	var out []string
	add := func(t *ast.Term) error {
		s, ok := t.Value.(ast.String)
		if !ok {
			return fmt.Errorf("element %v is not a string", t)
		}
		out = append(out, string(s))
		return nil
	}
	switch c := v.(type) {
	case *ast.Array:
		for i := range c.Len() {
			if err := add(c.Elem(i)); err != nil {
				return nil, err
			}
		}
	case ast.Set:
		for _, t := range c.Slice() {
			if err := add(t); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("is %s, want an array of player ids", ast.ValueName(v))
	}
	slices.Sort(out)
	return out, nil
}

func compareDenials(a, b *smv1.Denial) int {
	return cmp.Or(
		strings.Compare(a.Code, b.Code),
		slices.Compare(a.Players, b.Players),
		strings.Compare(a.Message, b.Message),
	)
}

// verdictOf turns a policy's answer into a verdict: denials win over allow, and a
// deny without a reason gets one.
func verdictOf(allow bool, denials []*smv1.Denial, revision string) *smv1.PolicyVerdict {
	if !allow && len(denials) == 0 {
		denials = []*smv1.Denial{{
			Code:    CodeUnexplained,
			Message: "the policy denied the proposal without giving a reason",
		}}
	}
	return &smv1.PolicyVerdict{
		Allow:    allow && len(denials) == 0,
		Denials:  denials,
		Revision: revision,
	}
}

// denyVerdict is the fail-closed answer of the engine itself.
func denyVerdict(code, message, revision string) *smv1.PolicyVerdict {
	return &smv1.PolicyVerdict{
		Denials:  []*smv1.Denial{{Code: code, Message: message}},
		Revision: revision,
	}
}
