package gridsearch_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/local"
	"github.com/stratus-ml/stratus/operators/internal/applytest"
	"github.com/stratus-ml/stratus/operators/taskenv"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/psstore"
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
	slots    int
}

// apply plans and applies h's pipeline on the local backend with in-process
// psstore shards (real gRPC servers on 127.0.0.1), as `stratus apply` does.
func apply(ctx context.Context, h *applytest.Harness, o runOpts) (*executor.Summary, *applytest.Recorder, error) {
	h.T.Helper()
	p := h.MustPlan()
	envs := taskenv.New()
	defer envs.Close()
	env := h.Env
	lc, err := psstore.StartLocal(ctx, 2, filepath.Join(h.Dir, ".stratus", "psstore"), "", func(so *psstore.ServerOptions) {
		so.Logf = func(string, ...any) {}
	})
	if err != nil {
		return nil, nil, err
	}
	defer lc.Close()
	env.PSStore, env.Token = lc.Addrs(), lc.Token()
	slots := o.slots
	if slots == 0 {
		slots = 16
	}
	be := local.New(h.Registry, envs, local.Options{MaxConcurrency: slots})
	defer be.Close()
	rec := &applytest.Recorder{}
	var obs executor.Observer = rec
	if o.observer != nil {
		obs = executor.Observers{rec, o.observer}
	}
	sum, err := executor.Apply(ctx, executor.Options{
		Plan: p, State: h.State, Backend: be, Registry: h.Registry, Observer: obs,
		TaskEnv: env, Services: envs.Services(env), Router: o.router,
		Retries: 1, TaskTimeout: 5 * time.Minute, Lifetime: time.Minute, RetryBackoff: time.Millisecond,
	})
	return sum, rec, err
}

// mustApply applies or fails the test with every stage's error.
func mustApply(t *testing.T, h *applytest.Harness, o runOpts) (*executor.Summary, *applytest.Recorder) {
	t.Helper()
	sum, rec, err := apply(context.Background(), h, o)
	if err != nil {
		msg := err.Error()
		if sum != nil {
			for _, s := range sum.Stages {
				if s.Error != "" {
					msg += "\n" + s.Address + ": " + s.Error
				}
			}
		}
		t.Fatalf("apply: %s", msg)
	}
	return sum, rec
}

var _ = planner.Canonical
var _ = fmt.Sprint
