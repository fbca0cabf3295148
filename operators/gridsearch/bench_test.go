package gridsearch_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
)

// BenchmarkGridSearchA9A runs the a9a-tune grid (learning rate 0.01, 0.1, 0.5, 50 ×
// minibatch 20, 100 with adagrad, 3 trials at once, 2 workers each, 20 epochs) with
// each early-stopping policy, one after the other in the same iteration so they
// share the machine's conditions, and reports for each the trials per minute of
// the grid_search stage's wall time, the seconds it saved against no early
// stopping, and the best test loss found. Without early_stop, train still stops
// the diverging learning rate itself (at 4·ln 2), so "none" is already not naive.
//
//	go test ./operators/gridsearch -run '^$' -bench GridSearchA9A -benchtime 1x
func BenchmarkGridSearchA9A(b *testing.B) {
	policies := []struct{ name, block string }{
		{"none", ""},
		{"threshold", `early_stop {
    rule        = "threshold"
    max_logloss = 1
  }`},
		{"median", `early_stop {
    rule     = "median"
    grace    = "1s"
    interval = "200ms"
  }`},
		{"asha", `early_stop {
    rule             = "asha"
    grace            = "500ms"
    reduction_factor = 3
    interval         = "200ms"
  }`},
	}
	wall := make([]time.Duration, len(policies))
	best := make([]float64, len(policies))
	trialsRun := make([]int, len(policies))
	for i := 0; i < b.N; i++ {
		for k, pol := range policies {
			b.StopTimer()
			h := runtimetest.New(b, a9aPipeline(b, "  epochs = 20\n  eval_interval = \"200ms\"\n  l2 = 0.0001", fmt.Sprintf(`
grid_search "tune" {
  train = train.base
  grid = {
    learning_rate = [0.01, 0.1, 0.5, 50]
    minibatch     = [20, 100]
  }
  max_parallel = 3
  %s
}
`, pol.block)))
			b.StartTimer()
			sum, _, err := apply(context.Background(), h, runOpts{})
			if err != nil {
				b.Fatalf("%s: %v\n%s", pol.name, err, stageErrors(sum))
			}
			for _, s := range sum.Stages {
				if s.Address == "grid_search.tune" {
					wall[k] += s.Wall
				}
			}
			out := h.Output("grid_search.tune")
			trialsRun[k] += out.GetAttr("trials").LengthInt()
			best[k] += num(out.GetAttr("best").GetAttr("metrics").GetAttr("test_logloss"))
		}
	}
	n := float64(b.N)
	for k, pol := range policies {
		b.ReportMetric(float64(trialsRun[k])/wall[k].Minutes(), "trials/min:"+pol.name)
		b.ReportMetric(best[k]/n, "best_logloss:"+pol.name)
		if k > 0 {
			b.ReportMetric((wall[0]-wall[k]).Seconds()/n, "s_saved:"+pol.name)
		}
	}
	b.ReportMetric(wall[0].Seconds()/n, "s_grid:none")
}
