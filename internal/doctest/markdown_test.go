package doctest

import (
	"strings"
	"testing"
)

func TestBlocks(t *testing.T) {
	md := strings.Join([]string{
		"intro",
		"<!-- test: run start -->",
		"```sh",
		"echo hi",
		"```",
		"text",
		"````",
		"```nested```",
		"````",
		"<!-- test: defaults coordinator serve -->",
		"| flag | default |",
		"| --- | --- |",
		"| `--a` | `1\\|2` |",
		"after",
	}, "\n")
	bs, err := Blocks(md)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 3 {
		t.Fatalf("got %d blocks: %+v", len(bs), bs)
	}
	if bs[0].Marker != "run start" || bs[0].Lang != "sh" || bs[0].Text != "echo hi\n" || bs[0].Line != 3 {
		t.Errorf("block 0: %+v", bs[0])
	}
	if bs[1].Marker != "" || bs[1].Text != "```nested```\n" {
		t.Errorf("block 1: %+v", bs[1])
	}
	h, rows := TableRows(bs[2].Text)
	if bs[2].Marker != "defaults coordinator serve" || len(h) != 2 || len(rows) != 1 || rows[0][1] != "`1|2`" {
		t.Errorf("table: %+v %q %q", bs[2], h, rows)
	}
	for _, bad := range []string{
		"<!-- test: run x -->\n\n```sh\n```\n", // a blank line between marker and block
		"<!-- test: run x -->\n",               // nothing after it
		"<!-- test: run x -->\ntext\n",         // prose after it
		"```sh\nunclosed\n",
	} {
		if _, err := Blocks(bad); err == nil {
			t.Errorf("Blocks(%q): no error", bad)
		}
	}
}
