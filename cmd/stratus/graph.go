package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/state"
)

func (c *cli) graphCmd() *cobra.Command {
	var (
		vf     varFlags
		format string
	)
	cmd := &cobra.Command{
		Use:   "graph [DIR]",
		Short: "Draw the stage DAG in DOT or Mermaid",
		Long: `Graph prints the pipeline's stage DAG, each stage marked and coloured with the
action the plan would take. Render DOT with Graphviz:

  stratus graph pipelines/a9a | dot -Tsvg > a9a.svg`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "dot" && format != "mermaid" {
				fmt.Fprintf(c.stderr, "Error: -format must be dot or mermaid, not %q.\n", format)
				return exitError{1}
			}
			dir := dirArg(args)
			cfg, ok := c.loadPipeline(dir, vf, true)
			if !ok {
				return exitError{1}
			}
			st, err := state.OpenExisting(stateDBDir(dir))
			if err != nil {
				return err
			}
			defer st.Close()
			p, ok := c.buildPlan(cmd.Context(), cfg, st)
			if !ok {
				return exitError{1}
			}
			if format == "mermaid" {
				planner.WriteMermaid(c.stdout, cfg, p)
			} else {
				planner.WriteDOT(c.stdout, cfg, p)
			}
			return nil
		},
	}
	vf.register(cmd.Flags())
	cmd.Flags().StringVar(&format, "format", "dot", "dot or mermaid")
	return cmd
}
