package train

import (
	"math"
	"strings"
	"testing"
)

// seg describes a stretch of evaluations for the table: points evaluations at
// workers, every dt seconds, processing rate examples per second in all, the
// loss falling by drop (relative) per epoch.
type seg struct {
	workers, points int
	rate, drop      float64
}

const (
	tRows = 10_000
	tDt   = 0.1
)

// history builds the evaluations of segs, one after the other.
func history(segs ...seg) []ScalePoint {
	var h []ScalePoint
	t, ex, loss := 0.0, 0.0, 0.69
	for i, s := range segs {
		for j := 0; j < s.points; j++ {
			t += tDt
			e := s.rate * tDt
			ex += e
			loss *= math.Pow(1-s.drop, e/tRows)
			h = append(h, ScalePoint{Seconds: t, Loss: loss, Examples: ex, Workers: s.workers, Segment: i})
		}
	}
	return h
}

func TestScale(t *testing.T) {
	const cost = 1e-5 // $ per worker-second
	inf := math.Inf(1)
	base := func(workers int, h []ScalePoint) ScaleInput {
		return ScaleInput{History: h, Rows: tRows, Workers: workers, Max: 7, WorkerCost: cost,
			BudgetLeft: inf, DeadlineLeft: inf, Elapsed: h[len(h)-1].Seconds}
	}
	cases := []struct {
		name   string
		in     ScaleInput
		want   int
		reason string // a part of the reason; "" when it holds
	}{
		{"too few evaluations to judge", base(1, history(seg{1, 2, 1e5, 0.2})), 1, ""},
		{"fast improvement doubles", base(1, history(seg{1, 7, 1e5, 0.1})), 2, "loss −10.0%/epoch at $0.00060/worker-min"},
		{"out to the backend's cap", base(4, history(seg{1, 7, 1e5, 0.1}, seg{2, 7, 2e5, 0.1}, seg{4, 7, 4e5, 0.1})), 7, "loss −10.0%/epoch"},
		{"at the cap it holds", func() ScaleInput {
			in := base(7, history(seg{1, 7, 1e5, 0.1}, seg{7, 7, 7e5, 0.1}))
			return in
		}(), 7, ""},
		{"the first point after a change is not enough", base(2, history(seg{1, 7, 1e5, 0.1}, seg{2, 3, 2e5, 0.1})), 2, ""},
		{"moderate improvement holds", base(2, history(seg{1, 7, 1e5, 0.1}, seg{2, 7, 2e5, 0.01})), 2, ""},
		{"the tail halves", base(4, history(seg{1, 7, 1e5, 0.1}, seg{2, 7, 2e5, 0.05}, seg{4, 7, 4e5, 0.002})), 2, "loss only −0.2%/epoch"},
		{"no improvement at all halves", base(2, history(seg{1, 7, 1e5, 0.1}, seg{2, 7, 2e5, 0})), 1, "loss only −0.0%/epoch"},
		{"one worker in the tail stays", base(1, history(seg{1, 8, 1e5, 0.001})), 1, ""},
		// Four workers that run 1.5× as fast as two make each epoch cost 4/3 as
		// much: the same 2 %/epoch is worth 1.5 % per dollar of the first epochs.
		{"workers with half the speed-up pay less", base(4, history(seg{1, 7, 1e5, 0.1}, seg{2, 7, 2e5, 0.05}, seg{4, 7, 3e5, 0.02})), 4, ""},
		{"workers with half the speed-up in the tail", base(4, history(seg{1, 7, 1e5, 0.1}, seg{2, 7, 2e5, 0.05}, seg{4, 7, 3e5, 0.006})), 2, "loss only −0.5%/epoch"},
		// A scale-out must pay: its workers together at least halfway from the
		// old rate to linear speed-up. On the old rule each of these held or
		// grew.
		{"a scale-out without speed-up is reverted", base(2, history(seg{1, 7, 1e5, 0.1}, seg{2, 7, 1e5, 0.1})), 1,
			"the scale-out did not pay: 100k examples/s on 2 workers, 1.00× the 100k on 1, short of 1.50× (half of linear speed-up); not trying 2 again"},
		{"a slower scale-out is reverted (the 2M-row run on 2 cores)", base(2, history(seg{1, 7, 1e5, 0.1}, seg{2, 7, 2.5e4, 0.02})), 1, "0.25× the 100k on 1"},
		{"1.4× for a doubling is short of the margin", base(2, history(seg{1, 7, 1e5, 0.1}, seg{2, 7, 1.4e5, 0.1})), 1, "1.40× the 100k on 1, short of 1.50×"},
		{"1.5× for a doubling pays", base(2, history(seg{1, 7, 1e5, 0.1}, seg{2, 7, 1.5e5, 0.1})), 4, "loss −7.5%/epoch"},
		{"a capped scale-out needs half of its own speed-up", base(7, history(seg{1, 7, 1e5, 0.1}, seg{2, 7, 2e5, 0.1}, seg{4, 7, 4e5, 0.1}, seg{7, 7, 5.2e5, 0.1})), 4, "1.30× the 400k on 4, short of 1.38×"},
		{"a scale-out is judged on 6 evaluations after the hand-over", base(2, history(seg{1, 7, 1e5, 0.1}, seg{2, 6, 1e5, 0.1})), 2, ""},
		// While the workers hand over, the examples stop: those points would
		// halve the one worker's rate and make 1.2× look like 2×.
		{"a hand-over's points do not count", base(2, func() []ScalePoint {
			h := history(seg{1, 7, 1e5, 0.1}, seg{1, 4, 0, 0}, seg{2, 7, 1.2e5, 0.1})
			for i := range h { // the middle four are the one worker's, handing over
				h[i].HandOver, h[i].Segment = i >= 7 && i < 11, 0
				if i >= 11 {
					h[i].Segment = 1
				}
			}
			return h
		}()), 1, "1.20× the 100k on 1"},
		{"a reverted count is not tried again", base(1, history(seg{1, 7, 1e5, 0.1}, seg{2, 7, 1e5, 0.1}, seg{1, 7, 1e5, 0.1})), 1, ""},
		{"a short deadline takes any speed-up", func() ScaleInput {
			in := base(2, history(seg{1, 7, 1e5, 0.1}, seg{2, 7, 1.1e5, 0.01}))
			in.DeadlineLeft = 0.5
			return in
		}(), 4, "left of the deadline"},
		{"a short deadline reverts a scale-out without speed-up", func() ScaleInput {
			in := base(2, history(seg{1, 7, 1e5, 0.1}, seg{2, 7, 1e5, 0.01}))
			in.DeadlineLeft = 0.5
			return in
		}(), 1, "short of any speed-up, as the deadline is short"},
		{"no oscillation after scaling in", base(2, history(seg{1, 7, 1e5, 0.1}, seg{2, 7, 2e5, 0.1}, seg{4, 7, 4e5, 0.001}, seg{2, 7, 2e5, 0.1})), 3, "loss −10.0%/epoch"},
		{"budget caps scale-out", func() ScaleInput {
			in := base(1, history(seg{1, 10, 1e5, 0.1}))
			in.BudgetLeft = 2.5 * cost * in.Elapsed // 2 workers for as long again
			return in
		}(), 2, "loss −10.0%/epoch"},
		{"budget holds at one", func() ScaleInput {
			in := base(1, history(seg{1, 10, 1e5, 0.1}))
			in.BudgetLeft = 1.5 * cost * in.Elapsed
			return in
		}(), 1, ""},
		{"budget scales in", func() ScaleInput {
			in := base(4, history(seg{1, 7, 1e5, 0.1}, seg{2, 7, 2e5, 0.1}, seg{4, 7, 4e5, 0.1}))
			in.BudgetLeft = 2 * cost * in.Elapsed
			return in
		}(), 2, "of budget left buys 2 worker(s)"},
		{"backend cap below the count", func() ScaleInput {
			in := base(4, history(seg{4, 7, 4e5, 0.1}))
			in.Max = 3
			return in
		}(), 3, "the backend runs 3 worker(s)"},
		{"short deadline keeps workers in the tail", func() ScaleInput {
			in := base(4, history(seg{1, 7, 1e5, 0.1}, seg{2, 7, 2e5, 0.05}, seg{4, 7, 4e5, 0.002}))
			in.DeadlineLeft = 0.5
			return in
		}(), 4, ""},
		{"short deadline scales out at a moderate gain", func() ScaleInput {
			in := base(2, history(seg{1, 7, 1e5, 0.1}, seg{2, 7, 2e5, 0.01}))
			in.DeadlineLeft = 0.5
			return in
		}(), 4, "left of the deadline"},
		{"a diverging loss does not scale out", base(1, func() []ScalePoint {
			h := history(seg{1, 7, 1e5, 0.1})
			for i := range h {
				h[i].Loss = 0.69 * float64(i+1)
			}
			return h
		}()), 1, ""},
		{"no rows: hold", func() ScaleInput { in := base(1, history(seg{1, 7, 1e5, 0.1})); in.Rows = 0; return in }(), 1, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Scale(c.in)
			if d.Workers != c.want {
				t.Fatalf("workers %d → %d (%s; gain %.4f, epoch cost %g); want %d", c.in.Workers, d.Workers, d.Reason, d.Gain, d.EpochCost, c.want)
			}
			if c.want == c.in.Workers && d.Reason != "" {
				t.Fatalf("holds at %d with a reason: %q", d.Workers, d.Reason)
			}
			if !strings.Contains(d.Reason, c.reason) || (c.want != c.in.Workers && c.reason == "") {
				t.Fatalf("reason %q; want it to contain %q", d.Reason, c.reason)
			}
		})
	}
}

// TestScaleGainMeasured checks the figures the rule reports: a segment whose loss
// falls 4 % per epoch at the first segment's cost measures a gain of 4 %, and an
// epoch of 10,000 rows at 200,000 examples/s on two workers costs 2 × price × 0.05 s.
func TestScaleGainMeasured(t *testing.T) {
	h := history(seg{1, 4, 1e5, 0.1}, seg{2, 7, 2e5, 0.04})
	d := Scale(ScaleInput{History: h, Rows: tRows, Workers: 2, Max: 2, WorkerCost: 1e-5, BudgetLeft: math.Inf(1), DeadlineLeft: math.Inf(1), Elapsed: 1})
	if math.Abs(d.Gain-0.04) > 1e-3 {
		t.Errorf("gain %.4f; want 0.04", d.Gain)
	}
	if want := 2 * 1e-5 * 0.05; math.Abs(d.EpochCost-want) > 1e-3*want {
		t.Errorf("epoch cost %g; want %g", d.EpochCost, want)
	}
}

// TestElasticMax: an elastic run scales to the backend's real parallelism —
// its functions at once less the evaluator; on the local backend one worker
// per core but one (a 2-core machine leaves no room to grow); on Lambda 8 per
// psstore member — and to at least one.
func TestElasticMax(t *testing.T) {
	for _, c := range []struct {
		l    ElasticLimits
		want int
		why  string
	}{
		{ElasticLimits{Functions: 8}, 7, "the backend runs 8 functions at once, one for the evaluator"},
		{ElasticLimits{Functions: 5}, 4, "5 functions"},
		{ElasticLimits{Functions: 2}, 1, "2 functions"},
		{ElasticLimits{Functions: 1}, 1, "1 functions"},
		{ElasticLimits{}, 1, "unknown"},
		// The measured problem: on 2 cores the rule grew to 7 of 8 slots.
		{ElasticLimits{Functions: 8, Cores: 2}, 1, "2 cores, one worker per core but one, which the evaluator and the in-process psstore shards need"},
		{ElasticLimits{Functions: 16, Cores: 4}, 3, "4 cores"},
		{ElasticLimits{Functions: 4, Cores: 16}, 3, "4 functions"},
		{ElasticLimits{Functions: 8, Cores: 1}, 1, "1 cores"},
		// In-process shards share the cores, which bound the workers already.
		{ElasticLimits{Functions: 64, Cores: 32, Members: 1}, 31, "32 cores"},
		{ElasticLimits{Functions: 100, Members: 2}, 16, "8 per psstore member, 2 members"},
		{ElasticLimits{Functions: 10, Members: 2}, 9, "10 functions"},
	} {
		got, why := ElasticMax(c.l)
		if got != c.want || !strings.Contains(why, c.why) {
			t.Errorf("%+v: %d (%s); want %d (%s)", c.l, got, why, c.want, c.why)
		}
	}
}
