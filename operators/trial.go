package operators

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/internal/canon"
)

// A search operator (grid_search, the executor's test_trials) reports each of its
// trials as a TrialEvent, carried as an Event of Kind "trial". TrialEvent.Event and
// DecodeTrial are the only encoding of that event: producers (the operators) and
// consumers (the progress output, the dashboard, `stratus plot`) go through them.
// The wire form — labels trial, status, params, reason, model, cached; metrics
// test_logloss, best_logloss, accuracy, auc, iterations, updates_per_second,
// seconds, cost_usd, workers — is what the state records in a stage's series, so
// it must stay readable: add labels and metrics, never rename them.

// KindTrial is the Kind of a trial event.
const KindTrial = "trial"

// TrialLabel is the label naming the trial an event is about: on trial events, and
// on the trial's metric points and notes.
const TrialLabel = "trial"

// TrialStatus is where a trial stands. A trial is QUEUED, then RUNNING, then ends
// DONE, STOPPED, KILLED or FAILED.
type TrialStatus string

// The trial statuses.
const (
	TrialQueued  TrialStatus = "QUEUED"  // waiting for workers
	TrialRunning TrialStatus = "RUNNING" // training
	TrialDone    TrialStatus = "DONE"    // training ended by itself (epochs, target loss, converged, timeout)
	TrialStopped TrialStatus = "STOPPED" // stopped early: diverged, or by an early-stopping rule
	TrialKilled  TrialStatus = "KILLED"  // killed on request
	TrialFailed  TrialStatus = "FAILED"  // an error ended it
)

// TrialStatuses lists every status, in the order a trial meets them.
var TrialStatuses = []TrialStatus{TrialQueued, TrialRunning, TrialDone, TrialStopped, TrialKilled, TrialFailed}

// Terminal reports whether s is an end: DONE, STOPPED, KILLED or FAILED.
func (s TrialStatus) Terminal() bool {
	switch s {
	case TrialDone, TrialStopped, TrialKilled, TrialFailed:
		return true
	}
	return false
}

// Reasons a consumer interprets; other reasons are text to show.
const (
	// ReasonDiverged is the reason of a trial STOPPED because its loss diverged.
	ReasonDiverged = "diverged"
	// ReasonKilled is the reason of a trial KILLED by a command.
	ReasonKilled = "killed by user"
)

// TrialEvent is the state of one trial, reported on every change of status and
// every evaluation. Build one with NewTrialEvent, whose figures start unreported:
// in a zero TrialMetrics every figure is reported, as zero.
type TrialEvent struct {
	// Time is the Event's time (zero: when the executor receives it).
	Time time.Time
	// ID names the trial, such as "t-1a2b3c4d" (TrialID).
	ID     string
	Status TrialStatus
	// Params is the trial's parameters as a compact JSON object (or, from an
	// operator that does not write JSON, any text); see ParamsText.
	Params string
	// Reason says why the trial ended or is ending ("" when none).
	Reason string
	// Model is the URI of the model the trial left ("" when none).
	Model string
	// Cached reports that the trial's outcome was reused from an earlier run.
	Cached  bool
	Metrics TrialMetrics
}

// TrialMetrics are a trial's figures. A figure that is not finite — NaN, the value
// of a figure not reported, or an infinite loss — is left out of the Event (JSON
// has no NaN), and a figure absent from an Event decodes as NaN.
type TrialMetrics struct {
	TestLogloss      float64 // the latest test log loss
	BestLogloss      float64 // the lowest test log loss so far
	Accuracy         float64
	AUC              float64
	Iterations       float64 // train's iterations so far
	UpdatesPerSecond float64 // while RUNNING
	Seconds          float64 // run time so far, or in all once ended
	CostUSD          float64 // estimated spend of the trial's functions
	Workers          float64 // workers the trial holds
}

// NoTrialMetrics returns metrics with every figure unreported (NaN).
func NoTrialMetrics() TrialMetrics {
	n := math.NaN()
	return TrialMetrics{n, n, n, n, n, n, n, n, n}
}

// NewTrialEvent returns the event of trial id in status, its figures unreported.
func NewTrialEvent(id string, status TrialStatus) TrialEvent {
	return TrialEvent{ID: id, Status: status, Metrics: NoTrialMetrics()}
}

// trialFigures are the figures' metric names on the wire, in the order of figure.
// A figure added to TrialMetrics needs a name here and a case in figure
// (TestEveryTrialFigureEncodes fails until it has them).
var trialFigures = [...]string{"test_logloss", "best_logloss", "accuracy", "auc", "iterations",
	"updates_per_second", "seconds", "cost_usd", "workers"}

// figure returns the figure named trialFigures[i].
func (m *TrialMetrics) figure(i int) *float64 {
	switch i {
	case 0:
		return &m.TestLogloss
	case 1:
		return &m.BestLogloss
	case 2:
		return &m.Accuracy
	case 3:
		return &m.AUC
	case 4:
		return &m.Iterations
	case 5:
		return &m.UpdatesPerSecond
	case 6:
		return &m.Seconds
	case 7:
		return &m.CostUSD
	case 8:
		return &m.Workers
	}
	panic("operators: trial figure index out of range")
}

// Map returns the reported (finite) figures under their metric names, as the Event
// carries them.
func (m TrialMetrics) Map() map[string]float64 {
	out := make(map[string]float64, len(trialFigures))
	for i, name := range trialFigures {
		if x := *m.figure(i); !math.IsNaN(x) && !math.IsInf(x, 0) {
			out[name] = x
		}
	}
	return out
}

// Event encodes e as an Event of Kind "trial".
func (e TrialEvent) Event() Event {
	labels := map[string]string{TrialLabel: e.ID}
	if e.Status != "" {
		labels["status"] = string(e.Status)
	}
	if e.Params != "" {
		labels["params"] = e.Params
	}
	if e.Reason != "" {
		labels["reason"] = e.Reason
	}
	if e.Model != "" {
		labels["model"] = e.Model
	}
	if e.Cached {
		labels["cached"] = "true"
	}
	return Event{Time: e.Time, Kind: KindTrial, Labels: labels, Metrics: e.Metrics.Map()}
}

// DecodeTrial decodes a trial event. It reports false when ev is not one: not of
// Kind "trial", or naming no trial. A label left out decodes as "" (Status ""
// means the event did not say), a metric left out as NaN; labels and metrics it
// does not know are ignored.
func DecodeTrial(ev Event) (TrialEvent, bool) {
	if ev.Kind != KindTrial || ev.Labels[TrialLabel] == "" {
		return TrialEvent{}, false
	}
	e := TrialEvent{
		Time:   ev.Time,
		ID:     ev.Labels[TrialLabel],
		Status: TrialStatus(ev.Labels["status"]),
		Params: ev.Labels["params"],
		Reason: ev.Labels["reason"],
		Model:  ev.Labels["model"],
		Cached: ev.Labels["cached"] == "true",
	}
	e.Metrics = NoTrialMetrics()
	for i, name := range trialFigures {
		if x, ok := ev.Metrics[name]; ok {
			*e.Metrics.figure(i) = x
		}
	}
	return e, true
}

// ParamsText is the trial's parameters as ParamsText renders them ("" when the
// event carries none).
func (e TrialEvent) ParamsText() string {
	if e.Params == "" {
		return ""
	}
	return ParamsText([]byte(e.Params))
}

// TrialID is a trial's identity: "t-" and the first 8 hex digits of the SHA-256 of
// the canonical encoding of its parameters (canon.Encode), so it is the same
// whatever order the grid was written in, and across runs.
func TrialID(params cty.Value) string {
	sum := sha256.Sum256([]byte(canon.Encode(params)))
	return "t-" + hex.EncodeToString(sum[:4])
}

// ParamsText renders the "params" label of a trial event — a JSON object of the
// trial's parameters — as k=v pairs in key order, strings unquoted:
// "learning_rate=0.1 minibatch=20". Anything else is returned as it is.
func ParamsText(js []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(js, &m) != nil {
		var s string
		if json.Unmarshal(js, &s) == nil {
			return s
		}
		return string(js)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := string(m[k])
		var s string
		if json.Unmarshal(m[k], &s) == nil {
			v = s
		}
		parts[i] = k + "=" + v
	}
	return strings.Join(parts, " ")
}
