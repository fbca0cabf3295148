package planner

import (
	"time"

	"github.com/zclconf/go-cty/cty"
)

// Corrections of the defaults model for what a stage runs beside its workers
// and for what the backend runs at once, found by make bench-estimate
// (cmd/stratus/estimate_bench_test.go) on the local backend and the serverless
// stack. Estimates from history need neither: a record's GB-seconds and wall
// time already hold them.

// boundParallel bounds the functions a model spreads a stage's work over by
// what the backend runs at once. A grid search's trial holds its workers and an
// evaluator, so no more trials run at once than Functions/(workers+1): five
// Lambda emulators run one trial of two workers and its evaluator, not the
// three max_parallel asks for (the a9a-tune grid took 57 s for an estimate of
// 5.3 s). Any other stage runs at most Functions functions at once (a load
// of 2M rows in 11 parts on 5 emulators runs in waves), a train stage one
// fewer, for its evaluator. On the local backend, whose functions share the
// machine, CPU-bound work goes no faster than its cores, and each function's
// measured time (its goroutine's) stretches by functions over cores: 2M rows'
// load and normalize were estimated at 1.2 s over 11 functions and took
// 3.8–6.1 s on 2 cores, 8 at a time. So do Lambda emulators on this machine
// (HostCores).
func (m *costModel) boundParallel(op string, model opModel) opModel {
	return func(in int64, cfg cty.Value) (float64, int, int64) {
		fs, par, out := model(in, cfg)
		f := m.limits.Functions
		switch op {
		case "grid_search":
			base := cty.NilVal
			if cfg.Type().IsObjectType() && cfg.Type().HasAttribute("train") {
				base = cfg.GetAttr("train")
			}
			workers := intAttr(base, "workers", 4)
			trials := max(1, par/max(workers, 1))
			if f > 0 {
				trials = min(trials, max(1, f/(workers+1)))
			}
			par = trials * workers
		case "train":
			if f > 1 {
				par = min(par, f-1)
			}
		default:
			if f > 0 {
				par = min(par, f)
			}
		}
		par = max(par, 1)
		// More functions than cores time-share them: the work takes
		// work/cores, and each function's billed time stretches by
		// functions/cores.
		if c := m.cores(); c > 0 && par > c {
			fs *= float64(par) / float64(c)
		}
		return fs, par, out
	}
}

// UploadBytesPerSecond is how fast a load on a remote backend copies local
// source files into the run's bucket before its functions read them (the
// coordinator hashes each file, then puts it): make bench-estimate measured
// 105 MiB in under 1 s and 702 MiB in about 4 s to MinIO on loopback, 175 MB/s;
// rounded down. A link to S3 is usually slower; the stage's history then says
// so.
const UploadBytesPerSecond = 150e6

// correctDefaults applies the corrections below to a defaults estimate (one
// from history already holds them). It runs after estimate, before
// sizeBackend re-prices the GB-seconds at the chosen memory.
func (m *costModel) correctDefaults(sp *StagePlan, p *Plan) {
	if sp.Estimate == nil || sp.Estimate.Basis != BasisDefaults {
		return
	}
	m.addEvaluators(sp, p)
	m.addUpload(sp)
}

// addUpload adds to a load's wall time on a remote backend the upload of its
// local sources, which the coordinator does before the parse wave (no
// function runs meanwhile): 2M generated rows' load took 10.6 s on the
// serverless stack, 4 s of it uploading.
func (m *costModel) addUpload(sp *StagePlan) {
	if m.limits.Backend == "local" || m.limits.Backend == "" || sp.Operator != "load" || sp.localBytes <= 0 {
		return
	}
	sp.Estimate.Wall += time.Duration(float64(sp.localBytes) / UploadBytesPerSecond * float64(time.Second))
}

// IterationLatency and ExampleCompute split a training worker's iteration on
// a backend that reaches its shards over gRPC into a fixed round trip (pull
// and push) and a cost per example, so its rate follows the minibatch: the
// a9a-tune grid on the serverless stack ran 2 workers at 105k examples/s with
// minibatch 20 and 418k with minibatch 100, 379 and 463 µs per iteration
// (pull 334–360 µs of them). They keep ExamplesPerSecondPerWorker at
// minibatch 100: 300 µs + 100 × 0.33 µs.
const (
	IterationLatency = 300 * time.Microsecond
	ExampleCompute   = 333 * time.Nanosecond
)

// minibatchFactor is how much longer training with minibatch mb takes than
// at the default 100 on a gRPC backend: the iteration time per example.
func minibatchFactor(mb int) float64 {
	per := func(mb float64) float64 { return (IterationLatency.Seconds() + mb*ExampleCompute.Seconds()) / mb }
	return per(float64(mb)) / per(100)
}

// scaleMinibatch applies minibatchFactor to a train or grid_search model on a
// backend whose workers reach their shards over gRPC (not the local
// backend's in-process shards, whose round trip is negligible): train's
// minibatch, or the mean factor of a grid's minibatch values over its trials.
func (m *costModel) scaleMinibatch(op string, model opModel) opModel {
	if m.limits.Backend == "local" || (op != "train" && op != "grid_search") {
		return model
	}
	return func(in int64, cfg cty.Value) (float64, int, int64) {
		fs, par, out := model(in, cfg)
		f := 1.0
		switch op {
		case "train":
			f = minibatchFactor(intAttr(cfg, "minibatch", 100))
		case "grid_search":
			base := cty.NilVal
			if cfg.Type().IsObjectType() && cfg.Type().HasAttribute("train") {
				base = cfg.GetAttr("train")
			}
			f = minibatchFactor(intAttr(base, "minibatch", 100))
			if mbs := gridValues(cfg, "minibatch"); len(mbs) > 0 {
				f = 0
				for _, mb := range mbs {
					f += minibatchFactor(mb)
				}
				f /= float64(len(mbs))
			}
		}
		return fs * f, par, out
	}
}

// gridValues is a grid_search configuration's whole-number values of a
// parameter in its grid, or nil.
func gridValues(cfg cty.Value, name string) []int {
	if !cfg.IsKnown() || cfg.IsNull() || !cfg.Type().IsObjectType() || !cfg.Type().HasAttribute("grid") {
		return nil
	}
	g := cfg.GetAttr("grid")
	if !g.IsWhollyKnown() || g.IsNull() || !g.Type().IsObjectType() || !g.Type().HasAttribute(name) {
		return nil
	}
	v := g.GetAttr(name)
	if !v.CanIterateElements() {
		return nil
	}
	var out []int
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.Type() != cty.Number {
			return nil
		}
		f, _ := e.AsBigFloat().Float64()
		if f >= 1 {
			out = append(out, int(f))
		}
	}
	return out
}

// cores is what bounds the plan's CPU-bound work: the local backend's cores,
// or the cores Lambda emulators on this machine share; 0 on Lambda.
func (m *costModel) cores() int {
	if m.limits.Cores > 0 {
		return m.limits.Cores
	}
	return m.limits.HostCores
}

// addEvaluators adds to a defaults estimate of a training stage the function
// that evaluates the model beside the workers for as long as they train (one
// per trial of a grid search): the defaults counted the workers alone, so a
// stage of one worker was estimated at half its GB-seconds (10k generated
// rows on the serverless stack: 4.7 GB-s estimated, 7.2 measured; on the local
// backend 1.1 and 5.9).
func (m *costModel) addEvaluators(sp *StagePlan, p *Plan) {
	e := sp.Estimate
	var fs float64
	evaluators := 1
	switch sp.Operator {
	case "train":
		fs = e.Wall.Seconds()
	case "grid_search":
		workers := 4
		if up := p.trainBase(sp); up != nil {
			workers = intAttr(up.estimateCfg, "workers", 4)
		}
		// Each trial's evaluator runs as long as one of its workers.
		evaluators = gridTrials(sp.estimateCfg)
		fs = e.FunctionSeconds / float64(max(workers, 1))
	default:
		return
	}
	// Add to the figures rather than recompute them, so that any other part
	// of the cost (such as psstore hosts) stays.
	gbs := fs * float64(m.memoryMB) / 1024
	e.FunctionSeconds += fs
	e.Tasks += evaluators
	e.GBSeconds += gbs
	e.CostUSD += m.pricing.Duration(gbs) + m.pricing.Requests(evaluators)
}
