package planner

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/stratus-ml/stratus/state"
)

// Budgets and deadlines at plan time. A stage with a budget or a deadline
// (dsl.Limits) is sized to keep to it (sizing.go); then:
//
//   - a stage that can stop early with a useful result — train, which keeps its
//     best model so far, and grid_search, which reports its best finished trial —
//     is refused only when even its smallest useful run (one epoch; one trial of
//     one epoch) is estimated over the limit at the cheapest sizing (for a
//     budget) or the fastest (for a deadline). When its full estimate is over,
//     the plan says apply will stop it at the limit (LimitNote).
//   - any other stage is refused when its estimate is over the limit.
//
// A refusal is an error diagnostic on the limit that names the sizing that
// would come closest and the figure the limit would have to be.

// earlyStoppers are the operators apply can stop at a limit with a result.
var earlyStoppers = map[string]bool{"train": true, "grid_search": true}

// CanStopEarly reports whether apply can stop a stage of operator op at its
// budget or deadline and keep a result.
func CanStopEarly(op string) bool { return earlyStoppers[op] }

// checkLimits refuses the stages that cannot keep to their limits and notes the
// ones apply will stop.
func (m *costModel) checkLimits(p *Plan) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, sp := range p.Stages {
		e := sp.Estimate
		if sp.Action == Cached || e == nil || (sp.Budget <= 0 && sp.Deadline <= 0) {
			continue
		}
		minCost, minHow := e.CostUSD, ""
		fastWall, fastHow := e.Wall, ""
		if CanStopEarly(sp.Operator) {
			var minWall time.Duration
			minCost, minWall, minHow = m.smallestRun(sp, p, 1)
			fastWall, fastHow = minWall, minHow
			if w := m.fastestWorkers(sp, p); w > 1 {
				_, fastWall, fastHow = m.smallestRun(sp, p, w)
			}
		}
		subject := func(r hcl.Range) *hcl.Range {
			if r.Filename == "" {
				return sp.Node.DeclRange.Ptr()
			}
			return r.Ptr()
		}
		if sp.Budget > 0 && minCost > sp.Budget {
			what := fmt.Sprintf("it is estimated at %s", FormatUSD(minCost))
			if CanStopEarly(sp.Operator) {
				what = fmt.Sprintf("even %s is estimated at %s with the cheapest sizing (%s)", smallestWhat(sp.Operator), FormatUSD(minCost), minHow)
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Budget cannot be met",
				Detail:  fmt.Sprintf("%s has budget %s, but %s. Raise the budget to at least %s, or remove it.", sp.Address, FormatUSD(sp.Budget), what, FormatUSD(ceilUSD(minCost))),
				Subject: subject(sp.limits.BudgetRange)})
			continue
		}
		if sp.Deadline > 0 && fastWall > sp.Deadline {
			what := fmt.Sprintf("it is estimated to take %s", roundUp(fastWall))
			if CanStopEarly(sp.Operator) {
				what = fmt.Sprintf("even %s is estimated to take %s with the fastest sizing (%s)", smallestWhat(sp.Operator), roundUp(fastWall), fastHow)
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Deadline cannot be met",
				Detail:  fmt.Sprintf("%s has deadline %s, but %s. Raise the deadline to at least %s, or remove it.", sp.Address, sp.Deadline, what, roundUp(fastWall)),
				Subject: subject(sp.limits.DeadlineRange)})
			continue
		}
		switch {
		case sp.Budget > 0 && e.CostUSD > sp.Budget:
			sp.LimitNote = fmt.Sprintf("the estimate (%s) is over budget %s: apply stops the stage before it exceeds it and keeps its best result", FormatUSD(e.CostUSD), FormatUSD(sp.Budget))
		case sp.Deadline > 0 && e.Wall > sp.Deadline:
			sp.LimitNote = fmt.Sprintf("the estimate (%s) is over deadline %s: apply stops the stage before it exceeds it and keeps its best result", FormatWall(e.Wall), sp.Deadline)
		case sp.Budget > 0 && sp.Deadline > 0:
			sp.LimitNote = fmt.Sprintf("within budget %s and deadline %s", FormatUSD(sp.Budget), sp.Deadline)
		case sp.Budget > 0:
			sp.LimitNote = fmt.Sprintf("within budget %s", FormatUSD(sp.Budget))
		default:
			sp.LimitNote = fmt.Sprintf("within deadline %s", sp.Deadline)
		}
	}
	return diags
}

// raisedLimit says why a cached stage runs again: its record was cut short by
// its budget (or deadline), and that limit is now higher or gone. A stage cut
// short under the same limit stays cached: running it again would stop at the
// same place.
func raisedLimit(sp *StagePlan, r *state.StageRecord) string {
	if r == nil || r.Stopped == "" {
		return ""
	}
	switch {
	case strings.HasPrefix(r.Stopped, "stopped by budget") && (sp.Budget == 0 || sp.Budget > r.Budget):
		now := "it has no budget now"
		if sp.Budget > 0 {
			now = "its budget is now " + FormatUSD(sp.Budget)
		}
		return fmt.Sprintf("its last run was %s, and %s", r.Stopped, now)
	case strings.HasPrefix(r.Stopped, "stopped by deadline") && (sp.Deadline == 0 || sp.Deadline > r.Deadline):
		now := "it has no deadline now"
		if sp.Deadline > 0 {
			now = "its deadline is now " + sp.Deadline.String()
		}
		return fmt.Sprintf("its last run was %s, and %s", r.Stopped, now)
	}
	return ""
}

func smallestWhat(op string) string {
	if op == "grid_search" {
		return "one trial of one epoch"
	}
	return "one epoch"
}

// roundUp rounds a duration up to a whole millisecond (a whole second above a
// minute), for a suggested deadline.
func roundUp(d time.Duration) time.Duration {
	unit := time.Millisecond
	if d >= time.Minute {
		unit = time.Second
	}
	return (d + unit - 1) / unit * unit
}

// ceilUSD rounds a suggested budget up to the two significant figures
// FormatUSD shows, so that the suggestion itself fits.
func ceilUSD(v float64) float64 {
	if v <= 0 {
		return v
	}
	scale := math.Pow(10, math.Floor(math.Log10(v))-1)
	return math.Ceil(v/scale) * scale
}

// smallestRun estimates the smallest useful run of a train or grid_search
// stage on workers workers: one epoch of (one trial's) training.
func (m *costModel) smallestRun(sp *StagePlan, p *Plan, workers int) (float64, time.Duration, string) {
	in := sp.Estimate.InputBytes
	_, cfg := stageArgs(sp, p, 0, sp.estimateCfg)
	base := cfg
	if sp.Operator == "grid_search" && cfg.Type().IsObjectType() && cfg.Type().HasAttribute("train") {
		base = cfg.GetAttr("train")
	}
	epochs := 1
	if e := intAttr(base, "epochs", 0); e > 0 && e < epochs {
		epochs = e
	}
	fs, wall := trainCost(trainShape{bytes: in, epochs: epochs, rate: m.trainRate()}, workers)
	gbs := fs * float64(m.memoryMB) / 1024
	return m.pricing.Duration(gbs) + m.pricing.Requests(workers+1), wall, fmt.Sprintf("workers %d", workers)
}

// fastestWorkers is the most workers sizing would give the stage (or its base
// train stage) without a budget or deadline.
func (m *costModel) fastestWorkers(sp *StagePlan, p *Plan) int {
	s := sp
	if sp.Operator == "grid_search" {
		s = p.trainBase(sp)
	}
	if s == nil || s.Estimate == nil {
		return 1
	}
	if n := intAttr(s.estimateCfg, "workers", 0); n > 0 && s.Chosen("workers") == 0 {
		return n // the pipeline's own value
	}
	c, _ := sizeWorkers(trainShape{bytes: s.Estimate.InputBytes, epochs: 1}, m.limits, Objective{}, func(float64, int) float64 { return 0 })
	return c.Value
}
