// Package executor applies a plan: it walks the stage DAG, runs each stage's
// coordinator, and runs the waves of tasks coordinators submit on a backend — local
// goroutines or AWS Lambda — with retries, deadlines, relaunching of long-running
// tasks, resume of interrupted stages, progress events and a state record per stage.
package executor

import (
	"context"
	"sync"
	"time"

	"github.com/stratus-ml/stratus/internal/pricing"
	"github.com/stratus-ml/stratus/operators"
)

// Backend runs task attempts inside functions. Invoke blocks until the attempt ends;
// cancelling ctx abandons it (on Lambda the function may still run to its timeout,
// which is why outputs are written under attempt-specific keys).
type Backend interface {
	// Name is "local" or "lambda", for records and messages.
	Name() string
	// Invoke runs one attempt and returns its result and what it used.
	Invoke(ctx context.Context, t *operators.Task) (*operators.Result, Usage, error)
	// Slots is how many invocations the backend runs at once.
	Slots() int
	// Close releases the backend, waiting (boundedly) for abandoned attempts.
	Close() error
}

// Usage is what one attempt consumed, for the cost summary.
type Usage struct {
	Duration time.Duration
	MemoryMB int
	// LogTail is the end of the function's log, when the backend returns one.
	LogTail string
	// Init is the function's cold start (Lambda's Init Duration), 0 when the
	// attempt ran in a warm function or the backend has none.
	Init time.Duration
	// Encoded, when set, is the JSON the backend decoded the result from,
	// exactly as the handler encoded it (the local backend sets it); the runner
	// checks and records it instead of encoding the result a second time.
	Encoded []byte
}

// GBSeconds is the attempt's billable memory-time.
func (u Usage) GBSeconds() float64 {
	return pricing.GBSeconds(u.Duration, u.MemoryMB)
}

// DefaultMemoryMB is a function's memory when none is configured: 1769 MB, the size
// at which Lambda gives a function one full vCPU.
const DefaultMemoryMB = pricing.DefaultMemoryMB

// WaitTimeout waits for wg up to d and reports whether it finished. When it times
// out, the goroutine watching wg stays until wg is done: it exists to wait for
// attempts whose handlers ignore cancellation, which nothing else can stop.
func WaitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
