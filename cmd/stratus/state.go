package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/state"
)

func (c *cli) stateCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Inspect and edit the record of completed stages",
		Long: `The state (.stratus/state beside the pipeline, or the bucket that
stratus { state = "s3://bucket/prefix" } names) records every completed stage: its
cache key, outputs, timings and cost. Removing a stage makes the next apply run it
again. pull and push move the whole state as one JSON snapshot.`,
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", ".", "the pipeline `DIR`")
	open := func() (*state.Store, error) {
		st, err := openState(dir)
		if err == nil && st == nil {
			where := stateDir(dir)
			if r, _ := remoteState(context.Background(), dir); r != nil {
				where = r.URI(state.RemoteStateKey)
			}
			return nil, fmt.Errorf("no state in %s: the pipeline has not been applied", where)
		}
		return st, err
	}
	var lockTimeout time.Duration
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the recorded stages",
		Example: `  stratus state list -dir pipelines/a9a`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := open()
			if err != nil {
				return err
			}
			defer st.Close()
			recs, err := st.Stages()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "STAGE\tKEY\tFINISHED\tWALL\tTASKS\tCOST")
			for _, r := range recs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t$%.6f\n", r.Address, r.Key[:12], r.Finished.Local().Format(time.DateTime),
					r.Finished.Sub(r.Started).Round(10*time.Millisecond), r.Tasks, r.CostUSD)
			}
			return tw.Flush()
		},
	}
	show := &cobra.Command{
		Use:     "show STAGE",
		Short:   "Show one stage's record: key, parameters, upstream, outputs",
		Example: `  stratus state show train.lr`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := open()
			if err != nil {
				return err
			}
			defer st.Close()
			r, err := st.Stage(args[0])
			if err != nil {
				return err
			}
			if r == nil {
				return c.noSuchStage(st, args[0])
			}
			w := c.stdout
			fmt.Fprintf(w, "# %s (%s v%d, backend %s)\n", r.Address, r.Operator, r.Version, r.Backend)
			fmt.Fprintf(w, "key       = %s\n", r.Key)
			fmt.Fprintf(w, "finished  = %s (%s wall, %d tasks, %d retries, %.1f GB-s, $%.6f)\n",
				r.Finished.Local().Format(time.RFC3339), r.Finished.Sub(r.Started).Round(10*time.Millisecond), r.Tasks, r.Retries, r.GBSeconds, r.CostUSD)
			if r.Stopped != "" {
				fmt.Fprintf(w, "stopped   = %s (its result is the best it had)\n", r.Stopped)
			}
			fmt.Fprintln(w, "\nparameters:")
			for _, k := range sortedNames(r.Params) {
				fmt.Fprintf(w, "  %s = %s\n", k, r.Params[k].Display)
			}
			if len(r.Upstream) > 0 {
				fmt.Fprintln(w, "\nupstream:")
				for _, k := range sortedNames(r.Upstream) {
					fmt.Fprintf(w, "  %s (%s)\n", k, r.Upstream[k][:12])
				}
			}
			if len(r.Sources) > 0 {
				fmt.Fprintln(w, "\nsources:")
				for _, k := range sortedNames(r.Sources) {
					fmt.Fprintf(w, "  %s sha256:%s\n", k, r.Sources[k])
				}
			}
			if len(r.Calibration) > 0 { // what later plans estimate with (planner/calibration.go)
				fmt.Fprintln(w, "\ncalibration:")
				for _, k := range sortedNames(r.Calibration) {
					fmt.Fprintf(w, "  %s = %g\n", k, r.Calibration[k])
				}
			}
			v, err := state.DecodeValue(r.Output)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "\noutput = %s\n", hclwrite.TokensForValue(v).Bytes())
			return nil
		},
	}
	rm := &cobra.Command{
		Use:     "rm STAGE...",
		Short:   "Forget stages, so the next apply runs them again",
		Example: `  stratus state rm train.lr`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			lock, st, err := c.lockState(cmd.Context(), dir, "stratus state rm", lockTimeout)
			if err != nil {
				return err
			}
			defer c.unlockState(lock, st, &err)
			for _, a := range args {
				ok, err := st.DeleteStage(a)
				if err != nil {
					return err
				}
				if !ok {
					return c.noSuchStage(st, a)
				}
				fmt.Fprintf(c.stdout, "Removed %s; the next apply runs it again.\n", a)
			}
			return nil
		},
	}
	var force bool
	unlock := &cobra.Command{
		Use:   "unlock",
		Short: "Remove the apply lock left by an apply that can no longer release it",
		Example: `  stratus state unlock
  stratus state unlock -force`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := remoteState(cmd.Context(), dir)
			if err != nil {
				return err
			}
			var info *executor.LockInfo
			if r != nil {
				info, err = executor.ForceUnlockRemote(cmd.Context(), r, force)
			} else {
				info, err = executor.ForceUnlock(stateDir(dir), force)
			}
			if err != nil {
				return fmt.Errorf("%w\n(-force removes it anyway; only do that if that process is not running)", err)
			}
			if info == nil {
				fmt.Fprintln(c.stdout, "The pipeline is not locked.")
				return nil
			}
			fmt.Fprintf(c.stdout, "Removed the lock held by %s.\n", info)
			return nil
		},
	}
	unlock.Flags().BoolVar(&force, "force", false, "remove the lock even if its holder is running")
	lockTimeoutFlag(rm.Flags(), &lockTimeout)
	pull, push := c.statePullPush(&dir, &lockTimeout)
	cmd.AddCommand(list, show, rm, unlock, pull, push)
	return cmd
}

func (c *cli) noSuchStage(st *state.Store, addr string) error {
	recs, _ := st.Stages()
	var names []string
	for _, r := range recs {
		names = append(names, r.Address)
	}
	return fmt.Errorf("no stage %s in the state (recorded: %s)", addr, strings.Join(append(names, "")[:max(len(names), 1)], ", "))
}
