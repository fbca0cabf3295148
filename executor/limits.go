package executor

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/stratus-ml/stratus/internal/pricing"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/state"
)

// A stage with a budget or a deadline (planner.StagePlan.Budget, Deadline) is
// watched while it runs: when what it has used so far plus the estimate for the
// rest reaches the limit, the executor sends the reason on the stage's Stop
// channel, and a coordinator that can stop early (train keeps its best model,
// grid_search stops starting trials and keeps its best finished trial) ends
// with the result so far. The stage is then recorded and reported as cut short.
//
// Used so far is the billed cost of finished attempts plus the running attempts'
// time at the function memory (on the local backend, what the same run would
// cost on Lambda, the figure the apply summary shows). The estimate for the rest
// is what stopping costs: every running function for limitTail more (the time a
// stop takes to reach workers and for them to hand over), and two short tasks
// for exporting and scoring the model — or, once a run of the stage was cut
// short, what its stop measured (stopTail), so a machine slower to stop than
// assumed is allowed for on the next run.
const (
	limitTail  = planner.TaskOverhead
	limitEvery = 20 * time.Millisecond
)

// limitWatch watches one stage run.
type limitWatch struct {
	budget   float64
	deadline time.Duration
	began    time.Time
	runner   *waveRunner
	pricing  pricing.Pricing
	memoryMB int
	stop     chan<- string
	// hosts is the psstore hosts the stage pays for while it runs (0: none).
	hosts int
	// tail is what stopping takes from the stop to the stage's end: limitTail
	// per function and two short tasks, or, when an earlier run of the stage
	// was cut short and took longer, that run's measured stop (stopTail).
	tail time.Duration

	mu    sync.Mutex
	cut   string    // "budget" or "deadline", once sent
	cutAt time.Time // when it was sent
}

// stopTail is the stopping time a limit watch allows for: 2×limitTail, or a
// quarter more than the last stop an earlier run of the stage measured
// (prev, the CalStopMS of its record), whichever is longer.
func stopTail(prev *state.StageRecord) time.Duration {
	tail := 2 * limitTail
	if prev != nil {
		if ms, ok := prev.Calibration[planner.CalStopMS]; ok && ms > 0 {
			if t := time.Duration(1.25 * ms * float64(time.Millisecond)); t > tail {
				tail = t
			}
		}
	}
	return tail
}

// stopTook is how long the stage took from its stop to now, or 0 when it was
// not cut short.
func (w *limitWatch) stopTook(now time.Time) time.Duration {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cut == "" {
		return 0
	}
	return now.Sub(w.cutAt)
}

// watch checks the limits every limitEvery until ctx ends. It must be run by
// its owner, which cancels ctx and waits for it.
func (w *limitWatch) watch(ctx context.Context) {
	t := time.NewTicker(limitEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if reason := w.check(now); reason != "" {
				w.mu.Lock()
				w.cut, w.cutAt = reason, time.Now()
				w.mu.Unlock()
				w.stop <- reason // buffered: the one send
				return
			}
		}
	}
}

// check returns the limit the stage is about to reach, or "".
func (w *limitWatch) check(now time.Time) string {
	n, fs := w.runner.running(now)
	tail := w.tail
	if tail < 2*limitTail {
		tail = 2 * limitTail
	}
	if w.budget > 0 {
		// Every running function for half the tail and until the next look,
		// and two short tasks.
		rest := w.gbs(float64(n+2)*(tail/2).Seconds()+float64(n)*limitEvery.Seconds()) + w.pricing.Requests(2) + w.pricing.Hosts(w.hosts, tail+limitEvery)
		if w.spent(fs)+w.hostCost(now)+rest >= w.budget {
			return "budget"
		}
	}
	// The next look comes limitEvery from now (later on a loaded machine): a
	// stop that waits for it may start too late, so this one stops when the
	// next would be.
	if w.deadline > 0 && now.Sub(w.began)+limitEvery+tail >= w.deadline {
		return "deadline"
	}
	return ""
}

// spent is the billed cost so far plus fs function-seconds still running.
func (w *limitWatch) spent(fs float64) float64 {
	w.runner.mu.Lock()
	billed := w.runner.cost(w.pricing)
	w.runner.mu.Unlock()
	return billed + w.gbs(fs)
}

// hostCost is what the stage's psstore hosts cost from its start to now.
func (w *limitWatch) hostCost(now time.Time) float64 {
	return w.pricing.Hosts(w.hosts, now.Sub(w.began))
}

// gbs prices fs function-seconds at the function memory.
func (w *limitWatch) gbs(fs float64) float64 {
	return w.pricing.Duration(fs * float64(w.memoryMB) / 1024)
}

// reached returns the limit that stopped the stage, or "".
func (w *limitWatch) reached() string {
	if w == nil {
		return ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cut
}

// describe says how a stage stopped by its limit ended: "stopped by budget:
// $0.48 of $0.50", "stopped by deadline: 9m58s of 10m".
func (w *limitWatch) describe(reason string, cost float64, wall time.Duration) string {
	// Stopping takes the estimate for the rest; when it took more, the stage
	// went over its limit, and says so rather than hide it.
	if reason == "budget" {
		s := fmt.Sprintf("stopped by budget: %s of %s", planner.FormatUSD(cost), planner.FormatUSD(w.budget))
		if cost > w.budget {
			s += ", over it: stopping cost more than estimated"
		}
		return s
	}
	s := fmt.Sprintf("stopped by deadline: %s of %s", wall.Round(time.Millisecond), w.deadline)
	if wall > w.deadline {
		s += ", over it: stopping took longer than estimated"
	}
	return s
}
