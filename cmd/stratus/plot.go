package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/internal/lossplot"
	"github.com/stratus-ml/stratus/state"
)

func (c *cli) plotCmd() *cobra.Command {
	var dir, out string
	cmd := &cobra.Command{
		Use:     "plot STAGE -o FILE.png|svg",
		Short:   "Plot a stage's test loss against time: every trial of a grid search, the best highlighted",
		Example: `  stratus plot grid_search.tune -dir pipelines/a9a-tune -o tune.svg`,
		Long: `Plot draws the test loss of a train or grid_search stage against the seconds since
training started, from the evaluations the state recorded (.stratus/state beside the
pipeline): one curve per trial of a grid search, the best one thick and red, trials
stopped or killed dashed; a train stage has one curve. The stage may still be
running. The file's extension picks the format: .png, .svg or .pdf.

  stratus plot grid_search.tune -o tune.png
  stratus plot train.lr -o lr.svg -dir pipelines/a9a`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("give the image file to write: stratus plot %s -o FILE.png", args[0])
			}
			return c.plot(dir, args[0], out)
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "the image to write: `FILE`.png, FILE.svg or FILE.pdf")
	cmd.Flags().StringVar(&dir, "dir", ".", "the pipeline `DIR`")
	return cmd
}

func (c *cli) plot(dir, stage, out string) error {
	st, err := openState(dir)
	if err != nil {
		return err
	}
	if st == nil {
		return fmt.Errorf("no state in %s: the pipeline has not been applied", stateDir(dir))
	}
	defer st.Close()
	raw, err := st.Series(stage)
	if err != nil {
		return err
	}
	rec, err := st.Stage(stage)
	if err != nil {
		return err
	}
	if len(raw) == 0 {
		recs, _ := st.Stages()
		var names []string
		for _, r := range recs {
			if r.Operator == "train" || r.Operator == "grid_search" {
				names = append(names, r.Address)
			}
		}
		if len(names) == 0 {
			names = []string{"none"}
		}
		return fmt.Errorf("no evaluations recorded for %s; train and grid_search stages in the state: %s", stage, strings.Join(names, ", "))
	}
	// When the stage is recorded, plot its last run: the series keeps every run's
	// points, and a grid search replays the curves of trials it reused.
	var since time.Time
	best := ""
	if rec != nil {
		since = rec.Started
		if v, err := state.DecodeValue(rec.Output); err == nil && v.Type().IsObjectType() && v.Type().HasAttribute("best") {
			if b := v.GetAttr("best"); b.Type().IsObjectType() && b.Type().HasAttribute("id") {
				best = b.GetAttr("id").AsString()
			}
		}
	}
	curves, err := lossplot.FromSeries(raw, since, best)
	if err != nil {
		return fmt.Errorf("read the series of %s: %w", stage, err)
	}
	if len(curves) == 0 && !since.IsZero() {
		curves, err = lossplot.FromSeries(raw, time.Time{}, best)
		if err != nil {
			return fmt.Errorf("read the series of %s: %w", stage, err)
		}
	}
	title := stage + ": test log loss"
	if len(curves) > 1 {
		title = fmt.Sprintf("%s: test log loss of %d trials", stage, len(curves))
	}
	if err := lossplot.Save(curves, title, out); err != nil {
		return err
	}
	what := "1 curve"
	if len(curves) != 1 {
		what = fmt.Sprintf("%d curves", len(curves))
	}
	for _, cv := range curves {
		if cv.Best && len(curves) > 1 {
			what += fmt.Sprintf("; best %s", cv.Label())
		}
	}
	fmt.Fprintf(c.stdout, "Wrote %s (%s).\n", out, what)
	return nil
}
