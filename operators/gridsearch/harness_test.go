package gridsearch_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/executortest"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
)

// testdata returns the absolute path of a file in the repository's testdata.
func testdata(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return filepath.ToSlash(p)
}

// runOpts are what an apply in these tests may add to the harness's.
type runOpts struct {
	router   *executor.Router
	observer executor.Observer
	slots    int // default 16: room for several trials' workers and evaluators
}

// apply plans and applies h's pipeline on the local backend with in-process
// psstore shards (real gRPC servers on 127.0.0.1), as `stratus apply` does.
func apply(ctx context.Context, h *runtimetest.Harness, o runOpts) (*executor.Summary, *executortest.Recorder, error) {
	h.T.Helper()
	h.Router, h.Observer, h.Slots = o.router, o.observer, o.slots
	if h.Slots == 0 {
		h.Slots = 16
	}
	return h.ApplyPlanContext(ctx, h.MustPlan())
}

// mustApply applies or fails the test with every stage's error.
func mustApply(t *testing.T, h *runtimetest.Harness, o runOpts) (*executor.Summary, *executortest.Recorder) {
	t.Helper()
	sum, rec, err := apply(context.Background(), h, o)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, stageErrors(sum))
	}
	return sum, rec
}
