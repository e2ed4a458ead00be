package e2e

import "strings"

// Expand replaces every $(VAR) in s with VAR's value from lookup, exactly as the
// kubelet expands a container's command, args and env values: $$ is an escaped $
// ($$(VAR) yields the literal "$(VAR)"), a reference to a variable lookup does not
// know is left as written, and a "$" followed by anything else, or an unclosed
// "$(", is kept verbatim.
func Expand(s string, lookup func(string) (string, bool)) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok && name != "" {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
