package main

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/cobra"
	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/state"
)

func (c *cli) consoleCmd() *cobra.Command {
	var vf varFlags
	cmd := &cobra.Command{
		Use:   "console [DIR]",
		Short: "Evaluate expressions in the pipeline's scope",
		Long: `Console reads one expression per line from standard input (with a "> " prompt on
a terminal; "exit" or end of input stops it) and prints its value, evaluated as a
root output would be: var.*, local.*, module outputs, the outputs of stages the
state records with their current configuration, path.*, stratus.workspace and the
functions. A value that depends on a stage that has not run, or has changed since,
prints as (known after apply: …) with the reason. An expression that does not parse
or evaluate prints its error and the console goes on; off a terminal, the exit
status is then 1.`,
		Example: `  echo 'train.lr.metrics.test_logloss' | stratus console
  echo 'upper(stratus.workspace)' | stratus console pipelines/a9a
  stratus console -var learning_rate=0.5`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.console(cmd.Context(), dirArg(args), vf)
		},
	}
	vf.register(cmd.Flags())
	return cmd
}

func (c *cli) console(ctx context.Context, dir string, vf varFlags) error {
	cfg, ok := c.loadPipeline(dir, vf, true)
	if !ok {
		return exitError{1}
	}
	st, err := openState(dir)
	if err != nil {
		return err
	}
	p, diags := planner.Build(ctx, cfg, planner.Options{State: st, Remote: remoteSources(cfg)})
	st.Close()
	c.printDiags(cfg, diags)
	if diags.HasErrors() {
		return exitError{1}
	}
	ev := cfg.NewEvaluator()
	why := map[string]string{}
	for _, s := range p.Stages {
		if s.Action == planner.Cached && s.Prior != nil && len(s.Prior.Output) > 0 {
			v, err := state.DecodeValue(s.Prior.Output)
			if err != nil {
				return fmt.Errorf("%s: recorded output unreadable: %w", s.Address, err)
			}
			ev.SetStageOutput(s.Address, v)
			continue
		}
		switch {
		case s.Action == planner.Run && s.Prior == nil:
			why[s.Address] = s.Address + " has not run"
		case s.Action == planner.Cached:
			why[s.Address] = s.Address + " recorded no output"
		default:
			why[s.Address] = s.Address + " changed since it ran (" + s.Reason + ")"
		}
	}

	interactive := isTerminal(c.stdin)
	in := bufio.NewScanner(c.stdin)
	in.Buffer(make([]byte, 64<<10), 1<<20)
	failed := false
	// Every line read so far, so a diagnostic shows its line of the input.
	const name = "<stdin>"
	var all []byte
	for n := 1; ; n++ {
		if interactive {
			fmt.Fprint(c.stdout, "> ")
		}
		if !in.Scan() {
			break
		}
		start := hcl.Pos{Line: n, Column: 1, Byte: len(all)}
		all = append(append(all, in.Bytes()...), '\n')
		line := strings.TrimSpace(in.Text())
		if line == "" {
			continue
		}
		if line == "exit" {
			break
		}
		v, reads, diags := ev.EvalExpr(name, start, []byte(strings.TrimRight(in.Text(), "\r\t ")))
		if diags.HasErrors() {
			writeDiagnostics(c.stderr, map[string]*hcl.File{name: {Bytes: all}}, diags, c.color(c.stderr))
			failed = true
			continue
		}
		for _, a := range reads {
			if _, ok := why[a]; ok || !strings.HasPrefix(a, "var.") {
				continue
			}
			if vv, _ := ev.Value(a); !vv.IsWhollyKnown() {
				name := strings.TrimPrefix(a, "var.")
				why[a] = fmt.Sprintf("%s has no value (set it with -var %s=…)", a, name)
			}
		}
		fmt.Fprintln(c.stdout, consoleValue(v, reads, why))
	}
	if err := in.Err(); err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	if failed && !interactive {
		return exitError{1}
	}
	return nil
}

// consoleValue renders v as HCL, or says why it is not known yet from the
// reasons why holds for the stages and variables it reads.
func consoleValue(v cty.Value, reads []string, why map[string]string) string {
	if v.IsWhollyKnown() {
		if v.IsNull() {
			return "null"
		}
		return string(hclwrite.TokensForValue(v).Bytes())
	}
	var stageWhy, varWhy []string
	for _, s := range reads {
		r, ok := why[s]
		switch {
		case !ok:
		case strings.HasPrefix(s, "var."):
			varWhy = append(varWhy, r)
		default:
			stageWhy = append(stageWhy, r)
		}
	}
	switch {
	case len(varWhy) > 0:
		return "(not known: " + strings.Join(append(varWhy, stageWhy...), "; ") + ")"
	case len(stageWhy) > 0:
		return "(known after apply: " + strings.Join(stageWhy, "; ") + ")"
	}
	return "(known after apply)"
}
