package planner

import (
	"strconv"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/state"
)

// Calibration: each apply records in every stage record what it measured of its
// backend and operator (state.StageRecord.Calibration, by the names below), and
// plans use it:
//
//   - estimates from history take records of the plan's backend only: a run on
//     the embedded default says little of one on Lambda;
//   - a stage estimated from the defaults pays, per function, TaskOverhead plus
//     the backend's measured cold starts (their mean times the share of
//     invocations that were cold, over the state's records of the backend), not
//     TaskOverhead alone;
//   - a train stage estimated from a record whose minibatch differs scales the
//     record by a per-iteration time of the record's measured psstore pull and
//     push latencies (fixed per iteration) plus its compute (per example), so
//     that ten times smaller minibatches cost their extra round trips.
const (
	// CalInvocations counts the stage's function invocations (attempts).
	CalInvocations = "invocations"
	// CalColdStarts counts the invocations that started a function.
	CalColdStarts = "cold_starts"
	// CalColdStartMS is the mean cold start of those, in milliseconds.
	CalColdStartMS = "cold_start_ms"
	// CalPullP50US and CalPushP50US are the median psstore pull and push of a
	// training iteration, in microseconds.
	CalPullP50US = "pull_p50_us"
	CalPushP50US = "push_p50_us"
	// CalComputeUS and CalGetUS are a training iteration's mean gradient
	// computation and minibatch read, in microseconds.
	CalComputeUS = "compute_us"
	CalGetUS     = "get_us"
	// CalStopMS is how long a stage cut short by its budget or deadline took
	// from the stop to its end (handing over, exporting, scoring), in
	// milliseconds: the next run of the stage stops that much earlier.
	CalStopMS = "stop_ms"
)

// CalibrationMetrics are the summary metrics of a stage that its record keeps
// as calibration.
var CalibrationMetrics = []string{CalPullP50US, CalPushP50US, CalComputeUS, CalGetUS}

// sameBackend reports whether a record was measured on the plan's backend (a
// record or plan that does not say matches).
func (m *costModel) sameBackend(r *state.StageRecord) bool {
	return r.Backend == "" || m.limits.Backend == "" || r.Backend == m.limits.Backend
}

// taskOverhead is the per-function overhead of a defaults estimate: TaskOverhead
// plus the expected cold start on the plan's backend, from the state's records.
func (m *costModel) taskOverhead() time.Duration {
	if m.overhead > 0 {
		return m.overhead
	}
	m.overhead = TaskOverhead
	var inv, cold, coldMS float64
	for _, r := range m.records() {
		if !m.sameBackend(r) || r.Calibration == nil {
			continue
		}
		c := r.Calibration
		inv += c[CalInvocations]
		cold += c[CalColdStarts]
		coldMS += c[CalColdStarts] * c[CalColdStartMS]
	}
	if inv > 0 && cold > 0 {
		m.overhead += time.Duration(coldMS / inv * float64(time.Millisecond))
	}
	return m.overhead
}

// records lists the state's records (once), or none.
func (m *costModel) records() []*state.StageRecord {
	if m.all == nil {
		m.all = []*state.StageRecord{}
		if m.lister != nil {
			if recs, err := m.lister.Stages(); err == nil {
				m.all = recs
			}
		}
	}
	return m.all
}

// iterationScale is how the per-example cost of training changes from the
// record r's minibatch to cfg's, by r's measured latencies: an iteration takes
// pull + push + (compute + get) per example × minibatch. 1 when r has no
// latencies or the minibatch is the same.
func iterationScale(r *state.StageRecord, now int) float64 {
	c := r.Calibration
	if c == nil || now <= 0 {
		return 1
	}
	then := DefaultMinibatch
	if p, ok := r.Params["minibatch"]; ok {
		if f, err := strconv.ParseFloat(p.Display, 64); err == nil {
			then = int(f)
		}
	}
	fixed := c[CalPullP50US] + c[CalPushP50US]
	if then <= 0 || then == now || fixed <= 0 {
		return 1
	}
	perEx := (c[CalComputeUS] + c[CalGetUS]) / float64(then)
	was := (fixed + perEx*float64(then)) / float64(then)
	is := (fixed + perEx*float64(now)) / float64(now)
	return is / was
}

// DefaultMinibatch is train's minibatch when the pipeline leaves it out.
const DefaultMinibatch = 100

// iterationFactor is iterationScale for a train stage planned from record r
// (1 for other operators and for matrix factorization, whose minibatch is its
// own: ratings per iteration).
func (m *costModel) iterationFactor(sp *StagePlan, r *state.StageRecord, cfg cty.Value) float64 {
	if sp.Operator != "train" || r == nil {
		return 1
	}
	if p, ok := r.Params["model"]; ok && strings.Contains(p.Display, "matrix_factorization") {
		return 1
	}
	if unknownAttr(cfg, "minibatch") {
		// Set from an upstream stage's output (a grid search's best): plan
		// cannot tell it changed, so the record stands unscaled by it, as
		// withParams leaves it. Scaling the record's 20 to the default 100
		// estimated a9a-tune's train.final at a quarter of its 8–10 s.
		return 1
	}
	return iterationScale(r, intAttr(cfg, "minibatch", DefaultMinibatch))
}

// scaleBy scales an estimate's time and GB-seconds by k (iterationFactor).
func (m *costModel) scaleBy(e *Estimate, k float64) {
	if k == 1 {
		return
	}
	e.Wall = time.Duration(float64(e.Wall) * k)
	e.GBSeconds *= k
	e.FunctionSeconds *= k
	e.CostUSD = m.pricing.Duration(e.GBSeconds) + m.pricing.Requests(e.Tasks)
}

// unknownAttr reports whether cfg has the attribute name with a value unknown
// at plan time.
func unknownAttr(cfg cty.Value, name string) bool {
	if cfg == cty.NilVal || !cfg.IsKnown() || cfg.IsNull() || !cfg.Type().IsObjectType() || !cfg.Type().HasAttribute(name) {
		return false
	}
	return !cfg.GetAttr(name).IsKnown()
}
