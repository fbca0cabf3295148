package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/planner"
)

func (c *cli) graphCmd() *cobra.Command {
	var (
		vf     varFlags
		format string
	)
	cmd := &cobra.Command{
		Use:   "graph [DIR]",
		Short: "Draw the stage DAG in DOT or Mermaid",
		Example: `  stratus graph pipelines/a9a | dot -Tsvg > a9a.svg
  stratus graph -format mermaid`,
		Long: `Graph prints the pipeline's stage DAG, each stage marked and coloured with the
action the plan would take. Render DOT with Graphviz:

  stratus graph pipelines/a9a | dot -Tsvg > a9a.svg`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "dot" && format != "mermaid" {
				fmt.Fprintf(c.stderr, "Error: -format must be dot or mermaid, not %q.\n", format)
				return exitError{1}
			}
			// Sizing is not drawn: plan without asking Lambda or psstore.
			p, err := c.planDir(cmd.Context(), dirArg(args), vf, selectFlags{}, true, false)
			if err != nil {
				return err
			}
			if format == "mermaid" {
				planner.WriteMermaid(c.stdout, p.Config, p)
			} else {
				planner.WriteDOT(c.stdout, p.Config, p)
			}
			return nil
		},
	}
	vf.register(cmd.Flags())
	cmd.Flags().StringVar(&format, "format", "dot", "draw it in `FORMAT`: dot or mermaid")
	return cmd
}
