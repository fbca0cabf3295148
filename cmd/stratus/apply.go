package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/runtime"
	"github.com/stratus-ml/stratus/internal/pricing"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/state"
)

type applyFlags struct {
	vf          varFlags
	sel         selectFlags
	autoApprove bool
	parallelism int
	backend     string
	asJSON      bool
	ui          string
	uiRemote    bool
	lockTimeout time.Duration
}

func (c *cli) applyCmd() *cobra.Command {
	var f applyFlags
	cmd := &cobra.Command{
		Use:   "apply [DIR | PLANFILE]",
		Short: "Run the stages a plan says need running",
		Example: `  stratus apply -auto-approve pipelines/a9a
  stratus plan -out tf.plan && stratus apply tf.plan
  stratus apply -replace=train.lr -target=train.lr`,
		Long: `Apply plans the pipeline (or takes a plan saved with plan -out), shows it, asks
for confirmation on a terminal, and runs every stage that is not cached as waves of
functions, independent stages concurrently. Each stage is recorded in the state when
it completes; an interrupted apply resumes where it stopped.

Ctrl-C stops in-flight tasks and saves what completed; a second Ctrl-C exits at once.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.apply(cmd.Context(), dirArg(args), f)
		},
	}
	f.vf.register(cmd.Flags())
	f.sel.register(cmd.Flags())
	cmd.Flags().BoolVar(&f.autoApprove, "auto-approve", false, "skip the confirmation prompt")
	cmd.Flags().IntVar(&f.parallelism, "parallelism", 10, "run at most `N` stages at once")
	cmd.Flags().StringVar(&f.backend, "backend", "", "run on `BACKEND` instead of the pipeline's: local or lambda")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print a machine-readable event stream (implies -auto-approve)")
	cmd.Flags().StringVar(&f.ui, "ui", "", "serve the live dashboard on `ADDR` (such as 127.0.0.1:8080) and print its URL")
	cmd.Flags().BoolVar(&f.uiRemote, "ui-allow-remote", false, "allow a non-loopback -ui address")
	lockTimeoutFlag(cmd.Flags(), &f.lockTimeout)
	return cmd
}

func (c *cli) apply(parent context.Context, target string, f applyFlags) (err error) {
	if f.parallelism < 1 {
		return fmt.Errorf("-parallelism must be at least 1")
	}
	c.backend = f.backend
	var saved *planner.File
	dir := target
	if st, err := os.Stat(target); err == nil && st.Mode().IsRegular() {
		pf, err := planner.ReadFile(target)
		if err != nil {
			return err
		}
		if len(f.sel.targets)+len(f.sel.replaces) > 0 {
			return fmt.Errorf("-target and -replace cannot be used with a saved plan: %s already holds its selection (make one with stratus plan -target/-replace -out FILE)", target)
		}
		saved, dir = pf, pf.Dir
		if ws, cur := orDefault(pf.Workspace), currentWorkspace(dir); ws != cur {
			return fmt.Errorf("%s was planned in workspace %q, but the current workspace is %q: select it (stratus workspace select %s) or plan again", target, ws, cur, ws)
		}
	}
	var cfg *dsl.Config
	if saved == nil {
		// Parse before touching .stratus, so a broken pipeline leaves nothing behind.
		var ok bool
		if cfg, ok = c.loadPipeline(dir, f.vf, false); !ok {
			return exitError{1}
		}
	}
	// Signals are caught before the lock is taken, so that a Ctrl-C never
	// leaves a remote lock behind (the deferred unlock runs).
	ctx, stopSignals := c.interruptible(parent)
	defer stopSignals()
	lock, st, err := c.lockState(ctx, dir, "stratus apply", f.lockTimeout)
	if err != nil {
		return err
	}
	// The state is closed early, on its own goroutine, once the apply has
	// written to it the last time (below); the lock is released only after.
	closed := make(chan error, 1)
	closing := false
	closeState := func() { closed <- pushClose(st) }
	defer func() {
		if !closing {
			closeState()
		}
		c.releaseState(lock, <-closed, &err)
	}()
	if lock.Previous != nil && !f.asJSON {
		fmt.Fprintf(c.stderr, "Note: the previous apply, %s, did not finish; completed work will be reused.\n", lock.Previous)
	}

	var p *planner.Plan
	if saved != nil {
		if p, err = c.planFromFile(ctx, saved, st); err != nil {
			return err
		}
	} else {
		var ok bool
		if p, ok = c.buildPlan(ctx, cfg, st, f.sel); !ok {
			return exitError{1}
		}
	}
	if err := runtime.Preflight(ctx, p, f.backend, nil); err != nil {
		return err
	}
	if !f.asJSON {
		c.writePlan(c.stdout, p)
		fmt.Fprintln(c.stdout)
	}
	if p.HasChanges() && !f.autoApprove && !f.asJSON && saved == nil {
		if !isTerminal(c.stdin) {
			fmt.Fprintln(c.stderr, "Error: apply needs confirmation, and input is not a terminal. Run it with -auto-approve, or save a plan with plan -out and apply that.")
			return exitError{1}
		}
		fmt.Fprint(c.stdout, "Do you want to perform these actions?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ")
		line, _ := bufio.NewReader(c.stdin).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			fmt.Fprintln(c.stdout, "\nApply cancelled.")
			return exitError{1}
		}
		fmt.Fprintln(c.stdout)
	}

	rt, err := runtime.Open(ctx, p, runtime.Options{Registry: registry, StateDir: absDir(stateDir(dir)), Backend: f.backend})
	if err != nil {
		return err
	}
	defer rt.Close()

	// The control endpoint (and dashboard) of this apply: stratus trials, ui, -ui.
	router := executor.NewRouter()
	uiOut := c.stdout
	if f.asJSON {
		uiOut = c.stderr
	}
	ctl, err := c.startControl(uiOut, dir, p, st, router, rt, f.ui, f.uiRemote)
	if err != nil {
		return err
	}
	defer ctl.Close()

	obs, finish := c.observer(f.asJSON)
	started := time.Now()
	git := gitAsync(dir)
	opts := rt.ApplyOptions()
	opts.Plan, opts.State, opts.Registry = p, st, registry
	opts.Observer = executor.Observers{obs, ctl.Observer()}
	opts.Router, opts.Parallelism, opts.Retries = router, f.parallelism, 3
	sum, applyErr := executor.Apply(ctx, opts)
	ctl.Close()
	finish()
	c.recordRun(ctx, st, dir, p, sum, started, applyErr, git)
	history := c.machineRecords(st, sum)
	var recs []*state.StageRecord
	var recsErr error
	if sum != nil {
		recs, recsErr = st.Stages()
	}
	// That was the last use of the state: it is closed — badger flushes its
	// memtable into a table, several synced writes — while the calibration
	// history and the owner markers are written and the summary prints. Every
	// record was synced when written; the close adds nothing a crash could lose.
	closing = true
	go closeState() // owned by apply: its deferred release waits for it
	c.foldMachineHistory(p, history)
	// Every stage the state now records, even after a failure, is marked as
	// this pipeline's in the blob store, so another's destroy keeps it.
	if sum != nil {
		owned, superseded := map[string]string{}, map[string]string{}
		for _, s := range sum.Stages {
			if sp := p.Stage(s.Address); sp != nil && (s.Action == "ran" || s.Action == "cached") {
				owned[s.Address] = sp.Key
				if sp.Prior != nil && sp.Prior.Address == sp.Address && sp.Prior.Key != sp.Key {
					superseded[s.Address] = sp.Prior.Key
				}
			}
		}
		if recsErr == nil {
			for _, r := range recs {
				for a, k := range superseded {
					if r.Key == k {
						delete(superseded, a) // a twin still records it
					}
				}
			}
		} else {
			superseded = nil
		}
		if err := c.markOwners(context.WithoutCancel(ctx), p.Config, dir, owned, superseded); err != nil {
			fmt.Fprintf(c.stderr, "%s %s\n", c.paint(c.stderr, yellow, "Warning:"), err)
		}
	}
	if f.asJSON {
		if applyErr != nil {
			return exitError{1}
		}
		return nil
	}
	if sum != nil {
		c.writeSummary(c.stdout, sum, rt.Pricing, rt.MemoryMB)
		if rt.Pricing.HostPerHour > 0 && rt.Settings.Type == "lambda" {
			// The cluster's members, not the block's seed list.
			if hosts := rt.PSStoreHosts(ctx); hosts > 0 {
				fmt.Fprintf(c.stdout, "psstore hosts: %d × %s at $%.4f/h = $%.6f\n", hosts, sum.Duration.Round(time.Second),
					rt.Pricing.HostPerHour, rt.Pricing.Hosts(hosts, sum.Duration))
			}
		}
		c.writeEstimateVsActual(c.stdout, p, sum)
		c.writePublishWarnings(sum)
	}
	if applyErr != nil {
		c.writeFailures(sum)
		fmt.Fprintf(c.stderr, "\n%s %s\n", c.paint(c.stderr, red, "Error:"), applyErr)
		return exitError{1}
	}
	ran, cached, shared := 0, 0, ""
	adopted := 0
	var cut, over []string
	for _, s := range sum.Stages {
		if s.Action == "ran" {
			ran++
		} else if s.Action == "cached" {
			cached++
		}
		if s.Shared == "adopted" {
			adopted++
		}
		if s.Stopped != "" {
			cut = append(cut, s.Address+" "+s.Stopped)
		}
		if s.Over != "" {
			over = append(over, s.Address+" "+s.Over)
		}
	}
	if adopted > 0 {
		shared = fmt.Sprintf(" (%d from the shared cache)", adopted)
	}
	// A stage cut short by its budget or deadline is never hidden behind a
	// plain "Apply complete!".
	tail := ""
	if len(cut) > 0 {
		tail = fmt.Sprintf(" Cut short: %s (each kept its best result so far).", strings.Join(cut, "; "))
	}
	if len(over) > 0 {
		tail += fmt.Sprintf(" Over their limits: %s.", strings.Join(over, "; "))
	}
	fmt.Fprintf(c.stdout, "\n%s %d ran, %d cached%s, in %s.%s\n", c.paint(c.stdout, green+bold, "Apply complete!"), ran, cached, shared, sum.Duration.Round(10*time.Millisecond), tail)
	if len(p.Targets) > 0 {
		c.printDiags(p.Config, hcl.Diagnostics{{
			Severity: hcl.DiagWarning,
			Summary:  "Applied changes may be incomplete",
			Detail: "The plan was created with the -target option in effect, so some changes requested in the configuration may have been ignored and the output values may not be fully updated. Run the following command to verify that no other changes are pending:\n    stratus plan\n\n" +
				"Note that the -target option is not suitable for routine use, and is provided only for exceptional situations such as recovering from errors or mistakes.",
		}})
	}
	if len(sum.Outputs) > 0 {
		fmt.Fprint(c.stdout, "\nOutputs:\n\n")
		for _, k := range sortedNames(sum.Outputs) {
			fmt.Fprintf(c.stdout, "%s = %s\n", k, hclwrite.TokensForValue(sum.Outputs[k]).Bytes())
		}
	}
	return nil
}

// interruptible returns a context cancelled by the first SIGINT or SIGTERM; a second
// signal exits at once.
func (c *cli) interruptible(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			fmt.Fprintln(c.stderr, "\nInterrupt received. Stopping in-flight tasks and saving completed work; press Ctrl-C again to exit at once.")
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
			fmt.Fprintln(c.stderr, "Second interrupt: exiting without waiting.")
			os.Exit(130)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// observer picks the progress output: JSON events, bars on a terminal, or lines.
func (c *cli) observer(asJSON bool) (executor.Observer, func()) {
	switch {
	case asJSON:
		return executor.NewJSONEvents(c.stdout), func() {}
	case isTerminal(c.stdout) && c.color(c.stdout):
		t := executor.NewTerminalProgress(c.stdout)
		return t, t.Wait
	default:
		return executor.NewPlainProgress(c.stdout), func() {}
	}
}

// writeSummary prints a table of the stages: tasks, retries, wall time, function
// GB-seconds and their cost — billed (Lambda's billed duration and memory, at the
// region's prices) or, on the local backend, labelled as an estimate.
func (c *cli) writeSummary(w io.Writer, sum *executor.Summary, pr pricing.Pricing, memoryMB int) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "STAGE\tRESULT\tTASKS\tRETRIES\tWALL\tGB-S\t%s\t\n", strings.ToUpper(pr.Label()))
	for _, s := range sum.Stages {
		if s.Action == "cached" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t\n", s.Address, s.Action)
			continue
		}
		tasks := fmt.Sprint(s.Tasks)
		if s.Resumed > 0 {
			tasks = fmt.Sprintf("%d (+%d resumed)", s.Tasks, s.Resumed)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%.1f\t$%.6f\t\n", s.Address, s.Action, tasks, s.Retries, s.Wall.Round(10*time.Millisecond), s.GBSeconds, s.CostUSD)
	}
	tasks, retries, gbs, cost := sum.Totals()
	fmt.Fprintf(tw, "total\t\t%d\t%d\t%s\t%.1f\t$%.6f\t\n", tasks, retries, sum.Duration.Round(10*time.Millisecond), gbs, cost)
	tw.Flush()
	switch {
	case pr.Estimated:
		fmt.Fprintf(w, "(%s: what these functions would cost on Lambda, %s %s, %d MB; not a bill)\n", pr.Label(), pr.Region, pr.Arch, memoryMB)
	case pr.Assumed:
		fmt.Fprintf(w, "(region %s has no prices in this build; priced as %s)\n", pr.Region, pricing.DefaultRegion)
	}
}

// writeFailures prints each failed stage's error in full.
func (c *cli) writeFailures(sum *executor.Summary) {
	if sum == nil {
		return
	}
	for _, s := range sum.Stages {
		if s.Action == "failed" {
			fmt.Fprintf(c.stderr, "\n%s %s failed:\n%s\n", c.paint(c.stderr, red, "Error:"), s.Address, indent(s.Error, "  "))
		}
	}
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pre + l
	}
	return strings.Join(lines, "\n")
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}

// absDir returns dir as an absolute path.
func absDir(dir string) string {
	a, err := filepath.Abs(dir)
	if err != nil {
		return dir
	}
	return a
}

// writeEstimateVsActual prints, for every stage that ran, what plan estimated beside
// what it took, so a user learns how far to trust the next plan's figures (and the
// next plan's estimate already uses this run as its history).
func (c *cli) writeEstimateVsActual(w io.Writer, p *planner.Plan, sum *executor.Summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	rows := 0
	for _, s := range sum.Stages {
		sp := p.Stage(s.Address)
		if s.Action != "ran" || sp == nil || sp.Estimate == nil {
			continue
		}
		if rows == 0 {
			fmt.Fprintln(w)
			fmt.Fprintln(tw, "STAGE\tESTIMATED WALL\tACTUAL\tESTIMATED GB-S\tACTUAL\tBASIS\t")
		}
		rows++
		e := sp.Estimate
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.1f\t%s\t\n", s.Address, e.Wall.Round(10*time.Millisecond), s.Wall.Round(10*time.Millisecond), e.GBSeconds, s.GBSeconds, e.Basis)
	}
	tw.Flush()
}

// writePublishWarnings says which stages that ran could not be published to the
// shared cache, and why: the apply itself succeeded, but teammates will compute
// them again.
func (c *cli) writePublishWarnings(sum *executor.Summary) {
	for _, s := range sum.Stages {
		if s.PublishError != "" {
			fmt.Fprintf(c.stderr, "%s %s %s; teammates will compute it themselves until it is published.\n", c.paint(c.stderr, yellow, "Warning:"), s.Address, s.PublishError)
		}
	}
}
