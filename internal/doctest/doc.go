// Package doctest holds the tests that keep the README and docs/ true: they run the
// README's runnable shell blocks for real, compare the defaults the docs state with
// the binaries' own help, and compare sample output with a real run. The package has
// no code of its own besides the Markdown reading below; see its _test.go files.
//
// Markers. An HTML comment on the line before a fenced block or a table tells the
// tests what to do with it (it does not show when the Markdown is rendered):
//
//	<!-- test: run NAME -->            the next ```sh block is one step of the README's
//	                                    runnable session (start, look, stop)
//	<!-- test: defaults BIN [SUB...] -->  the next table lists flags (a `--flag` cell)
//	                                    and a "default" column, checked against
//	                                    `BIN SUB... --help`
//	<!-- test: output BIN ARGS... -->  the next fenced block is what `BIN ARGS...`
//	                                    prints, run from the repository's root
//	<!-- test: commands -->            the next table's first column names CLI
//	                                    commands (`coordinator txn list [--state S]`):
//	                                    each exists, with the flags shown
//
// Inline, "`--flag` (default `X`)" anywhere in README.md or docs/*.md is checked too
// (name the command in the code span, "`serve --flag`", when two commands disagree).
package doctest

import (
	"fmt"
	"regexp"
	"strings"
)

// Block is a fenced code block or a table of a Markdown file, with the marker that
// precedes it.
type Block struct {
	// Marker is the text after "test:" in the comment on the line before it, trimmed
	// ("" when there is none).
	Marker string
	// Lang is a fenced block's info string ("sh"); "table" for a table.
	Lang string
	// Text is the block's content without its fences (a table: its lines).
	Text string
	// Line is the 1-based line of the block's first line (a fence: the opening one).
	Line int
}

var markerRE = regexp.MustCompile(`^<!--\s*test:\s*(.*?)\s*-->\s*$`)

// Blocks returns md's fenced code blocks and, when marked, its tables, in order. A
// marker not followed by a fenced block or a table on the next line is an error, so a
// test cannot be dropped by moving its marker away from its block.
func Blocks(md string) ([]Block, error) {
	lines := strings.Split(md, "\n")
	var out []Block
	pending, pendingLine := "", 0
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		if m := markerRE.FindStringSubmatch(trimmed); m != nil {
			if pendingLine != 0 {
				return nil, fmt.Errorf("line %d: marker %q is followed by another marker", pendingLine, pending)
			}
			pending, pendingLine = m[1], i+1
			continue
		}
		switch {
		case strings.HasPrefix(trimmed, "```"):
			fence := trimmed[:len(trimmed)-len(strings.TrimLeft(trimmed, "`"))]
			b := Block{Marker: pending, Lang: strings.TrimSpace(trimmed[len(fence):]), Line: i + 1}
			var body []string
			j := i + 1
			for ; j < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[j]), fence); j++ {
				body = append(body, lines[j])
			}
			if j == len(lines) {
				return nil, fmt.Errorf("line %d: unclosed code fence", i+1)
			}
			b.Text = strings.Join(body, "\n") + "\n"
			out = append(out, b)
			i = j
		case pendingLine != 0 && strings.HasPrefix(trimmed, "|"):
			b := Block{Marker: pending, Lang: "table", Line: i + 1}
			j := i
			var body []string
			for ; j < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[j]), "|"); j++ {
				body = append(body, lines[j])
			}
			b.Text = strings.Join(body, "\n") + "\n"
			out = append(out, b)
			i = j - 1
		case pendingLine != 0:
			return nil, fmt.Errorf("line %d: marker %q must be followed, on the next line, by a fenced block or a table", pendingLine, pending)
		default:
			continue
		}
		pending, pendingLine = "", 0
	}
	if pendingLine != 0 {
		return nil, fmt.Errorf("line %d: marker %q at the end of the file", pendingLine, pending)
	}
	return out, nil
}

// TableRows splits a Markdown table into its header cells and data rows (the
// separator row dropped). Cells are trimmed, and an escaped `\|` is a `|` in its cell.
func TableRows(table string) (header []string, rows [][]string) {
	const bar = "\x00"
	for _, line := range strings.Split(strings.TrimSpace(table), "\n") {
		line = strings.ReplaceAll(strings.TrimSpace(line), `\|`, bar)
		line = strings.TrimPrefix(line, "|")
		line = strings.TrimSuffix(line, "|")
		cells := strings.Split(line, "|")
		for i := range cells {
			cells[i] = strings.ReplaceAll(strings.TrimSpace(cells[i]), bar, "|")
		}
		switch {
		case header == nil:
			header = cells
		case isSeparator(cells):
		default:
			rows = append(rows, cells)
		}
	}
	return header, rows
}

func isSeparator(cells []string) bool {
	for _, c := range cells {
		if strings.Trim(c, ":- ") != "" {
			return false
		}
	}
	return true
}
