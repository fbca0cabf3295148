package executor

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/operators"
)

func TestRouter(t *testing.T) {
	r := NewRouter()
	ctx := context.Background()
	if err := r.Send(ctx, "train.x", operators.Command{Op: "kill"}); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("send to a stage that is not running: %v", err)
	}
	ch := r.open("grid_search.t")
	go func() {
		cmd := <-ch
		if cmd.Target == "t-1" {
			cmd.Reply <- nil
		}
	}()
	if err := r.Send(ctx, "grid_search.t", operators.Command{Op: "kill", Target: "t-1"}); err != nil {
		t.Fatal(err)
	}
	// A stage that finishes without reading its commands answers them at once,
	// instead of leaving the sender to time out (CommandTimeout): both a
	// command still queued and one taken but not answered.
	queued := r.open("train.y")
	done := make(chan error)
	go func() { done <- r.Send(ctx, "train.y", operators.Command{Op: "kill"}) }()
	for len(queued) == 0 { // wait until the command is in the inbox
		runtime.Gosched()
	}
	r.close("train.y")
	if err := <-done; err == nil || !strings.Contains(err.Error(), "finished before it took the command") {
		t.Fatalf("send to a stage that finished with the command queued: %v", err)
	}
	taken := r.open("train.z")
	go func() { done <- r.Send(ctx, "train.z", operators.Command{Op: "kill"}) }()
	<-taken
	r.close("train.z")
	if err := <-done; err == nil || !strings.Contains(err.Error(), "finished before it answered") {
		t.Fatalf("send to a stage that finished without answering: %v", err)
	}
	if got := r.Running(); len(got) != 1 || got[0] != "grid_search.t" {
		t.Errorf("running: %v", got)
	}
}
