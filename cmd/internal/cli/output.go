package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// Output formats of -o.
const (
	Table = "table"
	JSON  = "json"
	YAML  = "yaml"
)

// OutputValue is the -o flag: table, json or yaml.
type OutputValue struct{ Format string }

func (o *OutputValue) String() string { return o.Format }
func (o *OutputValue) Type() string   { return "format" }
func (o *OutputValue) Set(s string) error {
	switch s {
	case Table, JSON, YAML:
		o.Format = s
		return nil
	}
	return fmt.Errorf("%q: want table, json or yaml", s)
}

// AddOutputFlag adds -o/--output (default table) to c.
func AddOutputFlag(c *cobra.Command) *OutputValue {
	o := &OutputValue{Format: Table}
	c.Flags().VarP(o, "output", "o", "output `format`: table, json or yaml")
	_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{Table, JSON, YAML}, cobra.ShellCompDirectiveNoFileComp))
	return o
}

// Print writes v as JSON or YAML (its JSON form), or calls table for the table form.
func (o *OutputValue) Print(w io.Writer, v any, table func(w io.Writer) error) error {
	switch o.Format {
	case JSON:
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case YAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return table(w)
}

// NewTable is a tabwriter for aligned columns; Flush it when done.
func NewTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }
