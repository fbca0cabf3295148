package train

import (
	"fmt"
	"math"
	"strconv"

	"github.com/stratus-ml/stratus/internal/pricing"
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
//   - a scale-out must pay: once the new count's segment has
//     scaleJudgePoints evaluations after the hand-over (before that nothing
//     is decided), its workers together must process examples at least
//     scaleOutPays of the way from the old rate to linear speed-up (for a
//     doubling, 1.5× the examples per second, so that an epoch costs at most
//     4/3 as much); under a short deadline (below), any speed-up pays. One that does not is reverted to
//     the count before, and the cap below keeps the run from trying that
//     count again. The rule compares throughput, not the loss's improvement:
//     the loss falls more slowly per epoch as training goes whatever the
//     workers, so a later segment's improvement says nothing of its count.
//   - the cap is ElasticMax (the backend's real parallelism: its cores or its
//     concurrency), what the budget left buys for as long again as the run
//     has taken so far, and one below any count the run already scaled in
//     from or reverted (so it does not oscillate).
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
	// scaleOutPays is the share of linear speed-up a scale-out must reach,
	// judged once the new count has scaleJudgePoints evaluations after the
	// hand-over (a rate over fewer is too noisy to undo a change on; nothing
	// else is decided before then).
	scaleOutPays     = 0.5
	scaleJudgePoints = 2 * scaleMinPoints
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
	// HandOver marks a point taken while the segment's workers were handing
	// over to the next count: the rule does not measure the segment on it.
	HandOver bool
}

// ScaleInput is what the rule decides from.
type ScaleInput struct {
	History []ScalePoint // every evaluation so far, oldest first
	Rows    int          // training examples in one epoch
	Workers int          // running now (the last segment's)
	Max     int          // the most workers the backend runs at once (ElasticMax)
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
	limit, why := max(1, in.Max), fmt.Sprintf("the backend runs %d worker(s) at once", max(1, in.Max))
	horizon := max(in.Elapsed, 1e-3)
	if in.WorkerCost > 0 && !math.IsInf(in.BudgetLeft, 1) {
		if b := int(math.Floor(in.BudgetLeft / (in.WorkerCost * horizon))); b < limit {
			limit = max(1, b)
			why = fmt.Sprintf("the %s of budget left buys %d worker(s) for %s, as long as the run has taken so far",
				pricing.FormatUSD(max(0, in.BudgetLeft)), b, secs(horizon))
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
	grew := len(segs) > 1 && segs[len(segs)-2].workers < n
	if grew && cur.hi-cur.lo-1 < scaleJudgePoints {
		return d // a scale-out is judged first, on enough evaluations
	}
	m, ok := measure(in.History, cur, in.Rows, in.WorkerCost)
	if !ok {
		return d
	}
	gain, cost := m.rho, m.cost
	if ref := firstCost(in.History, segs, in.Rows, in.WorkerCost); ref > 0 && cost > 0 {
		gain = m.rho * ref / cost
	}
	d.Gain, d.EpochCost = gain, cost
	short := !math.IsInf(in.DeadlineLeft, 1) && in.DeadlineLeft < horizon
	// Did the scale-out to this count pay?
	if grew {
		prev := segs[len(segs)-2]
		if pm, ok := measure(in.History, prev, in.Rows, in.WorkerCost); ok && pm.rate > 0 {
			k := float64(n) / float64(prev.workers)
			need, must := 1+scaleOutPays*(k-1), fmt.Sprintf("%.2f× (half of linear speed-up)", 1+scaleOutPays*(k-1))
			if short {
				need, must = 1, "any speed-up, as the deadline is short"
			}
			speedup := m.rate / pm.rate
			const eps = 1e-9 // of rounding
			if paid := speedup >= need-eps && (!short || speedup > 1+eps); !paid {
				d.Workers = prev.workers
				d.Reason = fmt.Sprintf("the scale-out did not pay: %s examples/s on %d workers, %.2f× the %s on %d, short of %s; not trying %d again",
					rate(m.rate), n, speedup, rate(pm.rate), prev.workers, must, n)
				return d
			}
		}
	}
	at := ""
	if in.WorkerCost > 0 {
		at = " at " + pricing.FormatUSD(in.WorkerCost*60) + "/worker-min"
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

// measured is what measure finds of a segment: the held-out loss's relative
// improvement per epoch, the dollars an epoch costs at its workers, and the
// examples per second its workers process together.
type measured struct {
	rho, cost, rate float64
}

// measure measures a segment from its evaluations after the first and before
// a hand-over, and reports whether it has enough of them.
func measure(h []ScalePoint, s segment, rows int, workerCost float64) (measured, bool) {
	lo := s.lo + 1 // the first spans the hand-over
	if s.lo == 0 {
		lo = 0 // the run's first segment has no hand-over
	}
	hi := s.hi
	for hi > lo && h[hi-1].HandOver {
		hi-- // the workers were stopping
	}
	if hi-lo < scaleMinPoints {
		return measured{}, false
	}
	a, b := h[lo], h[hi-1]
	epochs := (b.Examples - a.Examples) / float64(rows)
	dt := b.Seconds - a.Seconds
	if epochs <= 0 || dt <= 0 {
		return measured{}, false
	}
	la, lb := bestUpTo(h, lo), bestUpTo(h, hi-1)
	if math.IsInf(la, 0) || la <= 0 {
		return measured{}, false
	}
	m := measured{
		rho:  1 - math.Pow(lb/la, 1/epochs), // compounded per epoch
		cost: float64(s.workers) * workerCost * dt / epochs,
	}
	// The rate skips the run's first evaluation too: it spans the start, when
	// the evaluator loads the held-out set and the workers their first units.
	if hi-1 > s.lo+1 {
		if r := h[s.lo+1]; b.Seconds > r.Seconds {
			m.rate = (b.Examples - r.Examples) / (b.Seconds - r.Seconds)
		}
	}
	return m, true
}

// firstCost is the epoch cost of the run's first segment that was measured.
func firstCost(h []ScalePoint, segs []segment, rows int, workerCost float64) float64 {
	for _, s := range segs {
		if m, ok := measure(h, s, rows, workerCost); ok {
			return m.cost
		}
	}
	return 0
}

// rate shows examples per second: "1.97M", "152k", "930".
func rate(x float64) string {
	if x >= 1e6 {
		return strconv.FormatFloat(x/1e6, 'f', 2, 64) + "M"
	}
	if x >= 10_000 {
		return strconv.FormatFloat(x/1000, 'f', 0, 64) + "k"
	}
	return strconv.FormatFloat(x, 'f', 0, 64)
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

// ElasticWorkersPerMember is the most workers an elastic run gives each
// member of a psstore cluster: twice the planner's sizing bound
// (planner.WorkersPerShard), so that scaling out can find out whether the
// shards keep up without overloading them.
const ElasticWorkersPerMember = 8

// ElasticLimits are what bounds the workers an elastic run may scale to, as
// the coordinator knows them at run time and the planner at plan time.
type ElasticLimits struct {
	// Functions is how many functions the backend runs at once (0: unknown).
	Functions int
	// Cores is how many cores the backend's functions share: the local
	// backend's (its process's GOMAXPROCS); 0 when each function has its own
	// (Lambda).
	Cores int
	// Members is the psstore cluster's members (0: unknown).
	Members int
}

// ElasticMax is the most workers an elastic run may scale to, and why: the
// backend's real parallelism. That is its functions at once less one for the
// evaluator, and, where the functions share cores (the local backend), one
// worker per core less one, which the evaluator and the in-process psstore
// shards need (as the planner sizes workers): more workers than that only
// time-share the cores, and a 2M-row run on 2 cores took 13.4 s at 2 workers
// against 3.4 s at 1. Where each function has its own CPU (Lambda), the
// psstore cluster bounds them too, ElasticWorkersPerMember per member. At
// least one.
func ElasticMax(l ElasticLimits) (int, string) {
	n, why := max(1, l.Functions-1), fmt.Sprintf("the backend runs %d functions at once, one for the evaluator", l.Functions)
	if l.Functions <= 0 {
		n, why = 1, "the backend's concurrency is unknown"
	}
	if l.Cores > 0 {
		if c := CoreWorkers(l.Cores); c < n {
			n, why = c, fmt.Sprintf("%d cores, one worker per core but one, which the evaluator and the in-process psstore shards need", l.Cores)
		}
	} else if l.Members > 0 && ElasticWorkersPerMember*l.Members < n {
		n, why = ElasticWorkersPerMember*l.Members, fmt.Sprintf("%d per psstore member, %d members", ElasticWorkersPerMember, l.Members)
	}
	return n, why
}

// CoreWorkers is the most workers that train in parallel on cores shared
// with their evaluator and in-process psstore shards: one per core but one,
// at least one, as planner/sizing.go sizes the workers a run starts with.
func CoreWorkers(cores int) int { return max(1, cores-1) }
