package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/cobra"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/stratus-ml/stratus/state"
)

func (c *cli) outputCmd() *cobra.Command {
	var asJSON, raw bool
	cmd := &cobra.Command{
		Use:   "output [DIR] [NAME]",
		Short: "Show the outputs recorded by the last apply",
		Long: `Output prints the root outputs recorded by the last apply of the pipeline in
DIR (default "."), or only the output NAME. With a single argument, an existing
directory is DIR and anything else is NAME. With -raw, a string output prints
bare (no quotes, no newline), for shell scripts; numbers and bools print as
text.`,
		Example: `  stratus output
  stratus output -json
  stratus output -raw model      # file:///…/model.json, for $(…)`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, name := outputArgs(args)
			if raw && (asJSON || name == "") {
				fmt.Fprintln(c.stderr, "Error: -raw prints one output: give its NAME (stratus output -raw NAME), and not -json.")
				return exitError{1}
			}
			st, err := openState(dir)
			if err != nil {
				return err
			}
			defer st.Close()
			outs, err := st.Outputs()
			if err != nil {
				return err
			}
			if name != "" {
				if _, ok := outs[name]; !ok {
					fmt.Fprintf(c.stderr, "Error: no output named %q. The last apply recorded: %s.\n", name, listOrNone(outs))
					return exitError{1}
				}
				if raw {
					return c.printRaw(name, outs[name])
				}
				return c.printOutput(outs[name], asJSON, "")
			}
			if len(outs) == 0 {
				if asJSON {
					fmt.Fprintln(c.stdout, "{}")
					return nil
				}
				fmt.Fprintln(c.stderr, "No outputs found. Outputs appear after `stratus apply` runs a pipeline that declares output blocks.")
				return nil
			}
			if asJSON {
				plain := map[string]json.RawMessage{}
				for k, raw := range outs {
					p, err := state.PlainJSON(raw)
					if err != nil {
						return err
					}
					plain[k] = p
				}
				b, _ := json.MarshalIndent(plain, "", "  ")
				fmt.Fprintln(c.stdout, string(b))
				return nil
			}
			for _, k := range sortedNames(outs) {
				if err := c.printOutput(outs[k], false, k+" = "); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	cmd.Flags().BoolVar(&raw, "raw", false, "print the output NAME's string, number or bool bare, without quotes or newline")
	return cmd
}

// printRaw prints a primitive output without quoting, as terraform output -raw.
func (c *cli) printRaw(name string, raw json.RawMessage) error {
	v, err := state.DecodeValue(raw)
	if err != nil {
		return err
	}
	if v.IsNull() || !v.Type().IsPrimitiveType() {
		what := "null"
		if !v.IsNull() {
			what = v.Type().FriendlyName()
		}
		fmt.Fprintf(c.stderr, "Error: unsupported value for raw output: -raw prints strings, numbers and bools, but output %q is %s. Use -json for values of complex types.\n", name, what)
		return exitError{1}
	}
	s, err := convert.Convert(v, cty.String)
	if err != nil {
		return err
	}
	fmt.Fprint(c.stdout, s.AsString())
	return nil
}

// outputArgs splits output's arguments into the pipeline directory and the output
// name: `output NAME` in a pipeline directory must not mistake NAME for a directory.
func outputArgs(args []string) (dir, name string) {
	switch len(args) {
	case 0:
		return ".", ""
	case 1:
		if st, err := os.Stat(args[0]); err == nil && st.IsDir() {
			return args[0], ""
		}
		return ".", args[0]
	}
	return args[0], args[1]
}

func (c *cli) printOutput(raw json.RawMessage, asJSON bool, prefix string) error {
	if asJSON {
		p, err := state.PlainJSON(raw)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, string(p))
		return nil
	}
	v, err := state.DecodeValue(raw)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s%s\n", prefix, hclwrite.TokensForValue(v).Bytes())
	return nil
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func listOrNone[V any](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	s := ""
	for i, k := range sortedNames(m) {
		if i > 0 {
			s += ", "
		}
		s += k
	}
	return s
}
