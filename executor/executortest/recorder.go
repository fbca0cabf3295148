// Package executortest helps tests watch an apply: a Recorder of its events that
// tests of the executor, of its backends and of the operators share. It imports the
// executor and nothing above it.
package executortest

import (
	"sync"
	"testing"

	"github.com/stratus-ml/stratus/executor"
)

// Recorder is an executor.Observer that keeps every event of an apply, in order,
// and lets a test wait for one. It is safe for concurrent use; the zero value is
// ready.
type Recorder struct {
	mu     sync.Mutex
	events []executor.Event
	grew   chan struct{} // closed (and cleared) when an event is recorded
}

// Event records e.
func (r *Recorder) Event(e executor.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	if r.grew != nil {
		close(r.grew)
		r.grew = nil
	}
}

// Events returns the events recorded so far.
func (r *Recorder) Events() []executor.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]executor.Event(nil), r.events...)
}

// Of returns the events of type t recorded for stage, or for any stage when stage
// is "".
func (r *Recorder) Of(t executor.EventType, stage string) []executor.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []executor.Event
	for _, e := range r.events {
		if e.Type == t && (stage == "" || e.Stage == stage) {
			out = append(out, e)
		}
	}
	return out
}

// Count returns how many events of type t were recorded for stage, or for any
// stage when stage is "".
func (r *Recorder) Count(t executor.EventType, stage string) int {
	return len(r.Of(t, stage))
}

// Notes returns the notes stage reported.
func (r *Recorder) Notes(stage string) []string {
	var out []string
	for _, e := range r.Of(executor.StageEvent, stage) {
		if e.Note != "" {
			out = append(out, e.Note)
		}
	}
	return out
}

// Wait waits for an event, recorded at index from or later, that satisfies ok, and
// returns the index after it: where the next Wait of a sequence starts. It fails
// the test, naming what it waited for, when stop delivers first (such as the
// apply's result: the apply ended without it).
func (r *Recorder) Wait(t testing.TB, from int, stop <-chan error, what string, ok func(executor.Event) bool) int {
	t.Helper()
	for i := from; ; {
		r.mu.Lock()
		// Recorded events are never written again: read them without the lock, so
		// that ok may call the Recorder.
		evs := r.events[:len(r.events):len(r.events)]
		if r.grew == nil {
			r.grew = make(chan struct{})
		}
		grew := r.grew
		r.mu.Unlock()
		for ; i < len(evs); i++ {
			if ok(evs[i]) {
				return i + 1
			}
		}
		select {
		case <-grew:
		case err := <-stop:
			t.Fatalf("apply ended (%v) before %s", err, what)
		}
	}
}
