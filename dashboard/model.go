package dashboard

import (
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/stratus-ml/stratus/operators"
)

// Stage statuses as the dashboard shows them.
const (
	StagePending     = "pending"     // planned, not started
	StageCached      = "cached"      // outputs reused
	StageRunning     = "running"     // coordinator running
	StageDone        = "done"        // completed and recorded
	StageFailed      = "failed"      // failed; its error is in Error
	StageSkipped     = "skipped"     // never started: an upstream stage failed or the apply stopped
	StageInterrupted = "interrupted" // running when the apply was interrupted
)

// Status is the whole state of an apply as GET /api/status returns it.
type Status struct {
	Run    RunInfo        `json:"run"`
	Stages []*StageStatus `json:"stages"`
	Trials []*Trial       `json:"trials"`
	Totals Totals         `json:"totals"`
	Log    []LogLine      `json:"log"`
}

// RunInfo describes the apply the server reports on.
type RunInfo struct {
	// Mode is "live" for a running apply, "finished" for one read from the state.
	Mode     string    `json:"mode"`
	Dir      string    `json:"dir,omitempty"`
	PID      int       `json:"pid,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// State is "running", "done", "failed" or "interrupted".
	State string `json:"state"`
	// CanKill reports whether kill commands can reach the apply.
	CanKill bool `json:"can_kill"`
}

// StageStatus is one stage of the DAG.
type StageStatus struct {
	Address  string    `json:"address"`
	Operator string    `json:"operator"`
	Action   string    `json:"action,omitempty"` // the plan's: run, rerun, cached
	Reason   string    `json:"reason,omitempty"` // why it reruns
	Deps     []string  `json:"deps"`
	Status   string    `json:"status"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	Tasks    int       `json:"tasks"`
	Active   int       `json:"active"` // functions running now
	CostUSD  float64   `json:"cost_usd"`
	Error    string    `json:"error,omitempty"`
	Note     string    `json:"note,omitempty"` // the latest note
	// Workers is a train stage's worker count, as it last reported it (an
	// elastic run changes it while it trains).
	Workers int `json:"workers,omitempty"`
}

// Trial is the latest state of one trial, from the stage's trial events
// (operators.TrialEvent), with its loss also followed from its "metric" events.
type Trial struct {
	Stage  string                `json:"stage"`
	ID     string                `json:"trial"`
	Status operators.TrialStatus `json:"status"`
	// Params is the trial's parameters as the operator reported them: a JSON object
	// (or a JSON string when the operator's label was not JSON).
	Params  json.RawMessage `json:"params,omitempty"`
	Reason  string          `json:"reason,omitempty"`
	Model   string          `json:"model,omitempty"`
	Metrics Metrics         `json:"metrics,omitempty"`
	Updated time.Time       `json:"updated"`
}

// Totals sum the apply so far.
type Totals struct {
	UpdatesPerSecond float64                       `json:"updates_per_second"` // over running trials and train stages
	ActiveFunctions  int                           `json:"active_functions"`
	CostUSD          float64                       `json:"cost_usd"` // finished stages' recorded cost plus running stages' estimate
	Elapsed          float64                       `json:"elapsed_seconds"`
	Trials           map[operators.TrialStatus]int `json:"trials"` // by status
}

// LogLine is a note or a failure worth showing.
type LogLine struct {
	Time  time.Time `json:"time"`
	Stage string    `json:"stage,omitempty"`
	Trial string    `json:"trial,omitempty"`
	Level string    `json:"level"` // info, warn, error
	Text  string    `json:"text"`
}

// CurveKey names a loss curve: a trial of a stage, or a whole stage (Trial "") for a
// plain train stage.
type CurveKey struct {
	Stage string `json:"stage"`
	Trial string `json:"trial,omitempty"`
}

// Curve is the evaluation points of one trial or stage.
type Curve struct {
	CurveKey
	Points []Point `json:"points"`
}

// Point is one evaluation. Loss is null when it was not finite (a diverged trial).
type Point struct {
	T       float64  `json:"t"`    // seconds since the trial (or stage) started training
	Time    int64    `json:"time"` // Unix milliseconds
	Loss    *float64 `json:"loss"`
	CostUSD float64  `json:"cost_usd"` // estimated spend of this trial (or stage) so far
	Updates float64  `json:"updates,omitempty"`
}

// Metrics is a metric map whose JSON form writes non-finite values as null, which
// encoding/json would refuse.
type Metrics map[string]float64

// MarshalJSON writes the metrics with sorted keys, non-finite values as null.
func (m Metrics) MarshalJSON() ([]byte, error) {
	if m == nil {
		return []byte("null"), nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		kb, _ := json.Marshal(k)
		b = append(b, kb...)
		b = append(b, ':')
		b = appendFloat(b, m[k])
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads what MarshalJSON wrote; null becomes NaN.
func (m *Metrics) UnmarshalJSON(b []byte) error {
	var raw map[string]*float64
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw == nil {
		*m = nil
		return nil
	}
	*m = make(Metrics, len(raw))
	for k, v := range raw {
		if v == nil {
			(*m)[k] = math.NaN()
		} else {
			(*m)[k] = *v
		}
	}
	return nil
}

func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// finiteLoss returns a pointer to a loss worth plotting, or nil. The train operator
// reports a non-finite loss as -1.
func finiteLoss(m map[string]float64) *float64 {
	v, ok := operators.CurveLoss(m)
	if !ok || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return nil
	}
	return &v
}
