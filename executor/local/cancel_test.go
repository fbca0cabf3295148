package local

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/taskenv"
)

// TestCancelKeepsFinishedResult: a handler that completes its work as the run is
// cancelled (an interrupt arriving while it returns) has its result returned, so the
// runner records it and the next apply does not run the task again; a handler that
// ignores cancellation is still abandoned.
func TestCancelKeepsFinishedResult(t *testing.T) {
	cancelled := make(chan struct{})
	release := make(chan struct{})
	reg := operators.MustRegistry(&operators.Operator{
		Schema: &operators.Schema{Name: "racer", Version: 1},
		Handlers: map[string]operators.Handler{
			// Returns success right after it sees its context end, as a handler
			// whose work was done when the interrupt came.
			"finish": func(ctx context.Context, _ operators.Env, t *operators.Task) (*operators.Result, error) {
				<-ctx.Done()
				<-cancelled
				return &operators.Result{Metrics: map[string]float64{"done": 1}}, nil
			},
			// Ignores cancellation until the test releases it.
			"stuck": func(ctx context.Context, _ operators.Env, t *operators.Task) (*operators.Result, error) {
				<-release
				return &operators.Result{}, nil
			},
		},
	})
	b := New(reg, taskenv.New(), Options{})
	defer b.Close()
	defer close(release)
	task := func(kind string) *operators.Task {
		return &operators.Task{Stage: "s.x", Kind: kind, Wave: "w", Deadline: time.Now().Add(time.Minute)}
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		cancel()
		close(cancelled) // the handler returns only after Invoke has seen ctx end
	}()
	res, _, err := b.Invoke(ctx, task("finish"))
	if err != nil {
		t.Fatalf("a handler that returned as the run was cancelled: %v", err)
	}
	if res.Metrics["done"] != 1 {
		t.Fatalf("result %+v, want the handler's", res)
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, _, err := b.Invoke(ctx2, task("stuck")); err == nil || !strings.Contains(err.Error(), "abandoned") {
		t.Fatalf("a handler ignoring cancellation: %v, want abandoned", err)
	}
}
