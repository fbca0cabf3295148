package dag

import (
	"context"
	"fmt"
	"sync"
)

// WalkOptions configure Walk.
type WalkOptions struct {
	// Parallelism bounds the visits in flight (default 10, as Terraform's -parallelism).
	Parallelism int
	// Done holds vertices already complete: they are not visited, and count as
	// succeeded for their dependents (a cached stage).
	Done map[string]bool
	// StopOnError starts no new visit once one has failed; visits in flight finish.
	StopOnError bool
}

// Outcome is what happened to one vertex in a walk.
type Outcome int

// Outcomes of a walk.
const (
	// NotVisited: the walk stopped (ctx cancelled, or StopOnError) before the
	// vertex was ready.
	NotVisited Outcome = iota
	// Visited: visit returned nil (or the vertex was in Done).
	Visited
	// Failed: visit returned an error.
	Failed
	// Skipped: a dependency failed or was skipped, so the vertex was never visited.
	Skipped
)

// Result is one vertex's outcome; Err is visit's error (Failed) and Upstream the
// dependency that caused a skip (Skipped).
type Result struct {
	Outcome  Outcome
	Err      error
	Upstream string
}

// Walk visits every vertex after all of its dependencies have been visited
// successfully, up to Parallelism at once, as Terraform's dag.Walker does. Among
// vertices ready at the same time it starts them in topological order (insertion
// order breaking ties), so a walk of the same graph starts its visits in the same
// order. A vertex whose dependency failed or was skipped is Skipped. When ctx is
// cancelled, no new visit starts and Walk returns after the visits in flight (which
// receive ctx) return. Walk owns every goroutine it starts and waits for all of them.
// It fails only on a cycle, before visiting anything.
func (g *Graph) Walk(ctx context.Context, o WalkOptions, visit func(ctx context.Context, v string) error) (map[string]Result, error) {
	order, err := g.TopoOrder()
	if err != nil {
		return nil, err
	}
	if o.Parallelism <= 0 {
		o.Parallelism = 10
	}
	res := make(map[string]Result, len(order))
	for _, v := range order {
		if o.Done[v] {
			res[v] = Result{Outcome: Visited}
		}
	}
	var (
		mu      sync.Mutex
		started = map[string]bool{}
		running = 0
		stop    = false
		wake    = make(chan struct{}, len(order)+1)
		wg      sync.WaitGroup
	)
	// launch marks skips and starts every ready vertex. Called with mu held.
	launch := func() {
		for _, v := range order {
			if _, decided := res[v]; decided || started[v] {
				continue
			}
			ready := true
			for _, d := range g.DependsOn(v) {
				r, decided := res[d]
				if decided && (r.Outcome == Failed || r.Outcome == Skipped) {
					res[v] = Result{Outcome: Skipped, Upstream: d}
					break
				}
				ready = ready && decided && r.Outcome == Visited
			}
			if _, skipped := res[v]; skipped || !ready || stop || running >= o.Parallelism {
				continue
			}
			started[v] = true
			running++
			wg.Add(1)
			go func(v string) {
				defer wg.Done()
				err := visit(ctx, v)
				mu.Lock()
				running--
				if err != nil {
					res[v] = Result{Outcome: Failed, Err: err}
					stop = stop || o.StopOnError
				} else {
					res[v] = Result{Outcome: Visited}
				}
				mu.Unlock()
				wake <- struct{}{}
			}(v)
		}
	}
	ctxDone := ctx.Done()
	for {
		mu.Lock()
		launch()
		n := running
		mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-wake:
		case <-ctxDone:
			mu.Lock()
			stop = true
			mu.Unlock()
			ctxDone = nil // visits in flight see ctx too; wait for them to wake us
		}
	}
	wg.Wait()
	for _, v := range order {
		if _, ok := res[v]; !ok {
			res[v] = Result{Outcome: NotVisited}
		}
	}
	return res, nil
}

// String names an outcome.
func (o Outcome) String() string {
	switch o {
	case Visited:
		return "visited"
	case Failed:
		return "failed"
	case Skipped:
		return "skipped"
	case NotVisited:
		return "not visited"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}
