package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/executor/runtime"
	"github.com/stratus-ml/stratus/state"
)

// cacheCmd is `stratus cache push`: DVC's push for the shared stage cache. Apply
// publishes every stage it runs; push publishes what the state recorded before the
// pipeline had a shared cache (or while it could not be written).
func (c *cli) cacheCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Work with the shared stage cache (the stratus block's cache)",
	}
	var vf varFlags
	push := &cobra.Command{
		Use:   "push [DIR]",
		Short: "Publish every stage in the state that the shared cache lacks",
		Long: `Push publishes every stage the pipeline's state records — its record and every
object it produced — to the shared stage cache the stratus block names
(cache = "s3://bucket/prefix"), unless the cache has an entry for its key already;
an entry is never overwritten. Apply publishes the stages it runs by itself; push is
for stages recorded before the pipeline had a shared cache, or while it could not be
written.`,
		Example: `  stratus cache push pipelines/a9a`,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := dirArg(args)
			cfg, ok := c.loadPipeline(dir, vf, true)
			if !ok {
				return exitError{1}
			}
			sc, err := runtime.SharedCache(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if sc == nil {
				return fmt.Errorf("%s has no shared stage cache: set cache = \"s3://bucket/prefix\" in its stratus block", dir)
			}
			st, err := state.OpenExisting(stateDBDir(dir))
			if err != nil {
				return err
			}
			if st == nil {
				return fmt.Errorf("no state in %s: the pipeline has not been applied, so there is nothing to push", stateDir(dir))
			}
			defer st.Close()
			run, err := pipelineBlob(cmd.Context(), cfg, dir)
			if err != nil {
				return err
			}
			recs, err := st.Stages()
			if err != nil {
				return err
			}
			failed := 0
			for _, r := range recs {
				res, err := sc.Publish(cmd.Context(), run, r)
				switch {
				case err != nil:
					failed++
					fmt.Fprintf(c.stderr, "%s %s: not published to %s: %v\n", c.paint(c.stderr, red, "Error:"), r.Address, sc.URI(), err)
				case res.Published:
					fmt.Fprintf(c.stdout, "%s: published: %d object(s) uploaded, %d already in the cache\n", r.Address, res.Uploaded, res.Reused)
				default:
					fmt.Fprintf(c.stdout, "%s: already in the shared cache\n", r.Address)
				}
			}
			if failed > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	vf.register(push.Flags())
	cmd.AddCommand(push)
	return cmd
}
