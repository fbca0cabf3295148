package executor

import (
	"time"

	"github.com/stratus-ml/stratus/operators"
)

// EventType names what happened.
type EventType string

// The events an apply emits, in the order they can occur.
const (
	ApplyStarted  EventType = "apply_started"
	StageCached   EventType = "stage_cached"
	StageStarted  EventType = "stage_started"
	WaveStarted   EventType = "wave_started"
	TaskStarted   EventType = "task_started"
	TaskFinished  EventType = "task_finished"
	TaskRelaunch  EventType = "task_relaunched" // a long-running task yielded at its lifetime
	TaskRetried   EventType = "task_retried"
	TaskFailed    EventType = "task_failed" // out of retries
	WaveFinished  EventType = "wave_finished"
	StageEvent    EventType = "stage_event" // an operator's metric or note
	StageFinished EventType = "stage_finished"
	StageFailed   EventType = "stage_failed"
	// StagePublished: a stage that ran was published to the shared cache (Reason),
	// or could not be (Error); Note is the entry's URI.
	StagePublished EventType = "stage_published"
	ApplyFinished  EventType = "apply_finished"
)

// Event is one observation of an apply. Fields that do not apply are zero; the JSON
// form is the -json event stream, one object per line.
type Event struct {
	Time       time.Time          `json:"time"`
	Type       EventType          `json:"type"`
	Stage      string             `json:"stage,omitempty"`
	Operator   string             `json:"operator,omitempty"`
	Wave       string             `json:"wave,omitempty"`
	Tasks      int                `json:"tasks,omitempty"` // wave size, or tasks run by a stage
	Index      int                `json:"index,omitempty"`
	Attempt    int                `json:"attempt,omitempty"`
	Generation int                `json:"generation,omitempty"`
	Duration   time.Duration      `json:"duration_ns,omitempty"`
	Reason     string             `json:"reason,omitempty"`
	Error      string             `json:"error,omitempty"`
	Metrics    map[string]float64 `json:"metrics,omitempty"`
	Labels     map[string]string  `json:"labels,omitempty"`
	Note       string             `json:"note,omitempty"`
	Kind       string             `json:"kind,omitempty"` // StageEvent: the operator's event kind
	Resumed    int                `json:"resumed,omitempty"`
	Summary    *StageSummary      `json:"summary,omitempty"`
}

// Observer receives an apply's events. Calls come from many goroutines; an Observer
// must be safe for concurrent use and must not block for long.
type Observer interface {
	Event(e Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Event)

// Event calls f.
func (f ObserverFunc) Event(e Event) { f(e) }

// Observers fans events out to several observers.
type Observers []Observer

// Event sends e to each observer.
func (os Observers) Event(e Event) {
	for _, o := range os {
		if o != nil {
			o.Event(e)
		}
	}
}

// OperatorEvent is the operator's event a StageEvent carries.
func (e Event) OperatorEvent() operators.Event {
	return operators.Event{Time: e.Time, Kind: e.Kind, Note: e.Note, Metrics: e.Metrics, Labels: e.Labels}
}

// Trial decodes the trial event a StageEvent carries (operators.DecodeTrial); it
// reports false for any other event.
func (e Event) Trial() (operators.TrialEvent, bool) {
	if e.Type != StageEvent {
		return operators.TrialEvent{}, false
	}
	return operators.DecodeTrial(e.OperatorEvent())
}

func fromOperatorEvent(stage, op string, e operators.Event) Event {
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	return Event{Time: t, Type: StageEvent, Stage: stage, Operator: op, Kind: e.Kind, Note: e.Note, Metrics: e.Metrics, Labels: e.Labels}
}
