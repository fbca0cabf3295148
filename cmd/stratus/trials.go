package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/dashboard"
	"github.com/stratus-ml/stratus/operators"
)

func (c *cli) trialsCmd() *cobra.Command {
	var dir, stage string
	cmd := &cobra.Command{
		Use:   "trials",
		Short: "List and kill the trials of a running apply",
		Long: `trials talks to the running apply of the pipeline in -dir through the control
endpoint it announces in .stratus/control.json (loopback only, protected by the
apply's token, which that file holds).

  stratus trials list            every trial: status, parameters, loss, cost
  stratus trials kill TRIAL      kill one trial; the stage completes with the others
  stratus trials kill-all        kill every queued and running trial

When no apply is running, list shows the trials recorded in the state by the last
apply.`,
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", ".", "the pipeline `DIR`")
	cmd.PersistentFlags().StringVar(&stage, "stage", "", "only the grid_search `STAGE` at this address (such as grid_search.tune)")

	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the trials of the running apply, or of the last one",
		Example: `  stratus trials list -dir pipelines/a9a-tune`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.trialsList(ctxOf(cmd), dir, stage, asJSON)
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print the trials as JSON")
	kill := &cobra.Command{
		Use:     "kill TRIAL",
		Short:   "Kill one trial of the running apply",
		Example: `  stratus trials kill t-1a2b3c4d -dir pipelines/a9a-tune`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.controlClient(ctxOf(cmd), dir, "there is no trial to kill")
			if err != nil {
				return err
			}
			r, err := cl.Kill(ctxOf(cmd), stage, args[0])
			if err != nil {
				return err
			}
			for _, res := range r.Results {
				fmt.Fprintf(c.stdout, "Killed trial %s of %s.\n", res.Trial, res.Stage)
			}
			return nil
		},
	}
	killAll := &cobra.Command{
		Use:     "kill-all",
		Short:   "Kill every queued and running trial of the running apply",
		Example: `  stratus trials kill-all -stage grid_search.tune`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.controlClient(ctxOf(cmd), dir, "there is no trial to kill")
			if err != nil {
				return err
			}
			r, err := cl.KillAll(ctxOf(cmd), stage)
			if err != nil {
				return err
			}
			failed := 0
			for _, res := range r.Results {
				if res.Error != "" {
					failed++
					fmt.Fprintf(c.stderr, "%s: %s\n", res.Stage, res.Error)
					continue
				}
				fmt.Fprintf(c.stdout, "Killed every queued and running trial of %s.\n", res.Stage)
			}
			if failed > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.AddCommand(list, kill, killAll)
	return cmd
}

func ctxOf(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// controlClient connects to the running apply of dir, or says why it cannot.
func (c *cli) controlClient(ctx context.Context, dir, what string) (*dashboard.Client, error) {
	cl, err := dashboard.Connect(ctx, stateDir(absDir(dir)))
	if errors.Is(err, dashboard.ErrNotRunning) {
		return nil, fmt.Errorf("%w: %s", err, what)
	}
	return cl, err
}

func (c *cli) trialsList(ctx context.Context, dir, stage string, asJSON bool) error {
	var trials []*dashboard.Trial
	cl, err := dashboard.Connect(ctx, stateDir(absDir(dir)))
	switch {
	case err == nil:
		s, err := cl.Status(ctx)
		if err != nil {
			return err
		}
		trials = s.Trials
		if !asJSON {
			fmt.Fprintf(c.stderr, "Apply running since %s (pid %d).\n", s.Run.Started.Local().Format("2006-01-02 15:04:05"), s.Run.PID)
		}
	case errors.Is(err, dashboard.ErrNotRunning):
		st, serr := openState(dir)
		if serr != nil {
			return serr
		}
		if st == nil {
			return fmt.Errorf("%w, and the pipeline in %s has not been applied: no trials to list", err, absDir(dir))
		}
		hub, herr := dashboard.LoadState(st, dashboard.RunInfo{Dir: absDir(dir)})
		st.Close()
		if herr != nil {
			return herr
		}
		trials = hub.Status().Trials
		if !asJSON {
			fmt.Fprintln(c.stderr, "No apply is running; the trials recorded by the last apply:")
		}
	default:
		return err
	}
	if stage != "" {
		kept := trials[:0]
		for _, t := range trials {
			if t.Stage == stage {
				kept = append(kept, t)
			}
		}
		trials = kept
	}
	if asJSON {
		if trials == nil {
			trials = []*dashboard.Trial{}
		}
		b, err := json.MarshalIndent(trials, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "%s\n", b)
		return err
	}
	if len(trials) == 0 {
		fmt.Fprintln(c.stdout, "No trials.")
		return nil
	}
	return writeTrials(c.stdout, trials)
}

// writeTrials prints a table of trials, in the order they appeared.
func writeTrials(w io.Writer, trials []*dashboard.Trial) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tTRIAL\tSTATUS\tITERATIONS\tLOSS\tBEST\tUPDATES/S\tCOST\tPARAMETERS\tREASON")
	for _, t := range trials {
		m := t.Metrics
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Stage, t.ID, t.Status,
			metric(m, "iterations", "%.0f"), loss(m, "test_logloss"), loss(m, "best_logloss"),
			metric(m, "updates_per_second", "%.0f"), metric(m, "cost_usd", "$%.6f"), operators.ParamsText(t.Params), t.Reason)
	}
	return tw.Flush()
}

func metric(m dashboard.Metrics, name, format string) string {
	v, ok := m[name]
	if !ok || math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

// loss formats a test loss; the train operator reports a non-finite one as -1.
func loss(m dashboard.Metrics, name string) string {
	v, ok := m[name]
	switch {
	case !ok:
		return "-"
	case math.IsNaN(v) || math.IsInf(v, 0) || v < 0:
		return "NaN"
	}
	return fmt.Sprintf("%.4f", v)
}
