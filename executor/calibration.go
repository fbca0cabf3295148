package executor

import (
	"math"

	"github.com/stratus-ml/stratus/planner"
)

// calibration is what a stage's run measured for later plans
// (planner/calibration.go): its invocations and cold starts, from the
// backend's usage reports, and the latencies its summary metrics report.
// Call with r.mu held.
func (r *waveRunner) calibration(metrics map[string]float64) map[string]float64 {
	c := map[string]float64{planner.CalInvocations: float64(r.requests), planner.CalColdStarts: float64(r.coldStarts)}
	if r.coldStarts > 0 {
		c[planner.CalColdStartMS] = 1000 * r.initSeconds / float64(r.coldStarts)
	}
	for _, k := range planner.CalibrationMetrics {
		if v, ok := metrics[k]; ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
			c[k] = v
		}
	}
	return c
}
