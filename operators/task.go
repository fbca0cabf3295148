package operators

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// MaxPayload bounds the JSON encoding of a Task and of a Result. Bulk data goes through
// the blob store; Lambda's synchronous payload limit is 6 MB and a state record holds
// every result of a wave, so documents stay small.
const MaxPayload = 256 << 10

// Task is one unit of work run inside one function invocation: a goroutine on the
// local backend or a Lambda invocation, through the same handler. It is a small JSON
// document; it names its inputs and outputs and never carries bulk data.
type Task struct {
	Stage      string `json:"stage"`     // stage address, e.g. load.adult
	StageKey   string `json:"stage_key"` // the stage's cache key
	Operator   string `json:"operator"`
	Kind       string `json:"kind"` // handler name, e.g. "load.parse"
	Wave       string `json:"wave"`
	Index      int    `json:"index"`
	Attempt    int    `json:"attempt"`
	Generation int    `json:"generation"`
	// Params are the handler's parameters, set by the coordinator.
	Params json.RawMessage `json:"params,omitempty"`
	// Resume is the position handed over by the previous generation of a long-running
	// task (Result.Resume), or null for the first generation.
	Resume json.RawMessage `json:"resume,omitempty"`
	// OutputPrefix is a blob key prefix owned by this attempt alone. Outputs written
	// under it become part of the stage only when the coordinator accepts the result,
	// so a late or duplicate attempt can never overwrite what another run reads.
	OutputPrefix string  `json:"output_prefix"`
	Env          TaskEnv `json:"env"`
	// Deadline is when the function's lifetime ends. A long-running handler must
	// return (yielding its position) before it; past it the attempt is cancelled.
	Deadline time.Time `json:"deadline"`
}

// TaskEnv tells a function where the run's shared services are. A function builds
// its Env from it alone, so tasks stay stateless.
type TaskEnv struct {
	// Blob is the root URI of the run's blob store (file:///… or s3://bucket/prefix).
	Blob         string `json:"blob"`
	BlobRegion   string `json:"blob_region,omitempty"`
	BlobEndpoint string `json:"blob_endpoint,omitempty"`
	// PSStore lists the psstore shard addresses; Token authenticates to them.
	PSStore []string `json:"psstore,omitempty"`
	Token   string   `json:"token,omitempty"`
	// PSStoreCA is the PEM certificate authority of TLS shards (the backend's
	// psstore_ca, read by the client); empty dials plaintext.
	PSStoreCA string `json:"psstore_ca,omitempty"`
	// PSStoreReplicas is the number of shards holding each key range (0: the
	// client's default, 2; 1 for in-process shards, which die together).
	PSStoreReplicas int `json:"psstore_replicas,omitempty"`
}

// Result is what a handler returns for a Task.
type Result struct {
	Output  json.RawMessage    `json:"output,omitempty"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// Yield reports that a long-running task reached its lifetime before finishing;
	// the runner relaunches it as the next generation with Task.Resume = Resume.
	Yield  bool            `json:"yield,omitempty"`
	Resume json.RawMessage `json:"resume,omitempty"`
	// ColdStart is set by a function runtime on the first invocation of its
	// process: the time from the process's start to the invocation (the
	// backend's calibration records it; Lambda's own Init Duration wins).
	ColdStart time.Duration `json:"cold_start_ns,omitempty"`
}

// Env is what a handler may use inside its function. Implementations are built from
// a Task's TaskEnv by the backend; handlers must not keep state between invocations
// beyond caches that are safe to lose.
type Env interface {
	// Logger logs to the function's log (the Lambda log tail, or the apply's log).
	Logger() *slog.Logger
	// Progress reports work done inside the task; best effort (dropped on Lambda).
	Progress(done, total int64)
	Services
}

// Handler runs one task kind. It must honour ctx (cancelled at the deadline or when
// the run stops), return an error that says what failed, and write outputs only under
// task.OutputPrefix.
type Handler func(ctx context.Context, env Env, task *Task) (*Result, error)

// DecodeParams unmarshals task.Params into v with a message naming the task.
func (t *Task) DecodeParams(v any) error {
	if err := json.Unmarshal(t.Params, v); err != nil {
		return fmt.Errorf("task %s: bad parameters: %w", t.Name(), err)
	}
	return nil
}

// Name identifies the task in messages: stage/wave[index] with its attempt and
// generation when they are not the first.
func (t *Task) Name() string {
	s := fmt.Sprintf("%s/%s[%d]", t.Stage, t.Wave, t.Index)
	if t.Generation > 0 {
		s += fmt.Sprintf(" gen %d", t.Generation)
	}
	if t.Attempt > 0 {
		s += fmt.Sprintf(" attempt %d", t.Attempt+1)
	}
	return s
}

// SetParams marshals v into t.Params.
func (t *Task) SetParams(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode parameters of %s: %w", t.Kind, err)
	}
	t.Params = b
	return nil
}

// CheckSize refuses a document larger than MaxPayload, naming what it is.
func CheckSize(what string, doc []byte) error {
	if len(doc) > MaxPayload {
		return fmt.Errorf("%s is %d bytes, over the %d-byte limit: put bulk data in the blob store and pass its key", what, len(doc), MaxPayload)
	}
	return nil
}

// HandOverGrace is how long past its deadline a long-running task with left time to
// run may take to hand over to its next generation: a tenth of it, between 100 ms and
// 30 s. The runner waits that long, and the Lambda function lets its handler use it.
func HandOverGrace(left time.Duration) time.Duration {
	return min(max(left/10, 100*time.Millisecond), 30*time.Second)
}
