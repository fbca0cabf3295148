package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/state"
)

func (c *cli) showCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show [PLANFILE | DIR]",
		Short: "Show a saved plan, or what the state records of every stage",
		Long: `Show reads a plan saved with plan -out and prints it as plan did (with -json, the
same document as plan -json), without planning again. Given a pipeline directory
(default "."), it prints the state's view of every stage instead: its address,
cache key, when it ran, its output and metrics, then the root outputs.`,
		Example: `  stratus plan -out tf.plan && stratus show tf.plan
  stratus show -json tf.plan
  stratus show                 # the state of the pipeline here`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := dirArg(args)
			st, err := os.Stat(target)
			switch {
			case err != nil:
				return fmt.Errorf("%s: no such plan file or pipeline directory", target)
			case st.Mode().IsRegular():
				return c.showPlanFile(target, asJSON)
			}
			return c.showState(target, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func (c *cli) showPlanFile(path string, asJSON bool) error {
	f, err := planner.ReadFile(path)
	if err != nil {
		return err
	}
	if asJSON {
		return writePlanStagesJSON(c.stdout, f.Serial, f.Stages, f.Sizing, f.LimitsNote)
	}
	fmt.Fprintf(c.stdout, "Saved plan of %s, made %s against state serial %d.\n", f.Dir, f.CreatedAt.Local().Format(time.RFC3339), f.Serial)
	var with []string
	for _, v := range f.Vars {
		with = append(with, "-var "+v)
	}
	for _, v := range f.VarFiles {
		with = append(with, "-var-file "+v)
	}
	for _, v := range f.Target {
		with = append(with, "-target="+v)
	}
	for _, v := range f.Replace {
		with = append(with, "-replace="+v)
	}
	if len(with) > 0 {
		fmt.Fprintf(c.stdout, "Made with %s.\n", strings.Join(with, " "))
	}
	fmt.Fprintln(c.stdout)
	c.writePlanLines(c.stdout, f.Workspace, f.Stages, f.Sizing)
	return nil
}

// stateJSON is the machine-readable view of a pipeline's state.
type stateJSON struct {
	FormatVersion string                     `json:"format_version"`
	Workspace     string                     `json:"workspace"`
	Serial        uint64                     `json:"serial"`
	Stages        []stateStageJSON           `json:"stages"`
	Outputs       map[string]json.RawMessage `json:"outputs"`
}

type stateStageJSON struct {
	Address   string             `json:"address"`
	Operator  string             `json:"operator"`
	Version   int                `json:"version"`
	Key       string             `json:"cache_key"`
	Started   time.Time          `json:"started"`
	Finished  time.Time          `json:"finished"`
	Backend   string             `json:"backend"`
	Tasks     int                `json:"tasks"`
	Retries   int                `json:"retries"`
	GBSeconds float64            `json:"gb_seconds"`
	CostUSD   float64            `json:"cost_usd"`
	Output    json.RawMessage    `json:"output"`
	Metrics   map[string]float64 `json:"metrics"`
	// Stopped says the stage was cut short by its budget or deadline.
	Stopped string `json:"stopped,omitempty"`
}

func (c *cli) showState(dir string, asJSON bool) error {
	ws := currentWorkspace(dir)
	if err := checkWorkspace(dir, ws); err != nil {
		return err
	}
	st, err := openState(dir)
	if err != nil {
		return err
	}
	defer st.Close()
	recs, err := st.Stages()
	if err != nil {
		return err
	}
	outs, err := st.Outputs()
	if err != nil {
		return err
	}
	serial, err := st.Serial()
	if err != nil {
		return err
	}
	if asJSON {
		out := stateJSON{FormatVersion: "1", Workspace: ws, Serial: serial, Stages: []stateStageJSON{}, Outputs: map[string]json.RawMessage{}}
		for _, r := range recs {
			o := json.RawMessage("null")
			if len(r.Output) > 0 {
				if o, err = state.PlainJSON(r.Output); err != nil {
					return fmt.Errorf("%s: %w", r.Address, err)
				}
			}
			m := r.Metrics
			if m == nil {
				m = map[string]float64{}
			}
			out.Stages = append(out.Stages, stateStageJSON{
				Address: r.Address, Operator: r.Operator, Version: r.Version, Key: r.Key,
				Started: r.Started.UTC(), Finished: r.Finished.UTC(), Backend: r.Backend,
				Tasks: r.Tasks, Retries: r.Retries, GBSeconds: r.GBSeconds, CostUSD: r.CostUSD,
				Output: o, Metrics: m, Stopped: r.Stopped,
			})
		}
		for k, raw := range outs {
			p, err := state.PlainJSON(raw)
			if err != nil {
				return err
			}
			out.Outputs[k] = p
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(recs) == 0 {
		fmt.Fprintln(c.stdout, "No state. Run stratus apply to record stages.")
		return nil
	}
	w := c.stdout
	if ws != dsl.DefaultWorkspace {
		fmt.Fprintf(w, "Workspace: %s\n\n", ws)
	}
	for i, r := range recs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "# %s (%s v%d)\n", r.Address, r.Operator, r.Version)
		fmt.Fprintf(w, "key      = %s\n", r.Key)
		fmt.Fprintf(w, "ran      = %s, %s on %s (%d tasks)\n", r.Finished.Local().Format(time.RFC3339),
			r.Finished.Sub(r.Started).Round(10*time.Millisecond), r.Backend, r.Tasks)
		if r.Stopped != "" {
			fmt.Fprintf(w, "stopped  = %s\n", r.Stopped)
		}
		if len(r.Output) > 0 {
			v, err := state.DecodeValue(r.Output)
			if err != nil {
				return fmt.Errorf("%s: %w", r.Address, err)
			}
			fmt.Fprintf(w, "output   = %s\n", hclwrite.TokensForValue(v).Bytes())
		}
		if len(r.Metrics) > 0 {
			fmt.Fprintln(w, "metrics:")
			for _, k := range sortedNames(r.Metrics) {
				fmt.Fprintf(w, "  %s = %g\n", k, r.Metrics[k])
			}
		}
	}
	if len(outs) > 0 {
		fmt.Fprint(w, "\nOutputs:\n\n")
		for _, k := range sortedNames(outs) {
			if err := c.printOutput(outs[k], false, k+" = "); err != nil {
				return err
			}
		}
	}
	return nil
}
