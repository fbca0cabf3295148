package executor

import (
	"math"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/internal/pricing"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/state"
)

// TestBudgetIncludesHosts: a stage's budget holds its functions and the psstore
// hosts it uses while it runs. Two hosts at $0.05/h for an hour are $0.10: a
// $0.09 budget is reached with no function billed, and a stage that uses no
// hosts is not stopped; an elastic coordinator sees what is left of it.
func TestBudgetIncludesHosts(t *testing.T) {
	p := pricing.Default()
	p.HostPerHour = 0.05
	now := time.Now()
	watch := func(hosts int) *limitWatch {
		return &limitWatch{budget: 0.09, began: now.Add(-time.Hour), runner: &waveRunner{}, pricing: p, memoryMB: 1769, hosts: hosts}
	}
	if got := watch(2).check(now); got != "budget" {
		t.Errorf("two hosts for an hour against $0.09: %q, want budget", got)
	}
	if got := watch(0).check(now); got != "" {
		t.Errorf("no hosts: %q, want no limit reached", got)
	}
	w := watch(1)
	w.budget = 1
	usd, wall := (&stageRun{limits: w}).Left()
	if math.Abs(usd-(1-0.05)) > 1e-3 || wall != time.Duration(math.MaxInt64) {
		t.Errorf("left: $%g and %s; want $0.95 (one host-hour spent) and no deadline", usd, wall)
	}
	if usd, _ := (&stageRun{}).Left(); !math.IsInf(usd, 1) {
		t.Errorf("no limits: $%g left, want +Inf", usd)
	}
}

// TestStopTail: a stage's watch allows the stop an earlier cut-short run of it
// measured, a quarter more, when that is longer than the default tail.
func TestStopTail(t *testing.T) {
	rec := func(ms float64) *state.StageRecord {
		return &state.StageRecord{Calibration: map[string]float64{planner.CalStopMS: ms}}
	}
	for _, c := range []struct {
		prev *state.StageRecord
		want time.Duration
	}{
		{nil, 2 * limitTail},
		{&state.StageRecord{}, 2 * limitTail},
		{rec(50), 2 * limitTail},
		{rec(400), 500 * time.Millisecond},
	} {
		if got := stopTail(c.prev); got != c.want {
			t.Errorf("stopTail(%v) = %s, want %s", c.prev, got, c.want)
		}
	}
	// The deadline check stops that much before the deadline.
	now := time.Now()
	w := &limitWatch{deadline: 2 * time.Second, began: now.Add(-1600 * time.Millisecond), runner: &waveRunner{}, pricing: pricing.Default(), memoryMB: 1769}
	if got := w.check(now); got != "" {
		t.Errorf("default tail, 400ms before the deadline: %q, want no limit yet", got)
	}
	w.tail = stopTail(rec(400))
	if got := w.check(now); got != "deadline" {
		t.Errorf("a measured 400ms stop, 400ms before the deadline: %q, want deadline", got)
	}
}
