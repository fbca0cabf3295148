package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

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
			p, err := c.planDir(cmd.Context(), dirArg(args), vf, sel, false, true)
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
		lines[i] = planner.FileStage{Address: s.Address, Action: s.Action, Reason: s.Reason, Deps: s.Deps, Estimate: s.Estimate, Cache: s.Cache, Sizing: s.Sizing, LimitNote: s.LimitNote}
	}
	c.writePlanLines(w, p.Config.Workspace, lines, p.Sizing)
	if n := p.Limits.Note; n != "" {
		fmt.Fprintf(w, "\nNote: %s\n", n)
	}
}

// writePlanLines prints a plan's stages (of a fresh plan or a saved one), their
// estimates, and the summary.
func (c *cli) writePlanLines(w io.Writer, workspace string, stages []planner.FileStage, backend []planner.Choice) {
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
		desc := describeAction(s.Action, s.Reason)
		if s.Cache != nil && s.Action == planner.Cached {
			desc = "cached (" + s.Cache.Describe(time.Now()) + ")"
		}
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.actionSymbol(w, s.Action), s.Address, desc)
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
	c.writeSizing(w, stages, backend)
	summary := c.writeEstimates(w, stages)
	fmt.Fprintf(w, "%s %d to run, %d to rerun, %d cached.%s\n", c.paint(w, bold, "Plan:"), run, rerun, cached, summary)
}

// writeSizing prints the "Sizing:" block: per stage to run, each system-level
// parameter with the planner's choice and its reason (or the pipeline's value),
// and how the estimate stands against the stage's budget or deadline; then the
// backend-wide choices (psstore shards, memory).
func (c *cli) writeSizing(w io.Writer, stages []planner.FileStage, backend []planner.Choice) {
	shown := false
	for _, s := range stages {
		if s.Action == planner.Cached || (len(s.Sizing) == 0 && s.LimitNote == "") {
			continue
		}
		if !shown {
			fmt.Fprintln(w, "Sizing:")
			shown = true
		}
		for _, ch := range s.Sizing {
			fmt.Fprintf(w, "  %s %s: %s\n", c.actionSymbol(w, s.Action), s.Address, ch)
		}
		if s.LimitNote != "" {
			fmt.Fprintf(w, "  %s %s: %s\n", c.actionSymbol(w, s.Action), s.Address, s.LimitNote)
		}
	}
	for _, ch := range backend {
		if !shown {
			fmt.Fprintln(w, "Sizing:")
			shown = true
		}
		fmt.Fprintf(w, "  backend: %s\n", ch)
	}
	if shown {
		fmt.Fprintln(w)
	}
}

// writeEstimates prints the "Estimates:" block — per stage, the expected wall
// time, GB-seconds and dollars of running it (and whether the figures come from
// history or defaults), or what reusing a cached stage saved — and returns the
// summary line's tail.
func (c *cli) writeEstimates(w io.Writer, stages []planner.FileStage) string {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	shown := false
	for _, s := range stages {
		e := s.Estimate
		if e == nil {
			continue
		}
		if !shown {
			fmt.Fprintln(w, "Estimates:")
			shown = true
		}
		if s.Action == planner.Cached {
			fmt.Fprintf(tw, "  %s %s\tsaved %s\t%s GB-s\t%s\treused\n", c.actionSymbol(w, s.Action), s.Address, planner.FormatWall(e.Wall), fmtGBs(e.GBSeconds), planner.FormatUSD(e.CostUSD))
			continue
		}
		fmt.Fprintf(tw, "  %s %s\t%s\t%s GB-s\t%s\t%s\n", c.actionSymbol(w, s.Action), s.Address, planner.FormatWall(e.Wall), fmtGBs(e.GBSeconds), planner.FormatUSD(e.CostUSD), basisText(e.Basis))
	}
	tw.Flush()
	if !shown {
		return ""
	}
	fmt.Fprintln(w)
	t := planner.TotalsOf(stages)
	if !t.HaveRun {
		return fmt.Sprintf(" Reuse saves %s, %s GB-s, %s.", planner.FormatWall(t.SavedWall), fmtGBs(t.SavedGBSeconds), planner.FormatUSD(t.SavedCostUSD))
	}
	out := fmt.Sprintf(" Estimated: %s, %s GB-s, %s", planner.FormatWall(t.Wall), fmtGBs(t.GBSeconds), planner.FormatUSD(t.CostUSD))
	if t.HaveSaved {
		out += fmt.Sprintf(" (saved %s by reuse)", planner.FormatUSD(t.SavedCostUSD))
	}
	return out + "."
}

// basisText says where a stage's estimate comes from, as plan shows it.
func basisText(b planner.Basis) string {
	switch b {
	case planner.BasisHistory:
		return "from this pipeline's history"
	case planner.BasisMachine:
		return "from this machine's history"
	}
	return string(b)
}

// fmtGBs shows GB-seconds with one decimal, or two significant figures below 0.1.
func fmtGBs(g float64) string {
	if g > 0 && g < 0.1 {
		return strconv.FormatFloat(g, 'f', int(-math.Floor(math.Log10(g)))+1, 64)
	}
	return strconv.FormatFloat(g, 'f', 1, 64)
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
	// Estimate is the fresh plan's totals; absent from a saved plan's JSON.
	Estimate *estimateTotalsJSON `json:"estimate,omitempty"`
	// Sizing lists the backend-wide choices (psstore shards, memory).
	Sizing []planner.Choice `json:"sizing,omitempty"`
	// LimitsNote is a warning about the backend's limits (an assumed figure).
	LimitsNote string `json:"limits_note,omitempty"`
}

type planStageJSON struct {
	Address      string   `json:"address"`
	Operator     string   `json:"operator"`
	Action       string   `json:"action"`
	Reason       string   `json:"reason"`
	CacheKey     string   `json:"cache_key"`
	Dependencies []string `json:"dependencies"`
	// Estimate is present in a fresh plan's JSON, not a saved plan's.
	Estimate *estimateJSON `json:"estimate,omitempty"`
	// Cache is where a cached stage's outputs come from when another pipeline
	// computed them: {"source": "shared", "entry", "by", "published"}.
	Cache *planner.CacheOrigin `json:"cache,omitempty"`
	// Sizing lists the stage's sized parameters with the reasons;
	// LimitNote how its estimate stands against its budget or deadline.
	Sizing    []planner.Choice `json:"sizing,omitempty"`
	LimitNote string           `json:"limit_note,omitempty"`
}

// estimateJSON is a stage's estimate (for a cached stage: what reuse saved).
type estimateJSON struct {
	Basis           string  `json:"basis"`
	WallSeconds     float64 `json:"wall_seconds"`
	FunctionSeconds float64 `json:"function_seconds"`
	GBSeconds       float64 `json:"gb_seconds"`
	CostUSD         float64 `json:"cost_usd"`
	// PSStoreUSD is the part of CostUSD the psstore hosts cost.
	PSStoreUSD float64 `json:"psstore_usd,omitempty"`
	Tasks      int     `json:"tasks"`
	InputBytes int64   `json:"input_bytes"`
}

// estimateTotalsJSON is the plan's summed estimate.
type estimateTotalsJSON struct {
	WallSeconds     float64 `json:"wall_seconds"`
	FunctionSeconds float64 `json:"function_seconds"`
	GBSeconds       float64 `json:"gb_seconds"`
	CostUSD         float64 `json:"cost_usd"`
	// The saved figures are what reusing the cached stages saves.
	SavedWallSeconds float64 `json:"saved_wall_seconds"`
	SavedGBSeconds   float64 `json:"saved_gb_seconds"`
	SavedCostUSD     float64 `json:"saved_cost_usd"`
}

// round6 keeps six decimals: microseconds, micro-GB-seconds.
func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }

// roundUSD keeps dollars to a ten-millionth of a cent.
func roundUSD(v float64) float64 { return math.Round(v*1e9) / 1e9 }

func writePlanJSON(w io.Writer, p *planner.Plan) error {
	stages := make([]planner.FileStage, len(p.Stages))
	for i, s := range p.Stages {
		stages[i] = planner.FileStage{Address: s.Address, Operator: s.Operator, Action: s.Action, Reason: s.Reason, Key: s.Key, Deps: s.Deps, Estimate: s.Estimate, Cache: s.Cache, Sizing: s.Sizing, LimitNote: s.LimitNote}
	}
	return writePlanStagesJSON(w, p.Serial, stages, p.Sizing, p.Limits.Note)
}

// writePlanStagesJSON writes the machine-readable form of a plan's stages (of a
// fresh plan or a saved one).
func writePlanStagesJSON(w io.Writer, serial uint64, stages []planner.FileStage, backend []planner.Choice, note string) error {
	out := planJSON{FormatVersion: "1", StateSerial: serial, Stages: []planStageJSON{}, Sizing: backend, LimitsNote: note}
	counts := map[string]int{"run": 0, "rerun": 0, "cached": 0}
	for _, s := range stages {
		deps := s.Deps
		if deps == nil {
			deps = []string{}
		}
		out.Stages = append(out.Stages, planStageJSON{
			Address: s.Address, Operator: s.Operator, Action: string(s.Action),
			Reason: s.Reason, CacheKey: s.Key, Dependencies: deps, Cache: s.Cache, Sizing: s.Sizing, LimitNote: s.LimitNote,
		})
		if e := s.Estimate; e != nil {
			out.Stages[len(out.Stages)-1].Estimate = &estimateJSON{
				Basis: string(e.Basis), WallSeconds: round6(e.Wall.Seconds()), FunctionSeconds: round6(e.FunctionSeconds),
				GBSeconds: round6(e.GBSeconds), CostUSD: roundUSD(e.CostUSD), PSStoreUSD: roundUSD(e.PSStoreUSD), Tasks: e.Tasks, InputBytes: e.InputBytes,
			}
		}
		counts[string(s.Action)]++
	}
	out.Summary = counts
	if t := planner.TotalsOf(stages); t.HaveRun || t.HaveSaved {
		out.Estimate = &estimateTotalsJSON{
			WallSeconds: round6(t.Wall.Seconds()), FunctionSeconds: round6(t.FunctionSeconds), GBSeconds: round6(t.GBSeconds),
			CostUSD: roundUSD(t.CostUSD), SavedWallSeconds: round6(t.SavedWall.Seconds()),
			SavedGBSeconds: round6(t.SavedGBSeconds), SavedCostUSD: roundUSD(t.SavedCostUSD),
		}
	}
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
