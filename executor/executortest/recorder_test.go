package executortest_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/executortest"
)

// TestRecorderWait records events from several goroutines while the test waits
// for a sequence of them.
func TestRecorderWait(t *testing.T) {
	var rec executortest.Recorder
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				rec.Event(executor.Event{Type: executor.TaskFinished, Stage: "s", Index: g*100 + i})
			}
		}()
	}
	stop := make(chan error)
	is := func(i int) func(executor.Event) bool {
		return func(e executor.Event) bool { return e.Index == i }
	}
	next := rec.Wait(t, 0, stop, "task 350", is(350))
	if got := rec.Events()[next-1].Index; got != 350 {
		t.Fatalf("Wait returned %d, after task %d", next, got)
	}
	// Another wait may start again from the first event.
	rec.Wait(t, 0, stop, "task 0", is(0))
	wg.Wait()
	rec.Event(executor.Event{Type: executor.StageEvent, Stage: "s", Note: "done"})
	rec.Event(executor.Event{Type: executor.StageEvent, Stage: "t", Note: "other"})
	rec.Wait(t, next, stop, "the note", func(e executor.Event) bool { return e.Note == "done" && rec.Count(executor.StageEvent, "") > 0 })
	if n := rec.Count(executor.TaskFinished, "s"); n != 400 {
		t.Errorf("Count = %d, want 400", n)
	}
	if n := rec.Count(executor.TaskFinished, "t"); n != 0 {
		t.Errorf("Count of another stage = %d", n)
	}
	if notes := rec.Notes("s"); len(notes) != 1 || notes[0] != "done" {
		t.Errorf("Notes = %q", notes)
	}
	if n := len(rec.Of(executor.StageEvent, "")); n != 2 {
		t.Errorf("Of any stage = %d events, want 2", n)
	}
}

// fatalTB records the failure a Wait reports and ends its goroutine, as
// testing.T.Fatalf does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestRecorderWaitStops fails the wait, naming what it waited for, when the apply
// ends without the event.
func TestRecorderWaitStops(t *testing.T) {
	var rec executortest.Recorder
	rec.Event(executor.Event{Type: executor.ApplyStarted})
	stop := make(chan error, 1)
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rec.Wait(tb, 0, stop, "the stage to finish", func(e executor.Event) bool { return e.Type == executor.StageFinished })
	}()
	stop <- errors.New("boom")
	<-done
	if !strings.Contains(tb.msg, "apply ended (boom) before the stage to finish") {
		t.Errorf("Wait failed with %q", tb.msg)
	}
}
