package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/pflag"

	"github.com/stratus-ml/stratus/blob/blobs"
	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor/runtime"
	"github.com/stratus-ml/stratus/internal/pricing"
	"github.com/stratus-ml/stratus/operators/builtin"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/state"
)

// registry is the operator registry of this binary.
var registry = builtin.Registry()

// stateDir is the working directory of the pipeline in dir in its current
// workspace: .stratus for the default workspace, .stratus/workspaces/NAME for
// another (workspace.go). The lock, the state, the local blob store and the
// local psstore data all live in it.
func stateDir(dir string) string { return workspaceDir(dir, currentWorkspace(dir)) }

// stateDBDir is the state database of the pipeline in dir.
func stateDBDir(dir string) string { return filepath.Join(stateDir(dir), "state") }

// loadPipeline parses the pipeline in dir and prints its diagnostics. It returns nil
// (after printing) when there are errors.
func (c *cli) loadPipeline(dir string, vf varFlags, allowMissing bool) (*dsl.Config, bool) {
	ws := currentWorkspace(dir)
	if err := checkWorkspace(dir, ws); err != nil {
		fmt.Fprintf(c.stderr, "Error: %s\n", err)
		return nil, false
	}
	cfg, diags := dsl.Load(dir, dsl.LoadOptions{
		Workspace:        ws,
		Registry:         registry,
		Vars:             vf.vars,
		VarFiles:         vf.varFiles,
		Environ:          os.Environ(),
		AllowMissingVars: allowMissing,
		Backends:         runtime.Decoder{},
		Version:          version,
	})
	if diags.HasErrors() {
		// Report what the graph and evaluation would find too: every problem at once.
		diags = append(diags, planner.Check(cfg)...)
		c.printDiags(cfg, diags)
		return nil, false
	}
	c.printDiags(cfg, diags)
	return cfg, true
}

// printDiags writes diagnostics with source snippets to stderr.
func (c *cli) printDiags(cfg *dsl.Config, diags hcl.Diagnostics) {
	if len(diags) == 0 {
		return
	}
	var files map[string]*hcl.File
	if cfg != nil {
		files = cfg.Files
	}
	writeDiagnostics(c.stderr, files, diags, c.color(c.stderr))
}

// writeDiagnostics renders diags with hcl's text writer (summary, source snippet,
// detail), giving each source position as FILE:LINE:COLUMN — the writer says only
// "FILE line LINE", and without colour nothing marks the column.
func writeDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics, colour bool) {
	// In source order, so the output is the same every run (hcl reports some
	// problems in map order); problems without a location come last.
	diags = append(hcl.Diagnostics(nil), diags...)
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a != nil && b == nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
	var buf bytes.Buffer
	tw := hcl.NewDiagnosticTextWriter(&buf, files, 78, colour)
	for _, d := range diags {
		buf.Reset()
		_ = tw.WriteDiagnostic(d)
		out := buf.Bytes()
		if s := d.Subject; s != nil {
			at := fmt.Sprintf("  on %s line %d", s.Filename, s.Start.Line)
			col := fmt.Sprintf("  on %s:%d:%d", s.Filename, s.Start.Line, s.Start.Column)
			out = bytes.Replace(out, []byte(at), []byte(col), 1)
		}
		_, _ = w.Write(out)
	}
}

// selectFlags are -target and -replace, shared by plan and apply.
type selectFlags struct {
	targets  []string
	replaces []string
}

func (s *selectFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&s.targets, "target", nil, "plan only the stage at `ADDR` and the stages it reads (repeatable; the result is partial)")
	fs.StringArrayVar(&s.replaces, "replace", nil, "run the stage at `ADDR` again even if it is cached (repeatable)")
}

// buildPlan plans cfg against st (read-only use), limited or forced by sel.
func (c *cli) buildPlan(ctx context.Context, cfg *dsl.Config, st *state.Store, sel selectFlags) (*planner.Plan, bool) {
	return c.buildPlanLimits(ctx, cfg, st, sel, true)
}

// buildPlanLimits is buildPlan; dial says whether the backend's limits may be
// read over the network (Lambda's account concurrency, the psstore cluster's
// map), which sizing needs and graph, which draws only actions, does not.
func (c *cli) buildPlanLimits(ctx context.Context, cfg *dsl.Config, st *state.Store, sel selectFlags, dial bool) (*planner.Plan, bool) {
	backend, root := runtime.Location(cfg, c.backend, absDir(stateDir(cfg.Dir)))
	pr, memoryMB := planPricing(cfg, backend)
	var (
		limits     planner.Limits
		autoMemory bool
	)
	if dial {
		limits, autoMemory = runtime.PlanLimits(ctx, cfg, c.backend)
	} else {
		limits, autoMemory = runtime.OfflineLimits(cfg, c.backend)
	}
	opts := planner.Options{
		State: st, Remote: remoteSources(cfg), Target: sel.targets, Replace: sel.replaces,
		BlobRoot: root, Backend: backend, Pricing: pr, MemoryMB: memoryMB,
		Limits: limits, AutoMemory: autoMemory, Machine: c.machineHistory(),
	}
	if sc, err := runtime.SharedCache(ctx, cfg); err != nil {
		fmt.Fprintf(c.stderr, "Error: %s\n", err)
		return nil, false
	} else if sc != nil {
		opts.Shared = sc
	}
	p, diags := planner.Build(ctx, cfg, opts)
	c.printDiags(cfg, diags)
	if diags.HasErrors() {
		return nil, false
	}
	return p, true
}

// planPricing is the prices and function memory the plan's estimates use: those
// of the run the backend would make (runtime.New prices it the same way).
func planPricing(cfg *dsl.Config, backend string) (pricing.Pricing, int) {
	s, diags := runtime.SettingsOf(cfg)
	if diags.HasErrors() {
		return pricing.Default(), 0
	}
	if backend == "lambda" {
		if pr, err := pricing.For(s.Lambda.Region, s.Lambda.Architecture); err == nil {
			pr.HostPerHour = s.Lambda.PSStoreHourlyUSD // stages that use psstore pay its hosts
			return pr, s.Lambda.MemoryMB
		}
	}
	return pricing.Default(), s.Local.MemoryMB
}

// planDir loads the pipeline in dir and plans it against its state (read, never
// created), printing every problem. It returns nil after printing when there are
// errors. dial is buildPlanLimits's.
func (c *cli) planDir(ctx context.Context, dir string, vf varFlags, sel selectFlags, allowMissingVars, dial bool) (*planner.Plan, error) {
	cfg, ok := c.loadPipeline(dir, vf, allowMissingVars)
	if !ok {
		return nil, exitError{1}
	}
	st, err := openState(dir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	p, ok := c.buildPlanLimits(ctx, cfg, st, sel, dial)
	if !ok {
		return nil, exitError{1}
	}
	return p, nil
}

// remoteSources digests the pipeline's s3:// sources with its backend's S3
// settings (the local default's when the backend block does not decode).
func remoteSources(cfg *dsl.Config) planner.SourceDigester {
	s, diags := runtime.SettingsOf(cfg)
	if diags.HasErrors() {
		return runtime.Sources(blobs.Options{})
	}
	return runtime.Sources(s.BlobOptions())
}
