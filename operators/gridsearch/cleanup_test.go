package gridsearch_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
	"github.com/stratus-ml/stratus/psstore"
)

// TestTrialsCleanUpAndFullClusterFails runs grid searches on two shards that
// hold at most two models each (four slices: every model has its primary
// slice and a replica on each shard). Four trials, two at a time, fit only because
// every trial deletes its model once exported; afterwards nothing is left in
// psstore. Three trials at once do not fit: the stage fails saying the
// cluster is full, rather than completing with failed trials.
func TestTrialsCleanUpAndFullClusterFails(t *testing.T) {
	ctx := context.Background()
	lc, err := psstore.StartLocal(ctx, 2, t.TempDir(), "", func(o *psstore.ServerOptions) {
		o.MaxModels = 4
		o.Logf = func(string, ...any) {}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	search := func(parallel, lrs string) *runtimetest.Harness {
		h := runtimetest.New(t, a9aPipeline(t, "  epochs = 1\n  eval_interval = \"100ms\"", `
grid_search "tune" {
  train        = train.base
  max_parallel = `+parallel+`
  grid         = { learning_rate = [`+lrs+`] }
}
`))
		h.Env.PSStore, h.Env.Token = lc.Addrs(), lc.Token()
		return h
	}

	mustApply(t, search("2", "0.05, 0.1, 0.2, 0.4"), runOpts{})
	c, err := psstore.Dial(ctx, lc.Addrs(), psstore.WithToken(lc.Token()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	models, err := c.ListModels(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range models {
		t.Errorf("model %s left in psstore after the search", m.Name)
	}

	h := search("3", "0.06, 0.12, 0.24")
	sum, _, err := apply(ctx, h, runOpts{})
	if err == nil {
		t.Fatal("three trials at once on shards holding two models each: the apply succeeded")
	}
	var stageErr string
	for _, s := range sum.Stages {
		if s.Address == "grid_search.tune" {
			stageErr = s.Error
		}
	}
	if !strings.Contains(stageErr, "no room in psstore") || !strings.Contains(stageErr, "limit of 4 models") || !strings.Contains(stageErr, "stratus psstore gc") {
		t.Fatalf("the stage's error does not say the cluster is full and what to do: %q", stageErr)
	}
}
