package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/planner"
)

func (c *cli) validateCmd() *cobra.Command {
	var vf varFlags
	cmd := &cobra.Command{
		Use:     "validate [DIR]",
		Short:   "Check a pipeline for errors without running or reading data",
		Example: `  stratus validate pipelines/a9a`,
		Long: `Validate parses every *.hcl file of the pipeline and the modules it calls,
checks references, types, required arguments and the dependency graph, and reports
every problem at once. Variables without a value are treated as unknown. It does not
read the state, the data, or any remote service.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, ok := c.loadPipeline(dirArg(args), vf, true)
			if !ok {
				return exitError{1}
			}
			if diags := planner.Check(cfg); len(diags) > 0 {
				c.printDiags(cfg, diags)
				if diags.HasErrors() {
					return exitError{1}
				}
			}
			fmt.Fprintln(c.stdout, c.paint(c.stdout, green, "Success!")+" The pipeline is valid.")
			return nil
		},
	}
	vf.register(cmd.Flags())
	return cmd
}
