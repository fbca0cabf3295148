package gridsearch

import (
	"fmt"
	"math"
	"sort"

	"github.com/stratus-ml/stratus/operators"
)

// Early stopping. The rules see each trial as a curve of its objective over the
// seconds since its training started (the evaluator's clock), and say which running
// trials to stop. They are pure: the coordinator feeds them curves, and the tests
// feed them synthetic ones.

// point is one evaluation of a trial's objective.
type point struct {
	T float64 // seconds since the trial's training started
	V float64 // the objective (test_logloss, accuracy, auc, test_rmse, …)
}

// curve is a trial as the rules see it.
type curve struct {
	ID     string
	Points []point // in time order
	// Done means the trial is no longer running: its curve is complete, and it
	// counts as a reference for the median rule beyond its last point.
	Done bool
}

// objective says what trials are ranked by and which way is better.
type objective struct {
	Metric string
	Lower  bool // test_logloss, test_rmse, test_mae: lower is better; accuracy, auc, r2: higher
	// Model is the base stage's model, which says what its training curves
	// carry (see value).
	Model string
}

// newObjective is the objective of a metric, with its direction: the losses
// and errors are minimised, the scores maximised.
func newObjective(metric string) objective {
	switch metric {
	case "test_logloss", "test_rmse", "test_mae":
		return objective{Metric: metric, Lower: true}
	}
	return objective{Metric: metric}
}

// better reports whether a is strictly better than b. NaN is never better.
func (o objective) better(a, b float64) bool {
	if math.IsNaN(a) {
		return false
	}
	if math.IsNaN(b) {
		return true
	}
	if o.Lower {
		return a < b
	}
	return a > b
}

// worst is the value every finite value is better than.
func (o objective) worst() float64 {
	if o.Lower {
		return math.Inf(1)
	}
	return math.Inf(-1)
}

// bestUntil returns the best finite value among c's points at or before t, and
// whether there is one.
func (o objective) bestUntil(c curve, t float64) (float64, bool) {
	best, ok := o.worst(), false
	for _, p := range c.Points {
		if p.T > t {
			break
		}
		if finiteValue(p.V) && (!ok || o.better(p.V, best)) {
			best, ok = p.V, true
		}
	}
	return best, ok
}

func finiteValue(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// thresholdRule stops a trial whose test loss is NaN or infinite, or exceeds
// MaxLogloss (when set): a diverging trial. It looks at the test loss whatever the
// objective, and applies from the first evaluation (no grace: a NaN model will not
// recover).
type thresholdRule struct {
	MaxLogloss float64 // 0: only NaN and Inf
}

// check returns the reason to stop a trial whose latest test loss is logloss, or "".
func (r thresholdRule) check(logloss float64) string {
	if !finiteValue(logloss) || r.MaxLogloss > 0 && logloss > r.MaxLogloss {
		return operators.ReasonDiverged
	}
	return ""
}

// medianRule stops a running trial, once it has run Grace seconds, when its best
// objective so far is worse than the median of the other trials' best objectives
// at the same elapsed time. Only trials with a value by then count, and those still
// running only if they have reached that time; at least MinTrials others must count
// for the rule to act.
type medianRule struct {
	Obj       objective
	Grace     float64
	MinTrials int
}

// check returns the reason to stop c and a sentence explaining it, or "".
func (r medianRule) check(c curve, others []curve) (reason, detail string) {
	if len(c.Points) == 0 {
		return "", ""
	}
	t := c.Points[len(c.Points)-1].T
	if t < r.Grace {
		return "", ""
	}
	mine, ok := r.Obj.bestUntil(c, t)
	if !ok {
		return "", "" // only non-finite values: the threshold rule's business
	}
	var ref []float64
	for _, o := range others {
		if len(o.Points) == 0 || !o.Done && o.Points[len(o.Points)-1].T < t {
			continue
		}
		if v, ok := r.Obj.bestUntil(o, t); ok {
			ref = append(ref, v)
		}
	}
	if len(ref) < max(r.MinTrials, 1) {
		return "", ""
	}
	m := median(ref)
	if r.Obj.better(m, mine) {
		return reasonMedian, fmt.Sprintf("best %s %.4g after %.1fs is worse than the median %.4g of %d other trial(s) by then", r.Obj.Metric, mine, t, m, len(ref))
	}
	return "", ""
}

// reasonMedian is the reason of a trial the median rule stopped.
const reasonMedian = "median rule"

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ashaRule is asynchronous successive halving on time budgets: rung k is reached
// after Grace × Factor^k seconds of training. When a trial reaches a rung, its best
// objective so far is recorded there, and it goes on only if it is within the best
// 1/Factor of the values recorded at that rung so far (the (1 − 1/Factor) quantile,
// interpolated, as Ray Tune's ASHA scheduler does); otherwise it stops. The first
// trial at a rung always goes on: ASHA never waits for a rung to fill.
//
// An ashaRule is stateful (the rungs' records) and not safe for concurrent use.
type ashaRule struct {
	Obj    objective
	Grace  float64
	Factor float64

	rungs   [][]float64    // values recorded at each rung
	reached map[string]int // trial → rungs judged so far
}

func newASHA(obj objective, grace, factor float64) *ashaRule {
	return &ashaRule{Obj: obj, Grace: grace, Factor: factor, reached: map[string]int{}}
}

// milestone is the elapsed time of rung k.
func (r *ashaRule) milestone(k int) float64 { return r.Grace * math.Pow(r.Factor, float64(k)) }

// check records c at every rung it has reached since the last call and returns the
// reason to stop it and a sentence explaining it, or "".
func (r *ashaRule) check(c curve) (reason, detail string) {
	if len(c.Points) == 0 || r.Grace <= 0 || r.Factor <= 1 {
		return "", ""
	}
	t := c.Points[len(c.Points)-1].T
	for k := r.reached[c.ID]; r.milestone(k) <= t; k = r.reached[c.ID] {
		r.reached[c.ID] = k + 1
		v, ok := r.Obj.bestUntil(c, r.milestone(k))
		if !ok {
			// No finite value by the milestone (an evaluation may simply not have
			// come yet): judge on the best so far.
			if v, ok = r.Obj.bestUntil(c, t); !ok {
				continue
			}
		}
		for len(r.rungs) <= k {
			r.rungs = append(r.rungs, nil)
		}
		r.rungs[k] = append(r.rungs[k], v)
		cut := r.cutoff(r.rungs[k])
		if r.Obj.better(cut, v) {
			return fmt.Sprintf("asha rung %d", k), fmt.Sprintf("best %s %.4g by %.3gs is outside the best 1/%g of the %d trial(s) that reached rung %d (cutoff %.4g)",
				r.Obj.Metric, v, r.milestone(k), r.Factor, len(r.rungs[k]), k, cut)
		}
	}
	return "", ""
}

// cutoff is the value a trial must match or beat at a rung holding vals: the
// (1 − 1/Factor) quantile in the "better" direction, linearly interpolated.
func (r *ashaRule) cutoff(vals []float64) float64 {
	s := append([]float64(nil), vals...)
	// Sort worst first, so the quantile counts from the bottom.
	sort.Slice(s, func(i, j int) bool { return r.Obj.better(s[j], s[i]) })
	q := (1 - 1/r.Factor) * float64(len(s)-1)
	lo := int(math.Floor(q))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (q-float64(lo))*(s[hi]-s[lo])
}
