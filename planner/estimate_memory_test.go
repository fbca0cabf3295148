package planner

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/state"
)

// TestEstimateHistoryMemory: an estimate from history re-prices the record's
// function-seconds at the plan's memory. A 2^28-slot model makes auto-sizing
// choose M ≈ 2.3 GB (above the 1769 MB default the first pass is priced at); a
// record of 12 GB-s measured at M is estimated at 12 GB-s when the plan
// chooses M again, at 24 with twice M fixed, and at 12 × 1769/M at the
// default. The old arithmetic divided the record's GB-seconds by the default
// memory and multiplied by the chosen one: 12 × M/1769 ≈ 16 GB-s for the same
// run, the +30–34% the 2M-row bench showed.
func TestEstimateHistoryMemory(t *testing.T) {
	hcl := strings.ReplaceAll(estimatePipeline, "EPOCHS", "5")
	dir := pipelineDir(t, map[string]string{
		"main.hcl": strings.Replace(hcl, `source = "data.svm"`, "source    = \"data.svm\"\n  hash_bits = 28", 1),
		"data.svm": strings.Repeat("+1 1:0.5 2:0.25 3:1\n", 1000),
	})
	st := openState(t)
	auto := Options{State: st, Limits: Limits{Backend: "local", Cores: 2}, AutoMemory: true}
	build := func(o Options) *Plan {
		t.Helper()
		p, diags := Build(t.Context(), load(t, dir), o)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return p
	}
	first := build(auto)
	mem := first.MemoryMB
	if mem <= 1769 {
		t.Fatalf("auto memory %d MB, want more than 1769 (a dense 2^28 model and its gradient)", mem)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, s := range first.Stages {
		if err := st.PutStage(&state.StageRecord{
			Address: s.Address, Operator: s.Operator, Version: s.Version, Key: s.Key,
			Params: s.Params, Upstream: s.Upstream, Sources: s.Sources,
			Started: start, Finished: start.Add(10 * time.Second), Tasks: 3, GBSeconds: 12, CostUSD: 0.5,
			Backend: "local", InputBytes: s.Estimate.InputBytes, MemoryMB: mem,
		}); err != nil {
			t.Fatal(err)
		}
	}
	// New data of the same size: every stage reruns from its history.
	writeFiles(t, dir, map[string]string{"data.svm": strings.Repeat("-1 1:0.5 2:0.25 3:1\n", 1000)})
	fixed := auto
	fixed.AutoMemory, fixed.Limits.MemoryMB, fixed.MemoryMB = false, 2*mem, 2*mem
	def := auto
	def.AutoMemory = false
	for _, c := range []struct {
		name string
		opts Options
		gbs  float64
	}{
		{"auto memory, the same again", auto, 12},
		{"memory fixed at twice that", fixed, 24},
		{"the default 1769 MB", def, 12 * 1769 / float64(mem)},
	} {
		p := build(c.opts)
		for _, s := range p.Stages {
			e := s.Estimate
			if s.Action != Rerun || e.Basis != BasisHistory {
				t.Fatalf("%s: %s: %s basis %q, want a rerun from history", c.name, s.Address, s.Action, e.Basis)
			}
			if math.Abs(e.GBSeconds-c.gbs) > 1e-9 {
				t.Errorf("%s: %s: %.4f GB-s from a record of 12 GB-s at %d MB, want %.4f", c.name, s.Address, e.GBSeconds, mem, c.gbs)
			}
			if fs := 12 * 1024 / float64(mem); math.Abs(e.FunctionSeconds-fs) > 1e-9 {
				t.Errorf("%s: %s: %.4f function-seconds, want the record's %.4f", c.name, s.Address, e.FunctionSeconds, fs)
			}
		}
	}
}
