package planner

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/internal/pricing"
	"github.com/stratus-ml/stratus/state"
)

// recordOn stores a completed run of every stage of p, as record does, measured
// on backend with calibration cal.
func recordOn(t *testing.T, st *state.Store, p *Plan, backend string, cal map[string]float64, only ...string) {
	t.Helper()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, s := range p.Stages {
		if len(only) > 0 && s.Address != only[0] {
			continue
		}
		err := st.PutStage(&state.StageRecord{
			Address: s.Address, Operator: s.Operator, Version: s.Version, Key: s.Key,
			Params: s.Params, Upstream: s.Upstream, Sources: s.Sources,
			Started: start, Finished: start.Add(40 * time.Second), Tasks: 3, GBSeconds: 12, CostUSD: 0.5,
			Backend: backend, InputBytes: s.Estimate.InputBytes, Calibration: cal,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func planOn(t *testing.T, dir string, st *state.Store, backend string) *Plan {
	t.Helper()
	p, diags := Build(t.Context(), load(t, dir), Options{State: st, Limits: Limits{Backend: backend, Functions: 100, Cores: 2}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return p
}

// TestEstimateHistoryPerBackend: history calibrates estimates for the backend it
// was measured on only; a plan for another backend falls back to the defaults.
func TestEstimateHistoryPerBackend(t *testing.T) {
	dir := estimateDir(t, 1000, 5)
	st := openState(t)
	recordOn(t, st, planOn(t, dir, st, "local"), "local", nil)
	writeFiles(t, dir, map[string]string{"data.svm": strings.Repeat("+1 1:0.5 2:0.25 3:1\n", 2000)})
	for _, s := range planOn(t, dir, st, "local").Stages {
		if s.Estimate.Basis != BasisHistory {
			t.Errorf("local plan, %s: basis %s, want history", s.Address, s.Estimate.Basis)
		}
	}
	for _, s := range planOn(t, dir, st, "lambda").Stages {
		if s.Estimate.Basis != BasisDefaults {
			t.Errorf("lambda plan from local history, %s: basis %s, want defaults", s.Address, s.Estimate.Basis)
		}
	}
}

// TestEstimateColdStarts: a defaults estimate on a backend whose recorded runs
// had cold starts pays their expected share per function: half the invocations
// cold at 400 ms each add 200 ms to every function.
func TestEstimateColdStarts(t *testing.T) {
	dir := estimateDir(t, 1000, 5)
	st := openState(t)
	before := planOn(t, dir, st, "lambda")
	recordOn(t, st, before, "lambda", map[string]float64{CalInvocations: 10, CalColdStarts: 5, CalColdStartMS: 400}, "load.d")
	after := planOn(t, dir, st, "lambda")
	for _, addr := range []string{"normalize.d", "train.lr"} {
		a, b := before.Stage(addr).Estimate, after.Stage(addr).Estimate
		if b.Basis != BasisDefaults {
			t.Fatalf("%s: basis %s, want defaults", addr, b.Basis)
		}
		if d := b.FunctionSeconds - a.FunctionSeconds; math.Abs(d-0.2*float64(a.Tasks)) > 1e-9 {
			t.Errorf("%s: %g function-seconds more over %d functions; want 0.2 s each", addr, d, a.Tasks)
		}
		if d := b.Wall - a.Wall; d != 200*time.Millisecond {
			t.Errorf("%s: wall %s more; want 200ms", addr, d)
		}
	}
	// The local backend's records say nothing of Lambda's cold starts.
	if e := planOn(t, dir, st, "local").Stage("train.lr").Estimate; e.Basis != BasisDefaults {
		t.Errorf("local: %+v", e)
	}
}

// TestEstimateMinibatchLatency: a train stage estimated from a record with
// minibatch 100 but run with minibatch 10 pays the record's measured pull and
// push latency ten times as often per example: iterations of 150 µs + 0.3 µs
// per example cost 1.8 µs per example at 100 and 15.3 µs at 10, 8.5 times.
func TestEstimateMinibatchLatency(t *testing.T) {
	if k := iterationScale(&state.StageRecord{Calibration: map[string]float64{CalPullP50US: 100, CalPushP50US: 50, CalComputeUS: 20, CalGetUS: 10}}, 10); math.Abs(k-8.5) > 1e-9 {
		t.Fatalf("scale %g, want 8.5", k)
	}
	if k := iterationScale(&state.StageRecord{}, 10); k != 1 {
		t.Fatalf("no latencies: scale %g, want 1", k)
	}
	dir := estimateDir(t, 1000, 5)
	st := openState(t)
	recordOn(t, st, plan(t, load(t, dir), st), "local", map[string]float64{CalPullP50US: 100, CalPushP50US: 50, CalComputeUS: 20, CalGetUS: 10})
	writeFiles(t, dir, map[string]string{"main.hcl": strings.Replace(estimatePipeline, "epochs  = EPOCHS", "epochs  = 5\n  minibatch = 10", 1)})
	p := plan(t, load(t, dir), st)
	e := p.Stage("train.lr").Estimate
	if p.Stage("train.lr").Action != Rerun || e.Basis != BasisHistory {
		t.Fatalf("train.lr: %s %+v, want a rerun from history", p.Stage("train.lr").Action, e)
	}
	if r := e.GBSeconds / 12; math.Abs(r-8.5) > 1e-6 {
		t.Errorf("minibatch 100 → 10: %g GB-s from the record's 12, ratio %g; want 8.5", e.GBSeconds, r)
	}
	// A record that names its minibatch: the measured latencies scale the
	// estimate, and the default model's minibatch factor does not as well.
	dir = estimateDir(t, 1000, 5)
	st = openState(t)
	writeFiles(t, dir, map[string]string{"main.hcl": strings.Replace(estimatePipeline, "epochs  = EPOCHS", "epochs  = 5\n  minibatch = 100", 1)})
	recordOn(t, st, plan(t, load(t, dir), st), "local", map[string]float64{CalPullP50US: 100, CalPushP50US: 50, CalComputeUS: 20, CalGetUS: 10})
	writeFiles(t, dir, map[string]string{"main.hcl": strings.Replace(estimatePipeline, "epochs  = EPOCHS", "epochs  = 5\n  minibatch = 10", 1)})
	p = plan(t, load(t, dir), st)
	e = p.Stage("train.lr").Estimate
	if r := e.GBSeconds / 12; e.Basis != BasisHistory || math.Abs(r-8.5) > 1e-6 {
		t.Errorf("recorded minibatch 100 → 10: %s, %g GB-s from the record's 12, ratio %g; want 8.5 from history", e.Basis, e.GBSeconds, r)
	}
}

// TestEstimatePSStoreHosts: on a backend whose psstore hosts are priced, a stage
// that uses psstore pays them for its wall time, the cluster's members each;
// one that does not pays nothing for them.
func TestEstimatePSStoreHosts(t *testing.T) {
	dir := estimateDir(t, 1000, 5)
	pr := pricing.Default()
	pr.HostPerHour = 0.05
	build := func(hourly float64) *Plan {
		pr.HostPerHour = hourly
		p, diags := Build(t.Context(), load(t, dir), Options{Pricing: pr, Limits: Limits{Backend: "lambda", Functions: 100, Shards: 3}})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return p
	}
	priced, free := build(0.05), build(0)
	tr, tr0 := priced.Stage("train.lr").Estimate, free.Stage("train.lr").Estimate
	want := 3 * tr.Wall.Hours() * 0.05
	if math.Abs(tr.PSStoreUSD-want) > 1e-12 || want <= 0 || math.Abs(tr.CostUSD-tr0.CostUSD-want) > 1e-12 {
		t.Errorf("train: psstore $%g of $%g (unpriced $%g); want 3 hosts × %s × $0.05/h = $%g added", tr.PSStoreUSD, tr.CostUSD, tr0.CostUSD, tr.Wall, want)
	}
	if l := priced.Stage("load.d").Estimate; l.PSStoreUSD != 0 || l.CostUSD != free.Stage("load.d").Estimate.CostUSD {
		t.Errorf("load pays for psstore hosts: %+v", l)
	}
}

// TestIterationFactorUnknownMinibatch: a minibatch set from an upstream
// stage's output (unknown at plan time) does not rescale the record, which
// ran at the value it had then; a known one does.
func TestIterationFactorUnknownMinibatch(t *testing.T) {
	m := &costModel{}
	sp := &StagePlan{Operator: "train"}
	r := &state.StageRecord{Params: map[string]state.Param{"minibatch": {Display: "20"}},
		Calibration: map[string]float64{CalPullP50US: 300, CalPushP50US: 50, CalComputeUS: 7, CalGetUS: 1}}
	if k := m.iterationFactor(sp, r, cty.ObjectVal(map[string]cty.Value{"minibatch": cty.UnknownVal(cty.Number)})); k != 1 {
		t.Errorf("unknown minibatch: factor %g, want 1", k)
	}
	if k := m.iterationFactor(sp, r, cty.ObjectVal(map[string]cty.Value{"minibatch": cty.NumberIntVal(100)})); k >= 0.5 {
		t.Errorf("minibatch 20 → 100: factor %g, want well under 1", k)
	}
}
