package planner

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/operators/train"
)

// Elastic training at plan time. A train stage whose workers the planner
// chose ("auto") and that trains with SGD changes its worker count as it
// trains (operators/train/scale.go): from the planned count it doubles while
// the held-out loss falls at least 2 % per epoch per dollar and halves under
// 0.5 %, reverting a scale-out that did not speed it up, at most to the
// backend's real parallelism (train.ElasticMax, which the coordinator obeys
// too: the functions at once beside the evaluator, on the local backend one
// worker per core but one, on Lambda 8 per psstore member), and to what the
// budget left buys. Where it goes depends on the loss curve, which
// plan cannot know, so plan does not guess it: the estimate stays that of the
// planned count — the pipeline's or the machine's history, once there is one,
// holds what the rule did — and the plan states the range the rule may use
// and, as its bound, the time and cost of running the most workers it may
// grow to throughout (a "workers_max" entry of the stage's sizing).

// elasticBound is what the plan keeps of an elastic stage until its memory
// is final: the sizing entry to complete, and the model's ratios of
// function-seconds and wall time at the most workers to the planned count.
type elasticBound struct {
	choice     int // index in Sizing
	start, max int
	// fs[i] and wall[i] are the ratios at start+i workers.
	fs, wall   []float64
	why, maybe string
}

// elastic adds sp's elastic range to its sizing when the coordinator may
// change its workers: a train stage (not matrix factorization) whose workers
// the planner chose, with more than one epoch, on a backend with room for two
// workers (train.ElasticMax). model is the stage's estimate model, in and cfg
// its input and sized configuration.
func (m *costModel) elastic(sp *StagePlan, p *Plan, model opModel, in int64, cfg cty.Value) {
	start := sp.Chosen("workers")
	// The bound the coordinator applies, from what it will know: the
	// functions at once, the cores they share (the local backend's; sizing for
	// Lambda ignores emulators' HostCores, and so does the coordinator), the
	// psstore members.
	most, why := train.ElasticMax(train.ElasticLimits{Functions: m.limits.Functions, Cores: m.limits.Cores, Members: m.limits.Shards})
	if sp.Operator != "train" || sp.Action == Cached || start == 0 || intAttr(cfg, "epochs", 0) == 1 || most <= 1 {
		return
	}
	if strings.Contains(paramDisplay(sp, "model"), "matrix_factorization") {
		return
	}
	// Only SGD runs elastic: the solver plan named (planSolver, before this),
	// or, when the data decide, one of those it may be.
	maybe := ""
	switch solver, options := sp.PlannedSolver(); {
	case solver == "sgd":
	case solver != "", len(options) > 0 && !slices.Contains(options, "sgd"):
		return
	default:
		maybe = "if solver \"auto\" chooses SGD (the data decide): "
	}
	fs0, par0, _ := model(in, cfg)
	b := &elasticBound{choice: len(sp.Sizing), start: start, max: max(most, start), why: why, maybe: maybe}
	for w := start; w <= b.max; w++ {
		fs, par, _ := model(in, withWorkers(cfg, w))
		k, kw := 1.0, 1.0
		if fs0 > 0 && fs > 0 {
			k, kw = fs/fs0, (fs/float64(max(par, 1)))/(fs0/float64(max(par0, 1)))
		}
		b.fs, b.wall = append(b.fs, k), append(b.wall, kw)
	}
	sp.Sizing = append(sp.Sizing, Choice{Param: "workers_max", Value: b.max, Auto: true})
	sp.elastic = b
}

// elasticReasons completes the elastic stages' sizing entries with the bound
// at the plan's final memory (after sizeBackend).
func (m *costModel) elasticReasons(p *Plan) {
	for _, sp := range p.Stages {
		b, e := sp.elastic, sp.Estimate
		if b == nil || e == nil || b.choice >= len(sp.Sizing) {
			continue
		}
		if sp.Budget > 0 {
			// The rule stops growing where the budget left would not pay for
			// the workers: at most what the budget pays for throughout.
			for b.max > b.start && e.CostUSD*b.fs[b.max-b.start] > sp.Budget {
				b.max--
				b.why = fmt.Sprintf("what budget %s pays for", FormatUSD(sp.Budget))
			}
			sp.Sizing[b.choice].Value = b.max
		}
		k, kw := b.fs[b.max-b.start], b.wall[b.max-b.start]
		var r string
		switch {
		case b.max > b.start:
			r = fmt.Sprintf("%sthe workers change as it trains, from %d, doubling while the held-out loss falls ≥2%%/epoch per dollar, halving under 0.5%%, undoing a doubling that does not reach 1.5× the examples/s; at most %d (%s)", b.maybe, b.start, b.max, b.why)
		default:
			r = fmt.Sprintf("%sthe workers change as it trains: it starts at the most it may run, %d (%s), and halves them while the held-out loss falls under 0.5%%/epoch per dollar", b.maybe, b.max, b.why)
		}
		if sp.Deadline > 0 {
			r += "; short of the deadline it grows at any gain over 0.5% and does not shrink"
		}
		gbs := e.GBSeconds * k
		r += fmt.Sprintf(". The estimate is at %d worker(s); at %d throughout ≈%s, %s GB-s, %s", b.start, b.max,
			FormatWall(time.Duration(float64(e.Wall)*kw)), fmtGBsPlan(gbs), FormatUSD(m.pricing.Duration(gbs)+m.pricing.Requests(b.max+1)+e.PSStoreUSD*kw))
		sp.Sizing[b.choice].Reason = r
	}
}

// paramDisplay is the display form of sp's argument name, or "".
func paramDisplay(sp *StagePlan, name string) string {
	if p, ok := sp.Params[name]; ok {
		return p.Display
	}
	return ""
}

// withWorkers is cfg with workers set to w.
func withWorkers(cfg cty.Value, w int) cty.Value {
	if !cfg.IsKnown() || cfg.IsNull() || !cfg.Type().IsObjectType() {
		return cfg
	}
	attrs := cfg.AsValueMap()
	attrs["workers"] = cty.NumberIntVal(int64(w))
	return cty.ObjectVal(attrs)
}

// fmtGBsPlan shows GB-seconds as plan does: one decimal, two significant
// figures below 0.1.
func fmtGBsPlan(g float64) string {
	if g > 0 && g < 0.1 {
		return fmt.Sprintf("%.2g", g)
	}
	return fmt.Sprintf("%.1f", g)
}
