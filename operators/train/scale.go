package train

import (
	"fmt"
	"math"
	"strconv"
)

// Elastic training: while an SGD run with workers = "auto" trains, the
// coordinator asks Scale after each evaluation how many workers it should run,
// and changes the count between worker segments (coordinator_elastic.go).
//
// The rule is MLLess's scale-in rule (Sarroca & Sánchez-Artigas: remove
// workers when the marginal loss improvement per unit of cost falls below a
// threshold) with its mirror for scale-out, as Siren and SMLT adjust the
// function count as training goes:
//
//   - gain is the held-out loss's relative improvement per epoch over the
//     evaluations of the current worker count (best loss so far at the first
//     and the last of them; the first evaluation after a change, which spans
//     the hand-over, is skipped), normalized by cost: multiplied by the cost of
//     an epoch at the run's first worker count over its cost now. An epoch
//     costs workers × price × its time, so with linear speed-up more workers
//     leave the gain as it is, and workers that add cost without speed lower it.
//   - gain ≥ scaleOutGain (2 %/epoch): the loss still falls fast enough per
//     dollar; double the workers, within the cap.
//   - gain < scaleInGain (0.5 %/epoch): the tail of training, where more
//     workers buy little; halve them (at least one).
//   - the cap is the backend's concurrency (beside the evaluator), what the
//     budget left buys for as long again as the run has taken so far, and one
//     below any count the run already scaled in from (so it does not
//     oscillate).
//   - with less deadline left than the run has taken so far, the rule does not
//     scale in, and scales out at any gain above scaleInGain.
//
// Scale is a pure function of its input so that the rule is tested by tables.

// Thresholds of the scaling rule, as relative loss improvement per epoch at
// the run's first epoch cost, and the evaluations it needs at a worker count
// before it judges it.
const (
	scaleOutGain   = 0.02
	scaleInGain    = 0.005
	scaleMinPoints = 3
)

// ScalePoint is one evaluation as the scaling rule sees it.
type ScalePoint struct {
	Seconds  float64 // since training started
	Loss     float64 // held-out loss
	Examples float64 // training examples processed by then, by all workers
	// Workers is the worker count whose segment the point belongs to.
	Workers int
	// Segment numbers the run's worker segments (0, 1, …): points of one
	// segment share it.
	Segment int
}

// ScaleInput is what the rule decides from.
type ScaleInput struct {
	History []ScalePoint // every evaluation so far, oldest first
	Rows    int          // training examples in one epoch
	Workers int          // running now (the last segment's)
	Max     int          // the most workers the backend runs beside the evaluator
	// WorkerCost is one worker's cost in dollars per second.
	WorkerCost float64
	// BudgetLeft is dollars and DeadlineLeft seconds the stage has left (+Inf:
	// no limit); Elapsed is seconds since training started.
	BudgetLeft, DeadlineLeft, Elapsed float64
}

// ScaleDecision is the rule's answer.
type ScaleDecision struct {
	Workers int    // the count to run: Workers of the input when it holds
	Reason  string // why it changes; "" when it holds
	// Gain is the normalized improvement per epoch the rule measured, and
	// EpochCost the dollars an epoch costs now (NaN when not measured yet).
	Gain, EpochCost float64
}

// Scale decides the worker count from in.
func Scale(in ScaleInput) ScaleDecision {
	d := ScaleDecision{Workers: in.Workers, Gain: math.NaN(), EpochCost: math.NaN()}
	n := in.Workers
	if n < 1 || in.Rows <= 0 {
		return d
	}
	// The cap.
	limit, why := max(1, in.Max), fmt.Sprintf("the backend runs %d worker(s) beside the evaluator", max(1, in.Max))
	horizon := max(in.Elapsed, 1e-3)
	if in.WorkerCost > 0 && !math.IsInf(in.BudgetLeft, 1) {
		if b := int(math.Floor(in.BudgetLeft / (in.WorkerCost * horizon))); b < limit {
			limit = max(1, b)
			why = fmt.Sprintf("the %s of budget left buys %d worker(s) for %s, as long as the run has taken so far",
				usd(max(0, in.BudgetLeft)), b, secs(horizon))
		}
	}
	segs := segments(in.History)
	for i := 1; i < len(segs); i++ {
		if a, b := segs[i-1].workers, segs[i].workers; b < a && a-1 < limit {
			limit, why = a-1, fmt.Sprintf("the run scaled in from %d", a)
		}
	}
	if n > limit {
		d.Workers = limit
		d.Reason = why
		return d
	}
	// The gain of the current segment.
	if len(segs) == 0 || segs[len(segs)-1].workers != n {
		return d
	}
	cur := segs[len(segs)-1]
	rho, cost, ok := measure(in.History, cur, in.Rows, in.WorkerCost)
	if !ok {
		return d
	}
	gain := rho
	if ref := firstCost(in.History, segs, in.Rows, in.WorkerCost); ref > 0 && cost > 0 {
		gain = rho * ref / cost
	}
	d.Gain, d.EpochCost = gain, cost
	short := !math.IsInf(in.DeadlineLeft, 1) && in.DeadlineLeft < horizon
	at := ""
	if in.WorkerCost > 0 {
		at = " at " + usd(in.WorkerCost*60) + "/worker-min"
	}
	switch {
	case n < limit && (gain >= scaleOutGain || short && gain >= scaleInGain):
		d.Workers = min(2*n, limit)
		d.Reason = fmt.Sprintf("loss −%s/epoch%s", pct(gain), at)
		if short && gain < scaleOutGain {
			d.Reason = fmt.Sprintf("%s left of the deadline, less than the %s the run has taken; loss −%s/epoch", secs(in.DeadlineLeft), secs(horizon), pct(gain))
		}
	case n > 1 && gain < scaleInGain && !short:
		d.Workers = max(1, n/2)
		d.Reason = fmt.Sprintf("loss only −%s/epoch%s, under %s: more workers buy too little", pct(max(gain, 0)), at, pct(scaleInGain))
	}
	return d
}

// segment is a run of evaluations at one worker count: History[lo:hi].
type segment struct {
	lo, hi, workers int
}

func segments(h []ScalePoint) []segment {
	var out []segment
	for i, p := range h {
		if len(out) == 0 || h[out[len(out)-1].lo].Segment != p.Segment {
			out = append(out, segment{lo: i, hi: i + 1, workers: p.Workers})
			continue
		}
		out[len(out)-1].hi = i + 1
	}
	return out
}

// measure returns a segment's relative loss improvement per epoch and the
// dollars an epoch costs at its workers, from its evaluations after the first,
// and whether it has enough of them.
func measure(h []ScalePoint, s segment, rows int, workerCost float64) (rho, cost float64, ok bool) {
	lo := s.lo + 1 // the first spans the hand-over
	if s.lo == 0 {
		lo = 0 // the run's first segment has no hand-over
	}
	if s.hi-lo < scaleMinPoints {
		return 0, 0, false
	}
	a, b := h[lo], h[s.hi-1]
	epochs := (b.Examples - a.Examples) / float64(rows)
	dt := b.Seconds - a.Seconds
	if epochs <= 0 || dt <= 0 {
		return 0, 0, false
	}
	la, lb := bestUpTo(h, lo), bestUpTo(h, s.hi-1)
	if math.IsInf(la, 0) || la <= 0 {
		return 0, 0, false
	}
	rho = 1 - math.Pow(lb/la, 1/epochs) // compounded per epoch
	cost = float64(s.workers) * workerCost * dt / epochs
	return rho, cost, true
}

// firstCost is the epoch cost of the run's first segment that was measured.
func firstCost(h []ScalePoint, segs []segment, rows int, workerCost float64) float64 {
	for _, s := range segs {
		if _, c, ok := measure(h, s, rows, workerCost); ok {
			return c
		}
	}
	return 0
}

// bestUpTo is the least finite loss of h[:i+1].
func bestUpTo(h []ScalePoint, i int) float64 {
	b := math.Inf(1)
	for _, p := range h[:i+1] {
		if !math.IsNaN(p.Loss) && !math.IsInf(p.Loss, 0) {
			b = math.Min(b, p.Loss)
		}
	}
	return b
}

func pct(x float64) string { return strconv.FormatFloat(100*x, 'f', 1, 64) + "%" }

func secs(s float64) string { return strconv.FormatFloat(s, 'f', 1, 64) + "s" }

// usd shows dollars with two significant figures below a cent (as plans do).
func usd(v float64) string {
	if v <= 0 {
		return "$0"
	}
	decimals := 2
	if v < 0.01 {
		decimals = int(-math.Floor(math.Log10(v))) + 1
	}
	return "$" + strconv.FormatFloat(v, 'f', decimals, 64)
}
