package operators

import (
	"context"
	"time"

	"github.com/zclconf/go-cty/cty"
)

// Coordinator is the client side of an operator: it runs in the executor, reads the
// stage's evaluated configuration and its inputs, submits waves of tasks and turns
// their results into the stage's output, a value of the schema's OutputType.
type Coordinator interface {
	Run(ctx context.Context, s Stage) (cty.Value, error)
}

// CoordinatorFunc adapts a function to Coordinator.
type CoordinatorFunc func(ctx context.Context, s Stage) (cty.Value, error)

// Run calls f.
func (f CoordinatorFunc) Run(ctx context.Context, s Stage) (cty.Value, error) { return f(ctx, s) }

// Stage is the executor's view of one stage run, handed to its coordinator.
type Stage interface {
	// Address is the stage's address, e.g. module.prep.load.data.
	Address() string
	// Key is the stage's cache key; outputs live under content-addressed prefixes
	// derived from it.
	Key() string
	// Config is the stage's evaluated configuration: an object with every argument and
	// nested block of the schema, defaults applied, all values known.
	Config() cty.Value
	// Dir is the directory of the module that declares the stage; relative paths in
	// the configuration are resolved from it.
	Dir() string
	// Upstream returns a stage this one references (directly or through locals,
	// variables and module outputs), with its configuration and outputs.
	Upstream(addr string) (Upstream, bool)
	// RunWave runs a wave of tasks through the backend and returns one result per
	// task, in order. It retries failed attempts, relaunches yielding long-running
	// tasks, skips tasks completed by an interrupted earlier run of the same stage
	// key, and fails with the reasons of the task that exhausted its retries.
	RunWave(ctx context.Context, w Wave) ([]*Result, error)
	// Recorded counts the tasks of a wave that an earlier, interrupted run of this
	// stage key completed or yielded: more than zero means RunWave will resume it.
	Recorded(wave string) (int, error)
	// TaskEnv is the environment every task of this run receives.
	TaskEnv() TaskEnv
	// Capacity is how many tasks the backend runs at once, across all stages. Tasks
	// of a long-running wave hold their slots, so a coordinator that needs several
	// long-running waves at once must fit them in.
	Capacity() int
	// FunctionCost is what one function running for d costs on Lambda (memory ×
	// duration × price), for cost estimates such as a trial's.
	FunctionCost(d time.Duration) float64
	// Commands delivers requests sent to this stage while it runs. A coordinator
	// that accepts none may ignore it; senders then time out with a message.
	Commands() <-chan Command
	// Stop delivers a reason ("budget", "deadline") when the executor wants the
	// stage to stop early, keeping its best result so far, because finishing
	// would exceed the stage's budget or deadline. A coordinator that cannot
	// stop early may ignore it; the stage then runs to its end.
	Stop() <-chan string
	// Services reach the run's blob store (and psstore) from the coordinator.
	Services
	// Event reports a stage-level event (a metric, a note) to the progress output,
	// the event stream and the state store.
	Event(e Event)
}

// Upstream is a completed stage as seen by a downstream coordinator.
type Upstream struct {
	Address  string
	Operator string
	Key      string
	Config   cty.Value
	Output   cty.Value
}

// Wave is a batch of tasks submitted together. Name must be stable across runs of the
// same stage key: resuming matches completed tasks by wave name and index.
type Wave struct {
	Name  string
	Tasks []Task // Kind, Params and (optionally) Resume are set by the coordinator
	// LongRunning marks tasks that run until their lifetime and yield; they are
	// relaunched as new generations until they return without Yield.
	LongRunning bool
	// Lifetime overrides the backend's function lifetime for a long-running wave.
	Lifetime time.Duration
	// Quiet waves are not announced one by one in progress output (a full-batch
	// solver runs a wave per gradient pass); their tasks' events still flow.
	Quiet bool
	// Ephemeral waves are never resumed (their name is not reused), so their final
	// results are not recorded: that saves a durable write per task.
	Ephemeral bool
	// OnResult, when set, is called (from one goroutine at a time) as each task's
	// final result arrives, so a coordinator can observe progress.
	OnResult func(index int, r *Result)
}

// Event is a stage-level observation. Metrics go to the progress output and the
// state store; Note is a human-readable line.
type Event struct {
	Time    time.Time          `json:"time"`
	Kind    string             `json:"kind"` // "metric", "note", "trial", …
	Note    string             `json:"note,omitempty"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
	Labels  map[string]string  `json:"labels,omitempty"`
}

// Command is a request to a running stage from outside the apply — `stratus trials
// kill`, or the dashboard's kill button. The coordinator answers on Reply (buffered)
// with nil or an error saying why it cannot.
type Command struct {
	Op     string       `json:"op"`               // "kill" or "kill-all"
	Target string       `json:"target,omitempty"` // e.g. a trial ID
	Reply  chan<- error `json:"-"`
}
