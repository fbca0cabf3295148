package executor

import (
	"context"
	"strings"
	"testing"
	"time"

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
	// instead of leaving the sender to time out.
	r.open("train.y")
	start := time.Now()
	done := make(chan error)
	go func() { done <- r.Send(ctx, "train.y", operators.Command{Op: "kill"}) }()
	time.Sleep(20 * time.Millisecond)
	r.close("train.y")
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "finished") || time.Since(start) > 5*time.Second {
		t.Fatalf("send to a stage that finished: %v after %s", err, time.Since(start))
	}
	if got := r.Running(); len(got) != 1 || got[0] != "grid_search.t" {
		t.Errorf("running: %v", got)
	}
}
