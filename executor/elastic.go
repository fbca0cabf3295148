package executor

import (
	"math"
	goruntime "runtime"
	"time"
)

// What an elastic coordinator (train with workers = "auto") asks of its stage:
// which arguments the plan chose, how many cores the backend's functions
// share, and how much of the stage's budget and deadline is left.

// AutoSized reports whether the plan chose param ("auto" in the pipeline).
func (s *stageRun) AutoSized(param string) bool { return s.auto[param] }

// Cores is how many cores the backend's functions share: on the local
// backend, whose functions are this process's goroutines, its GOMAXPROCS (as
// the planner's limits say: executor/runtime); 0 on Lambda, where each
// function has its own. A backend with a Cores method says it itself.
func (s *stageRun) Cores() int {
	if s.runner == nil {
		return 0
	}
	if c, ok := s.runner.backend.(interface{ Cores() int }); ok {
		return c.Cores()
	}
	if s.runner.backend.Name() == "local" {
		return goruntime.GOMAXPROCS(0)
	}
	return 0
}

// Left returns the dollars and the time the stage has left of its budget and
// deadline: +Inf dollars with no budget, the longest duration with no deadline.
// Spent is counted as the limit watch counts it (limits.go).
func (s *stageRun) Left() (usd float64, wall time.Duration) {
	usd, wall = math.Inf(1), time.Duration(math.MaxInt64)
	w := s.limits
	if w == nil {
		return usd, wall
	}
	now := time.Now()
	if w.budget > 0 {
		_, fs := w.runner.running(now)
		usd = w.budget - w.spent(fs) - w.hostCost(now)
	}
	if w.deadline > 0 {
		wall = w.deadline - now.Sub(w.began)
	}
	return usd, wall
}
