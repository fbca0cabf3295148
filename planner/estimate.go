package planner

import (
	"math"
	"os"
	"strconv"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/internal/pricing"
	"github.com/stratus-ml/stratus/operators/train"
	"github.com/stratus-ml/stratus/state"
)

// The cost model lives here, in the planner, as a small table keyed by operator
// name (opModels) rather than as an estimate function in each operator's schema:
// the planner already holds every input the model needs at plan time (source
// sizes, upstream estimates, evaluated parameters, the state's history), the
// figures are rough enough that one table is easier to keep consistent than a
// function per package, and no operator has to learn about pricing or the plan.
// An operator without an entry is estimated by the generic data-pass model.

// Default throughputs, used when the state has no run of the stage to calibrate
// against. Measured on the local backend (goroutines on this project's shared
// 2-core build machine, 1769 MB priced) with testdata/a9a (2,329,875 bytes,
// 32,561 examples), load → normalize → train (workers 2, epochs 5), from the
// stage records' GB-seconds (function-seconds = GB-s × 1024 / 1769), then
// rounded down. Lambda's vCPU share at 1769 MB is about one core, as here.
const (
	// ParseBytesPerSecond is what one load function parses of LIBSVM text per
	// function-second: a9a in one task took 0.0595 GB-s (34 ms), 68 MB/s.
	ParseBytesPerSecond = 60e6
	// PassBytesPerSecond is what one function reads and writes per second in a
	// data pass that does not parse text: normalize's statistics pass and
	// rewrite of a9a took 0.0628 GB-s (36 ms) for two passes, 128 MB/s.
	PassBytesPerSecond = 120e6
	// ExamplesPerSecondPerWorker is what one SGD training worker processes per
	// second when it reaches its shards over gRPC (the Lambda backend, remote
	// shards): solver "sgd", minibatch 100, 2 workers on a9a over gRPC ran
	// 0.69M examples/s on an idle 2-core machine, 0.35M per worker; rounded down.
	ExamplesPerSecondPerWorker = 300e3
	// LocalExamplesPerSecondPerWorker is the same on the embedded default, whose
	// workers call the in-process shards directly: 300k generated Criteo-like
	// rows, defaults (SGD, 1 worker), 1.68M examples/s; rounded down.
	LocalExamplesPerSecondPerWorker = 1.5e6
	// BytesPerExample turns input bytes into examples for training: a9a's
	// LIBSVM text averages 71.6 bytes per example, generated Criteo-like
	// LIBSVM 335; a value between them.
	BytesPerExample = 150
	// DefaultEpochs is train's epoch cap when epochs is not set (sgdMaxEpochs).
	DefaultEpochs = 100
	// ConvergedExamplesPerRootRow models SGD stopped on convergence (no epochs
	// set): it processes about this many examples times the square root of the
	// training rows, at most DefaultEpochs passes. Fitted to the defaults'
	// runs on generated Criteo-like rows: 300k rows stopped after 3.0M examples
	// (10 epochs), 2M rows after about 6.5M (3 epochs).
	ConvergedExamplesPerRootRow = 5000
	// TaskOverhead is the fixed cost of starting one function. Assumed, not
	// measured here: a warm Lambda invocation and opening its data, 100 ms.
	TaskOverhead = 100 * time.Millisecond
	// ModelBytes is what a trained model hands downstream: a small fraction of
	// the data (a9a's model is 2 KB; 1 MB leaves room for wide models).
	ModelBytes = 1 << 20
)

// Basis says where an estimate's figures come from (and BasisMachine, in
// calibration_machine.go: this machine's run of the operator in another
// pipeline, scaled as history is).
type Basis string

// The bases.
const (
	BasisDefaults Basis = "defaults" // the default throughputs above
	BasisHistory  Basis = "history"  // the state's record of a previous run, scaled by input size
	BasisReused   Basis = "reused"   // a cached stage: the figures are what reuse saved
)

// Estimate is what running a stage is expected to take, or (Basis "reused") what
// reusing its outputs saved, from the record of the run that made them.
type Estimate struct {
	Basis Basis `json:"basis"`
	// Wall is the expected elapsed time of the stage.
	Wall time.Duration `json:"wall_ns"`
	// FunctionSeconds is the summed duration of the stage's functions.
	FunctionSeconds float64 `json:"function_seconds"`
	// GBSeconds is FunctionSeconds times the function memory in GB.
	GBSeconds float64 `json:"gb_seconds"`
	// CostUSD is the dollars of GBSeconds and the invocations at the plan's
	// prices, and of PSStoreUSD.
	CostUSD float64 `json:"cost_usd"`
	// PSStoreUSD is what the psstore hosts cost while the stage runs (a stage
	// that uses psstore, on a backend whose hosts are priced: the lambda
	// block's psstore_hourly_usd times the cluster's members).
	PSStoreUSD float64 `json:"psstore_usd,omitempty"`
	// Tasks is the number of functions the stage starts.
	Tasks int `json:"tasks"`
	// InputBytes is what the stage reads: its sources' sizes plus its upstream
	// stages' estimated output; OutputBytes what it hands downstream.
	InputBytes  int64 `json:"input_bytes"`
	OutputBytes int64 `json:"output_bytes"`
}

// Totals sums the estimates of a plan's stages: run and rerun stages, and
// separately the cached ones.
type Totals struct {
	// Wall, FunctionSeconds, GBSeconds and CostUSD sum the stages to run.
	Wall               time.Duration
	FunctionSeconds    float64
	GBSeconds, CostUSD float64
	// The Saved figures sum the cached stages' savings.
	SavedWall      time.Duration
	SavedGBSeconds float64
	SavedCostUSD   float64
	// HaveRun and HaveSaved say whether any stage to run, or any cached
	// stage, had an estimate.
	HaveRun, HaveSaved bool
}

// Totals sums the plan's estimates.
func (p *Plan) Totals() Totals {
	stages := make([]FileStage, len(p.Stages))
	for i, s := range p.Stages {
		stages[i] = FileStage{Address: s.Address, Deps: s.Deps, Action: s.Action, Estimate: s.Estimate}
	}
	return TotalsOf(stages)
}

// TotalsOf sums the estimates of stages (of a fresh plan or a saved one), which
// must be in dependency order. The wall time is that of the longest chain of
// stages to run, since apply runs independent stages side by side; cached
// stages add nothing to it.
func TotalsOf(stages []FileStage) Totals {
	var t Totals
	finish := map[string]time.Duration{}
	for _, s := range stages {
		e := s.Estimate
		var start time.Duration
		for _, d := range s.Deps {
			start = max(start, finish[d])
		}
		finish[s.Address] = start
		if e == nil {
			continue
		}
		if s.Action == Cached {
			t.HaveSaved = true
			t.SavedWall += e.Wall
			t.SavedGBSeconds += e.GBSeconds
			t.SavedCostUSD += e.CostUSD
			continue
		}
		t.HaveRun = true
		finish[s.Address] = start + e.Wall
		t.Wall = max(t.Wall, finish[s.Address])
		t.FunctionSeconds += e.FunctionSeconds
		t.GBSeconds += e.GBSeconds
		t.CostUSD += e.CostUSD
	}
	return t
}

// costModel holds the prices and memory a plan is estimated with, and the
// state's records by operator for stages with no history of their own.
type costModel struct {
	pricing  pricing.Pricing
	memoryMB int
	// limits and autoMemory are the backend's, for sizing (sizing.go).
	limits     Limits
	autoMemory bool
	// lister lists the state's records when the StateReader can (a
	// *state.Store does); byOp is filled from it on first use.
	lister stageLister
	byOp   map[string]*state.StageRecord
	// all is the state's records, and overhead the per-function overhead
	// calibrated from them (calibration.go).
	all      []*state.StageRecord
	overhead time.Duration
	// machine is this machine's history (calibration_machine.go), or nil.
	machine *MachineHistory
	// solvers is the train operator's solver rule (solver.go).
	solvers SolverRule
}

// stageLister is the optional part of a StateReader that lists every record.
type stageLister interface {
	Stages() ([]*state.StageRecord, error)
}

func newCostModel(opts Options) *costModel {
	m := &costModel{pricing: opts.Pricing, memoryMB: opts.MemoryMB, limits: opts.Limits, autoMemory: opts.AutoMemory, machine: opts.Machine, solvers: opts.Solvers}
	if m.solvers == nil {
		m.solvers = train.Solvers{}
	}
	if l, ok := opts.State.(stageLister); ok && opts.State != nil {
		m.lister = l
	}
	if m.pricing.PerGBSecond == 0 {
		m.pricing = pricing.Default()
	}
	if m.memoryMB <= 0 {
		m.memoryMB = pricing.DefaultMemoryMB
	}
	return m
}

// opModel estimates one operator from its input bytes and evaluated
// configuration: the function-seconds of its work, the number of functions
// that share it (which divides the wall time), and the bytes it hands on.
type opModel func(in int64, cfg cty.Value) (funcSeconds float64, parallel int, out int64)

// opModels is the per-operator table (see the comment at the top of this file).
// A new operator with an entry here gets defaults fitted to it; without one, the
// generic single data pass.
var opModels = map[string]opModel{
	"load": func(in int64, _ cty.Value) (float64, int, int64) {
		// load splits its input into segments parsed in parallel; assume one
		// function per 64 MB, at least one.
		par := int(in/(64<<20)) + 1
		return float64(in) / ParseBytesPerSecond, par, in
	},
	"normalize": func(in int64, _ cty.Value) (float64, int, int64) {
		// A statistics pass and a rewrite, each a wave over the partitions:
		// assume one function per 64 MB, as load.
		return 2 * float64(in) / PassBytesPerSecond, int(in/(64<<20)) + 1, in
	},
	"train": func(in int64, cfg cty.Value) (float64, int, int64) {
		return trainSeconds(in, cfg), intAttr(cfg, "workers", 4), ModelBytes
	},
	"grid_search": func(in int64, cfg cty.Value) (float64, int, int64) {
		trials := gridTrials(cfg)
		base := cty.NilVal
		if cfg.Type().IsObjectType() && cfg.Type().HasAttribute("train") {
			base = cfg.GetAttr("train")
		}
		per := trainSeconds(in, base)
		workers := intAttr(base, "workers", 4)
		par := intAttr(cfg, "max_parallel", 2)
		if par > trials {
			par = trials
		}
		return float64(trials) * per, par * workers, ModelBytes
	},
}

// trainSeconds is the workers' function-seconds of training on in bytes:
// trainExamples at ExamplesPerSecondPerWorker.
func trainSeconds(in int64, cfg cty.Value) float64 {
	return trainExamples(in, cfg) / ExamplesPerSecondPerWorker
}

// trainExamples is how many examples training on in bytes processes: rows ×
// epochs when epochs is set; else SGD's convergence stopping, modelled as
// ConvergedExamplesPerRootRow × √rows, at most DefaultEpochs passes.
func trainExamples(in int64, cfg cty.Value) float64 {
	rows := max(float64(in)/BytesPerExample, 1)
	if e := intAttr(cfg, "epochs", 0); e > 0 {
		return rows * float64(e)
	}
	return min(ConvergedExamplesPerRootRow*math.Sqrt(rows), rows*DefaultEpochs)
}

// gridTrials is the number of trials a grid_search configuration runs: the
// product of the grid's value lists, or random.samples.
func gridTrials(cfg cty.Value) int {
	if !cfg.Type().IsObjectType() {
		return 1
	}
	if cfg.Type().HasAttribute("random") {
		if r := cfg.GetAttr("random"); r.IsKnown() && !r.IsNull() {
			if r.Type().IsListType() || r.Type().IsTupleType() {
				if r.LengthInt() > 0 {
					r = r.Index(cty.NumberIntVal(0))
				}
			}
			if n := intAttr(r, "samples", 0); n > 0 {
				return n
			}
		}
	}
	n := 1
	if cfg.Type().HasAttribute("grid") {
		g := cfg.GetAttr("grid")
		if g.IsWhollyKnown() && !g.IsNull() && g.CanIterateElements() {
			for it := g.ElementIterator(); it.Next(); {
				_, v := it.Element()
				if v.CanIterateElements() && v.LengthInt() > 0 {
					n *= v.LengthInt()
				}
			}
		}
	}
	return n
}

// intAttr is cfg's whole-number attribute name, or def when it is absent, null
// or unknown.
func intAttr(cfg cty.Value, name string, def int) int {
	if cfg == cty.NilVal || !cfg.IsKnown() || cfg.IsNull() || !cfg.Type().IsObjectType() || !cfg.Type().HasAttribute(name) {
		return def
	}
	v := cfg.GetAttr(name)
	if !v.IsKnown() || v.IsNull() || v.Type() != cty.Number {
		return def
	}
	f, _ := v.AsBigFloat().Float64()
	if f < 1 {
		return def
	}
	return int(f)
}

// genericModel is a single data pass for operators without an entry.
func genericModel(in int64, _ cty.Value) (float64, int, int64) {
	return float64(in) / PassBytesPerSecond, 1, in
}

// estimate fills sp.Estimate: the savings of a cached stage from its record; for
// a stage to run, its prior record of the same operator scaled by the ratio of
// input bytes when there is one (history; ratio 1 when the record predates
// InputBytes), the operator's model otherwise (defaults). Upstream stages must
// have been estimated first: their output bytes are this stage's input.
func (m *costModel) estimate(sp *StagePlan, cfg cty.Value, sourceBytes int64, p *Plan) {
	in := sourceBytes
	for _, d := range sp.Deps {
		if up := p.by[d]; up != nil && up.Estimate != nil {
			in += up.Estimate.OutputBytes
		}
	}
	m.planSolver(sp, cfg, p)
	cfg = m.size(sp, cfg, in, p)
	sp.estimateCfg = cfg
	in, cfg = stageArgs(sp, p, in, cfg)
	model := opModels[sp.Operator]
	if model == nil {
		model = genericModel
	}
	if m.limits.Backend == "local" && (sp.Operator == "train" || sp.Operator == "grid_search") {
		inner := model // training workers call in-process shards
		model = func(in int64, cfg cty.Value) (float64, int, int64) {
			fs, par, out := inner(in, cfg)
			return fs * ExamplesPerSecondPerWorker / LocalExamplesPerSecondPerWorker, par, out
		}
	}
	base := m.boundParallel(sp.Operator, model)
	model = m.boundParallel(sp.Operator, m.scaleMinibatch(sp.Operator, model))
	fs, par, out := model(in, cfg)
	if par < 1 {
		par = 1
	}
	e := &Estimate{Basis: BasisDefaults, InputBytes: in, OutputBytes: out, Tasks: par}
	// history scales record r by the model's ratio of work; when r's measured
	// latencies say what a minibatch change costs (iterationFactor), they
	// replace the default model's minibatch factor rather than compound it.
	history := func(r *state.StageRecord) {
		hm, hfs, hpar := model, fs, par
		k := m.iterationFactor(sp, r, cfg)
		if k != 1 {
			hm = base
			if hfs, hpar, _ = base(in, cfg); hpar < 1 {
				hpar = 1
			}
		}
		m.fromHistory(e, r, hm, in, cfg, hfs, hpar)
		m.scaleBy(e, k)
	}
	switch prior := sp.Prior; {
	case sp.Action == Cached && prior != nil:
		e.Basis = BasisReused
		m.fromRecord(e, prior, 1, 1)
	case prior != nil && prior.Operator == sp.Operator && measured(prior) && m.sameBackend(prior):
		// A record with measurements (one without, such as a record written
		// before stages were timed, falls back to the defaults).
		e.Basis = BasisHistory
		history(prior)
	case sp.Action != Cached && m.sameOp(sp.Operator) != nil:
		e.Basis = BasisHistory
		history(m.sameOp(sp.Operator))
	case sp.Action != Cached && m.machineRecord(sp, cfg, p, in) != nil:
		// No record of the operator in this pipeline: this machine's runs of
		// it (calibration_machine.go).
		e.Basis = BasisMachine
		history(m.machineRecord(sp, cfg, p, in))
	default:
		over := m.taskOverhead().Seconds()
		e.FunctionSeconds = fs + float64(par)*over
		e.Wall = time.Duration((fs/float64(par) + over) * float64(time.Second))
		e.GBSeconds = e.FunctionSeconds * float64(m.memoryMB) / 1024
		e.CostUSD = m.pricing.Duration(e.GBSeconds) + m.pricing.Requests(par)
	}
	if e.Basis != BasisReused && m.pricing.HostPerHour > 0 && m.limits.Shards > 0 && sp.Node != nil && sp.Node.Stage != nil && sp.Node.Stage.Schema.UsesPSStore {
		e.PSStoreUSD = m.pricing.Hosts(m.limits.Shards, e.Wall)
		e.CostUSD += e.PSStoreUSD
	}
	sp.Estimate = e
	m.elastic(sp, p, model, in, cfg)
}

// stageArgs handles an argument that takes a whole upstream stage to run again
// (grid_search's train = train.base, an attribute with Schema Stage set): the
// plan knows only that stage's output, unknown until apply, so the argument is
// replaced by the stage's evaluated configuration, and the input is what that
// stage reads rather than its output (the model it hands on).
func stageArgs(sp *StagePlan, p *Plan, in int64, cfg cty.Value) (int64, cty.Value) {
	if sp.Node == nil || sp.Node.Stage == nil || !cfg.IsKnown() || cfg.IsNull() || !cfg.Type().IsObjectType() {
		return in, cfg
	}
	attrs := cfg.AsValueMap()
	changed := false
	for _, a := range sp.Node.Stage.Schema.Attrs {
		if a.Stage == "" {
			continue
		}
		var up *StagePlan
		for _, d := range sp.Deps {
			if u := p.by[d]; u != nil && u.Operator == a.Stage && u.Estimate != nil {
				if up != nil {
					up = nil // two candidates: not knowable here
					break
				}
				up = u
			}
		}
		if up == nil || up.estimateCfg == cty.NilVal {
			continue
		}
		attrs[a.Name] = up.estimateCfg
		in += up.Estimate.InputBytes - up.Estimate.OutputBytes
		changed = true
	}
	if !changed {
		return in, cfg
	}
	return in, cty.ObjectVal(attrs)
}

// measured reports whether r holds a run's measurements.
func measured(r *state.StageRecord) bool {
	return r.GBSeconds > 0 || r.Finished.After(r.Started)
}

// fromHistory sets e from the record r of an earlier run, scaled by what the
// operator's model says changed since: the ratio of its work now (in bytes,
// cfg: fs function-seconds over par functions) to its work then (r.InputBytes —
// this stage's in when the record predates it — and r's numeric parameters).
// The model is linear in input bytes, so with unchanged parameters this is the
// ratio of input sizes; epochs or workers changed scale it as they scale the
// defaults.
func (m *costModel) fromHistory(e *Estimate, r *state.StageRecord, model opModel, in int64, cfg cty.Value, fs float64, par int) {
	priorIn := r.InputBytes
	if priorIn <= 0 {
		priorIn = in
	}
	pfs, ppar, _ := model(priorIn, withParams(cfg, r.Params))
	work, wall := 1.0, 1.0
	if pfs > 0 && fs > 0 {
		work = fs / pfs
		wall = (fs / float64(max(par, 1))) / (pfs / float64(max(ppar, 1)))
	}
	m.fromRecord(e, r, work, wall)
	if par != ppar {
		e.Tasks = par // the parallelism changed: the model's count, not the record's
	}
	e.CostUSD = m.pricing.Duration(e.GBSeconds) + m.pricing.Requests(e.Tasks)
}

// withParams is cfg with its top-level numeric attributes set to the values
// recorded in params (by their display form), so the model can be run on a
// recorded configuration. An attribute unknown at plan time (set from an
// upstream stage's output) stays unknown: the plan cannot tell it changed, so
// the model sees the same (default) value then and now, and the record's
// figures stand unscaled by it.
func withParams(cfg cty.Value, params map[string]state.Param) cty.Value {
	if !cfg.IsKnown() || cfg.IsNull() || !cfg.Type().IsObjectType() {
		return cfg
	}
	attrs := cfg.AsValueMap()
	for name, v := range attrs {
		p, ok := params[name]
		if !ok || !v.IsKnown() || v.Type() != cty.Number {
			continue
		}
		if f, err := strconv.ParseFloat(p.Display, 64); err == nil {
			attrs[name] = cty.NumberFloatVal(f)
		}
	}
	return cty.ObjectVal(attrs)
}

// sameOp is the most recently finished measured record of operator op in the
// state, on the plan's backend, or nil: the history of a stage that never ran at its own address. Only
// records that know their input bytes qualify (the ratio needs both sizes).
func (m *costModel) sameOp(op string) *state.StageRecord {
	if m.byOp == nil {
		m.byOp = map[string]*state.StageRecord{}
		for _, r := range m.records() {
			if !measured(r) || r.InputBytes <= 0 || !m.sameBackend(r) {
				continue
			}
			if b := m.byOp[r.Operator]; b == nil || r.Finished.After(b.Finished) {
				m.byOp[r.Operator] = r
			}
		}
	}
	return m.byOp[op]
}

// fromRecord sets e from a stage record's measured figures: GB-seconds scaled
// by work, wall time by wall.
func (m *costModel) fromRecord(e *Estimate, r *state.StageRecord, work, wall float64) {
	if math.IsNaN(work) || math.IsInf(work, 0) || work < 0 {
		work = 1
	}
	if math.IsNaN(wall) || math.IsInf(wall, 0) || wall < 0 {
		wall = 1
	}
	e.Wall = time.Duration(float64(r.Finished.Sub(r.Started)) * wall)
	e.FunctionSeconds, e.GBSeconds = m.recordSeconds(r, work)
	e.Tasks = r.Tasks
	if e.Basis == BasisReused {
		e.GBSeconds = r.GBSeconds // what reuse saved is what the run used
	}
	if e.Basis == BasisReused && r.CostUSD > 0 {
		e.CostUSD = r.CostUSD
		return
	}
	e.CostUSD = m.pricing.Duration(e.GBSeconds) + m.pricing.Requests(e.Tasks)
}

// localSourceBytes is the size of the files a local source names, 0 when they
// cannot be listed (digesting reports that).
func localSourceBytes(dir, src string) int64 {
	files, err := ResolveLocal(dir, src)
	if err != nil {
		return 0
	}
	var n int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			n += st.Size()
		}
	}
	return n
}
