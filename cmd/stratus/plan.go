package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor/runtime"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/state"
)

func (c *cli) planCmd() *cobra.Command {
	var (
		vf           varFlags
		sel          selectFlags
		out          string
		asJSON       bool
		detailedExit bool
	)
	cmd := &cobra.Command{
		Use:   "plan [DIR]",
		Short: "Show what apply would run, rerun and reuse",
		Example: `  stratus plan pipelines/a9a
  stratus plan -var learning_rate=0.5 -out tf.plan
  stratus plan -replace=train.lr -target=train.lr`,
		Long: `Plan loads the pipeline, builds its stage DAG, computes each stage's cache key
(operator and version, parameters, upstream keys, source content) and compares it with
the state: + run (never ran), ~ rerun (with the reason), = cached (outputs reused).

Exit status: 0 success, 1 error; with -detailed-exitcode, 0 no changes, 1 error,
2 changes to apply.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := c.planDir(cmd.Context(), dirArg(args), vf, sel, false)
			if err != nil {
				return err
			}
			// A backend whose bucket or shards cannot be reached fails here, not
			// halfway through an apply.
			if err := runtime.Preflight(cmd.Context(), p, "", nil); err != nil {
				return err
			}
			if asJSON {
				if err := writePlanJSON(c.stdout, p); err != nil {
					return err
				}
			} else {
				c.writePlan(c.stdout, p)
			}
			if out != "" {
				f, err := p.ToFile(planner.SaveOptions{Vars: vf.vars, VarFiles: vf.varFiles, Env: stratusEnv()})
				if err != nil {
					return err
				}
				if err := f.Write(out); err != nil {
					return err
				}
				if !asJSON {
					fmt.Fprintf(c.stdout, "\nSaved the plan to %s. To run exactly these actions, run:\n  stratus apply %s\n", out, out)
				}
			}
			if detailedExit && p.HasChanges() {
				return exitError{2}
			}
			return nil
		},
	}
	vf.register(cmd.Flags())
	sel.register(cmd.Flags())
	cmd.Flags().StringVar(&out, "out", "", "save the plan to `FILE` for a later stratus apply FILE")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	cmd.Flags().BoolVar(&detailedExit, "detailed-exitcode", false, "exit 2 when there are changes, 0 when there are none")
	return cmd
}

// stratusEnv returns the STRATUS_VAR_ environment, which a saved plan must reproduce.
func stratusEnv() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, dsl.EnvVarPrefix) {
			env[k] = v
		}
	}
	return env
}

// writePlan prints the plan in the Terraform manner: a legend, one line per stage
// with its action and reason, and a summary.
func (c *cli) writePlan(w io.Writer, p *planner.Plan) {
	lines := make([]planner.FileStage, len(p.Stages))
	for i, s := range p.Stages {
		lines[i] = planner.FileStage{Address: s.Address, Action: s.Action, Reason: s.Reason}
	}
	c.writePlanLines(w, p.Config.Workspace, lines)
}

// writePlanLines prints a plan's stages (of a fresh plan or a saved one).
func (c *cli) writePlanLines(w io.Writer, workspace string, stages []planner.FileStage) {
	if len(stages) == 0 {
		fmt.Fprintln(w, "The pipeline has no stages. Add a load, normalize, train or grid_search block.")
		return
	}
	if workspace != "" && workspace != dsl.DefaultWorkspace {
		fmt.Fprintf(w, "Workspace: %s\n\n", workspace)
	}
	fmt.Fprintln(w, "Stages are marked with the following symbols:")
	fmt.Fprintf(w, "  %s run     never ran\n", c.paint(w, green, "+"))
	fmt.Fprintf(w, "  %s rerun   changed since it last ran\n", c.paint(w, yellow, "~"))
	fmt.Fprintf(w, "  %s cached  unchanged; its outputs are reused\n", c.paint(w, dim, "="))
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Stratus will perform the following actions:")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	run, rerun, cached := 0, 0, 0
	for _, s := range stages {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.actionSymbol(w, s.Action), s.Address, describeAction(s.Action, s.Reason))
		switch s.Action {
		case planner.Run:
			run++
		case planner.Rerun:
			rerun++
		default:
			cached++
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%s %d to run, %d to rerun, %d cached.\n", c.paint(w, bold, "Plan:"), run, rerun, cached)
}

func (c *cli) actionSymbol(w io.Writer, a planner.Action) string {
	switch a {
	case planner.Run:
		return c.paint(w, green, a.Symbol())
	case planner.Rerun:
		return c.paint(w, yellow, a.Symbol())
	}
	return c.paint(w, dim, a.Symbol())
}

func describeAction(a planner.Action, reason string) string {
	switch {
	case a == planner.Run:
		return "run"
	case reason != "":
		return string(a) + ": " + reason
	}
	return string(a)
}

// planJSON is the machine-readable plan.
type planJSON struct {
	FormatVersion string          `json:"format_version"`
	StateSerial   uint64          `json:"state_serial"`
	Stages        []planStageJSON `json:"stages"`
	Summary       map[string]int  `json:"summary"`
}

type planStageJSON struct {
	Address      string   `json:"address"`
	Operator     string   `json:"operator"`
	Action       string   `json:"action"`
	Reason       string   `json:"reason"`
	CacheKey     string   `json:"cache_key"`
	Dependencies []string `json:"dependencies"`
}

func writePlanJSON(w io.Writer, p *planner.Plan) error {
	stages := make([]planner.FileStage, len(p.Stages))
	for i, s := range p.Stages {
		stages[i] = planner.FileStage{Address: s.Address, Operator: s.Operator, Action: s.Action, Reason: s.Reason, Key: s.Key, Deps: s.Deps}
	}
	return writePlanStagesJSON(w, p.Serial, stages)
}

// writePlanStagesJSON writes the machine-readable form of a plan's stages (of a
// fresh plan or a saved one).
func writePlanStagesJSON(w io.Writer, serial uint64, stages []planner.FileStage) error {
	out := planJSON{FormatVersion: "1", StateSerial: serial, Stages: []planStageJSON{}}
	counts := map[string]int{"run": 0, "rerun": 0, "cached": 0}
	for _, s := range stages {
		deps := s.Deps
		if deps == nil {
			deps = []string{}
		}
		out.Stages = append(out.Stages, planStageJSON{
			Address: s.Address, Operator: s.Operator, Action: string(s.Action),
			Reason: s.Reason, CacheKey: s.Key, Dependencies: deps,
		})
		counts[string(s.Action)]++
	}
	out.Summary = counts
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// planFromFile re-plans the pipeline a saved plan names and checks the saved plan
// still holds.
func (c *cli) planFromFile(ctx context.Context, f *planner.File, st *state.Store) (*planner.Plan, error) {
	for k, v := range f.Env {
		os.Setenv(k, v)
	}
	cfg, ok := c.loadPipeline(f.Dir, varFlags{vars: f.Vars, varFiles: f.VarFiles}, false)
	if !ok {
		return nil, exitError{1}
	}
	p, ok := c.buildPlan(ctx, cfg, st, selectFlags{targets: f.Target, replaces: f.Replace})
	if !ok {
		return nil, exitError{1}
	}
	if err := f.Check(p); err != nil {
		return nil, err
	}
	return p, nil
}
