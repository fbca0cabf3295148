package gridsearch

import (
	"math"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/operators"
)

// synthetic returns a curve sampled every step seconds up to end from f(t).
func synthetic(id string, end, step float64, f func(t float64) float64) curve {
	c := curve{ID: id}
	for t := step; t <= end+1e-9; t += step {
		c.Points = append(c.Points, point{T: t, V: f(t)})
	}
	return c
}

// decay is a loss curve falling from 0.69 towards floor at rate k.
func decay(floor, k float64) func(float64) float64 {
	return func(t float64) float64 { return floor + (0.693-floor)*math.Exp(-k*t) }
}

func TestThresholdRule(t *testing.T) {
	r := thresholdRule{MaxLogloss: 2}
	for _, c := range []struct {
		loss float64
		stop bool
	}{{0.69, false}, {1.99, false}, {2.01, true}, {math.NaN(), true}, {math.Inf(1), true}} {
		if got := r.check(c.loss) != ""; got != c.stop {
			t.Errorf("loss %g: stop %v, want %v", c.loss, got, c.stop)
		}
	}
	if (thresholdRule{}).check(50) != "" || (thresholdRule{}).check(math.NaN()) != operators.ReasonDiverged {
		t.Error("without max_logloss only NaN and Inf stop a trial")
	}
}

func TestMedianRule(t *testing.T) {
	obj := newObjective("test_logloss")
	r := medianRule{Obj: obj, Grace: 2, MinTrials: 2}
	good := []curve{
		synthetic("a", 10, 0.5, decay(0.32, 1)),
		synthetic("b", 10, 0.5, decay(0.33, 1)),
		synthetic("c", 10, 0.5, decay(0.34, 0.8)),
	}
	slow := synthetic("slow", 6, 0.5, decay(0.40, 0.2))
	// Before the grace period, nothing is stopped.
	early := curve{ID: "slow", Points: slow.Points[:3]} // up to 1.5s
	if reason, _ := r.check(early, good); reason != "" {
		t.Errorf("stopped within the grace period: %s", reason)
	}
	reason, detail := r.check(slow, good)
	if reason != reasonMedian || !strings.Contains(detail, "worse than the median") {
		t.Errorf("slow trial: %q %q, want the median rule", reason, detail)
	}
	// The best of the good ones is never stopped.
	if reason, _ := r.check(good[0], append([]curve{slow}, good[1:]...)); reason != "" {
		t.Errorf("best trial stopped: %s", reason)
	}
	// Too few references: others still running that have not reached t do not count.
	short := []curve{synthetic("a", 1, 0.5, decay(0.32, 1)), synthetic("b", 10, 0.5, decay(0.33, 1))}
	if reason, _ := r.check(slow, short); reason != "" {
		t.Errorf("stopped with one reference trial: %s", reason)
	}
	// A finished trial counts beyond its last point.
	short[0].Done = true
	if reason, _ := r.check(slow, short); reason != reasonMedian {
		t.Errorf("finished reference not counted: %q", reason)
	}
	// Maximised objectives: the lowest accuracy is the one stopped.
	acc := medianRule{Obj: newObjective("accuracy"), Grace: 1, MinTrials: 2}
	up := func(top float64) func(float64) float64 {
		return func(t float64) float64 { return top - 0.3*math.Exp(-t) }
	}
	hi := []curve{synthetic("a", 5, 0.5, up(0.85)), synthetic("b", 5, 0.5, up(0.84))}
	if reason, _ := acc.check(synthetic("low", 5, 0.5, up(0.70)), hi); reason != reasonMedian {
		t.Errorf("low accuracy not stopped: %q", reason)
	}
	if reason, _ := acc.check(synthetic("top", 5, 0.5, up(0.86)), hi); reason != "" {
		t.Errorf("top accuracy stopped: %q", reason)
	}
}

func TestASHARule(t *testing.T) {
	obj := newObjective("test_logloss")
	floors := map[string]float64{"t0": 0.50, "t1": 0.45, "t2": 0.40, "t3": 0.35, "t4": 0.30, "t5": 0.33}
	// run advances time in steps of 0.5s; at each step the trials still running
	// report, in order, as a coordinator's rule tick would see them.
	run := func(order []string) map[string]string {
		r := newASHA(obj, 1, 3) // rungs at 1s, 3s, 9s
		stopped := map[string]string{}
		for now := 0.5; now <= 12; now += 0.5 {
			for _, id := range order {
				if stopped[id] != "" {
					continue
				}
				if reason, _ := r.check(synthetic(id, now, 0.5, decay(floors[id], 2))); reason != "" {
					stopped[id] = reason
				}
			}
		}
		return stopped
	}
	// Best first: each later trial is worse than the best third so far.
	got := run([]string{"t4", "t5", "t3", "t2", "t1", "t0"})
	for _, id := range []string{"t5", "t3", "t2", "t1", "t0"} {
		if got[id] != "asha rung 0" {
			t.Errorf("best-first: %s %q, want asha rung 0", id, got[id])
		}
	}
	if got["t4"] != "" {
		t.Errorf("best-first: the best trial was stopped: %s", got["t4"])
	}
	// Worst first: ASHA never waits for a rung to fill, so each arrival, better than
	// those before it, goes on at rung 0.
	got = run([]string{"t0", "t1", "t2", "t3", "t5", "t4"})
	for id, reason := range got {
		if reason == "asha rung 0" {
			t.Errorf("worst-first: %s stopped at rung 0", id)
		}
	}
	// Mixed: t2 arrives first and is promoted alone; t0 and t1 arrive worse than the
	// best third at rung 0; the best, t4, always goes on.
	got = run([]string{"t2", "t4", "t0", "t3", "t5", "t1"})
	if got["t0"] != "asha rung 0" || got["t1"] != "asha rung 0" {
		t.Errorf("mixed: t0 %q, t1 %q, want both stopped at rung 0", got["t0"], got["t1"])
	}
	if got["t4"] != "" || got["t2"] == "asha rung 0" {
		t.Errorf("mixed: t4 %q, t2 %q", got["t4"], got["t2"])
	}
	if len(got) < 3 {
		t.Errorf("mixed: ASHA stopped %d of 6 trials (%v); with factor 3 it keeps about a third", len(got), got)
	}
	// The cutoff is the (1 − 1/factor) quantile in the better direction.
	r := newASHA(obj, 1, 3)
	if got := r.cutoff([]float64{0.5, 0.4}); math.Abs(got-(0.5-0.1*2/3.0)) > 1e-12 {
		t.Errorf("cutoff of [0.5 0.4] = %g", got)
	}
	if got := newASHA(newObjective("auc"), 1, 2).cutoff([]float64{0.8, 0.9, 0.7}); math.Abs(got-0.8) > 1e-12 {
		t.Errorf("auc cutoff of [0.8 0.9 0.7] with factor 2 = %g, want the median 0.8", got)
	}
	// A trial that jumps past several rungs between two checks is judged at each.
	r = newASHA(obj, 1, 2)
	r.check(synthetic("a", 5, 0.5, decay(0.3, 2)))
	if reason, _ := r.check(synthetic("b", 5, 0.5, decay(0.5, 2))); reason != "asha rung 0" {
		t.Errorf("late worse trial: %q, want asha rung 0", reason)
	}
	if r.reached["a"] != 3 { // rungs 1, 2, 4 ≤ 5s
		t.Errorf("trial a judged at %d rungs by 5s, want 3", r.reached["a"])
	}
}
