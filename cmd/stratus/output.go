package main

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/state"
)

func (c *cli) outputCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "output [DIR] [NAME]",
		Short: "Show the outputs recorded by the last apply",
		Args:  cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, name := dirArg(args), ""
			if len(args) == 2 {
				name = args[1]
			}
			st, err := state.OpenExisting(stateDBDir(dir))
			if err != nil {
				return err
			}
			defer st.Close()
			outs, err := st.Outputs()
			if err != nil {
				return err
			}
			if name != "" {
				raw, ok := outs[name]
				if !ok {
					fmt.Fprintf(c.stderr, "Error: no output named %q. The last apply recorded: %s.\n", name, listOrNone(outs))
					return exitError{1}
				}
				return c.printOutput(raw, asJSON, "")
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
	return cmd
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
