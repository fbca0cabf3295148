package executor

import (
	"math"
	"time"
)

// What an elastic coordinator (train with workers = "auto") asks of its stage:
// which arguments the plan chose, and how much of the stage's budget and
// deadline is left.

// AutoSized reports whether the plan chose param ("auto" in the pipeline).
func (s *stageRun) AutoSized(param string) bool { return s.auto[param] }

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
