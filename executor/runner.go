package executor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/stratus-ml/stratus/internal/pricing"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/state"
)

// slots bounds the attempts in flight across every stage of an apply.
type slots chan struct{}

func (s slots) acquire(ctx context.Context) error {
	select {
	case s <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s slots) release() { <-s }

// waveRunner runs the waves of one stage run on the backend. It records each task's
// final result (and each yielded position) in the state under the stage key, so a
// rerun of an interrupted stage skips what already finished.
type waveRunner struct {
	backend     Backend
	slots       slots
	state       *state.Store
	obs         Observer
	stage       string
	operator    string
	key         string
	env         operators.TaskEnv
	retries     int
	taskTimeout time.Duration
	lifetime    time.Duration
	backoff     time.Duration // first retry delay; doubles per attempt, with jitter

	mu        sync.Mutex
	tasks     int // attempts launched
	retried   int
	resumed   int
	gbSeconds float64
	requests  int
	// coldStarts counts the attempts that started a function, and initSeconds
	// sums their cold starts (calibration.go).
	coldStarts  int
	initSeconds float64
	// inflight and inflightSince count the attempts running now and the sum
	// of their start times (Unix seconds), for the cost so far (limits.go).
	inflight      int
	inflightSince float64
}

// TaskError is a task that failed every attempt. Attempts holds each attempt's
// reason, in order.
type TaskError struct {
	Stage    string
	Wave     string
	Index    int
	Attempts []string
	LogTail  string
}

func (e *TaskError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "task %s/%s[%d] failed after %d attempt(s)", e.Stage, e.Wave, e.Index, len(e.Attempts))
	for i, a := range e.Attempts {
		fmt.Fprintf(&b, "\n  attempt %d: %s", i+1, a)
	}
	if e.LogTail != "" {
		b.WriteString("\n  function log (tail):\n")
		for _, l := range strings.Split(strings.TrimRight(e.LogTail, "\n"), "\n") {
			b.WriteString("    " + l + "\n")
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// RunWave runs w and returns one result per task in order. See operators.Stage.
func (r *waveRunner) RunWave(ctx context.Context, w operators.Wave) ([]*operators.Result, error) {
	if w.Name == "" || strings.ContainsAny(w.Name, "\n") {
		return nil, fmt.Errorf("stage %s: wave needs a one-line name", r.stage)
	}
	results := make([]*operators.Result, len(w.Tasks))
	var recs map[int]state.TaskRecord
	if !w.Ephemeral { // never recorded, so never resumed: nothing to look up
		var err error
		if recs, err = r.state.Tasks(r.key, w.Name); err != nil {
			return nil, err
		}
	}
	var onResult sync.Mutex
	deliver := func(i int, res *operators.Result) {
		results[i] = res
		if w.OnResult != nil {
			onResult.Lock()
			w.OnResult(i, res)
			onResult.Unlock()
		}
	}
	type start struct {
		gen    int
		resume json.RawMessage
	}
	starts := make([]start, len(w.Tasks))
	pending := 0
	resumed := 0
	for i := range w.Tasks {
		starts[i] = start{resume: w.Tasks[i].Resume}
		rec, ok := recs[i]
		switch {
		case ok && rec.Final:
			var res operators.Result
			if err := json.Unmarshal(rec.Result, &res); err == nil {
				deliver(i, &res)
				resumed++
				continue
			}
		case ok:
			var res operators.Result
			if err := json.Unmarshal(rec.Result, &res); err == nil {
				starts[i] = start{gen: rec.Generation + 1, resume: res.Resume}
			}
		}
		pending++
	}
	r.mu.Lock()
	r.resumed += resumed
	r.mu.Unlock()
	if !w.Quiet {
		r.obs.Event(Event{Time: time.Now(), Type: WaveStarted, Stage: r.stage, Operator: r.operator, Wave: w.Name, Tasks: len(w.Tasks), Resumed: resumed})
	}
	began := time.Now()

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	for i := range w.Tasks {
		if results[i] != nil {
			continue
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res, err := r.runTask(wctx, &w, i, starts[i].gen, starts[i].resume)
			if err != nil {
				errOnce.Do(func() {
					firstErr = err
					cancel() // one task out of retries fails the wave
				})
				return
			}
			deliver(i, res)
		}(i)
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if !w.Quiet {
		r.obs.Event(Event{Time: time.Now(), Type: WaveFinished, Stage: r.stage, Operator: r.operator, Wave: w.Name, Tasks: len(w.Tasks), Duration: time.Since(began), Error: errString(firstErr)})
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return results, nil
}

// runTask runs one task through its attempts and, for long-running waves, its
// generations, until it returns a final result or runs out of attempts.
func (r *waveRunner) runTask(ctx context.Context, w *operators.Wave, i, gen int, resume json.RawMessage) (*operators.Result, error) {
	spec := w.Tasks[i]
	var reasons []string
	var lastTail string
	for attempt := 0; ; attempt++ {
		if err := r.slots.acquire(ctx); err != nil {
			return nil, err
		}
		t := r.task(w, spec, i, attempt, gen, resume)
		r.obs.Event(Event{Time: time.Now(), Type: TaskStarted, Stage: r.stage, Wave: w.Name, Index: i, Attempt: attempt, Generation: gen})
		began := r.begin()
		res, usage, err := r.invoke(ctx, &t, w.LongRunning)
		r.slots.release()
		r.end(began)
		r.account(usage)
		var doc []byte // the result's JSON, checked and then recorded
		if err == nil {
			doc, err = r.check(w, &t, res, usage.Encoded)
		}
		if err == nil && res.Yield {
			// The function reached its lifetime: relaunch as the next generation from
			// the position it handed over. This is not a failure.
			if perr := r.record(w.Name, i, gen, false, doc); perr != nil {
				return nil, perr
			}
			r.obs.Event(Event{Time: time.Now(), Type: TaskRelaunch, Stage: r.stage, Wave: w.Name, Index: i, Generation: gen + 1, Duration: usage.Duration})
			gen, resume, attempt, reasons = gen+1, res.Resume, -1, nil
			continue
		}
		if err == nil {
			if !w.Ephemeral { // an ephemeral wave is never resumed: nothing to record
				if perr := r.record(w.Name, i, gen, true, doc); perr != nil {
					return nil, perr
				}
			}
			r.obs.Event(Event{Time: time.Now(), Type: TaskFinished, Stage: r.stage, Wave: w.Name, Index: i, Attempt: attempt, Generation: gen, Duration: usage.Duration, Metrics: res.Metrics})
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err() // cancelled: not the task's fault, not retried
		}
		reasons = append(reasons, err.Error())
		if usage.LogTail != "" {
			lastTail = usage.LogTail
		}
		if attempt >= r.retries {
			terr := &TaskError{Stage: r.stage, Wave: w.Name, Index: i, Attempts: reasons, LogTail: lastTail}
			r.obs.Event(Event{Time: time.Now(), Type: TaskFailed, Stage: r.stage, Wave: w.Name, Index: i, Attempt: attempt, Generation: gen, Error: terr.Error()})
			return nil, terr
		}
		r.mu.Lock()
		r.retried++
		r.mu.Unlock()
		r.obs.Event(Event{Time: time.Now(), Type: TaskRetried, Stage: r.stage, Wave: w.Name, Index: i, Attempt: attempt + 1, Generation: gen, Reason: err.Error()})
		if err := sleep(ctx, r.delay(attempt)); err != nil {
			return nil, err
		}
	}
}

// task builds attempt attempt of task i: a fresh output prefix owned by this attempt
// alone, and a deadline from the lifetime (long-running) or the task timeout.
func (r *waveRunner) task(w *operators.Wave, spec operators.Task, i, attempt, gen int, resume json.RawMessage) operators.Task {
	t := spec
	t.Stage, t.StageKey, t.Operator = r.stage, r.key, r.operator
	t.Wave, t.Index, t.Attempt, t.Generation = w.Name, i, attempt, gen
	t.Resume = resume
	t.Env = r.env
	t.OutputPrefix = fmt.Sprintf("tasks/%s/%s/%d/g%d-a%d-%s/", shortKey(r.key), w.Name, i, gen, attempt, nonce())
	d := r.taskTimeout
	if w.LongRunning {
		d = r.lifetime
		if w.Lifetime > 0 {
			d = w.Lifetime
		}
	}
	t.Deadline = time.Now().Add(d)
	return t
}

// invoke runs one attempt under a context that ends a grace period after the
// attempt's deadline: long-running handlers are expected to yield before it.
func (r *waveRunner) invoke(ctx context.Context, t *operators.Task, longRunning bool) (*operators.Result, Usage, error) {
	deadline := t.Deadline
	if longRunning {
		deadline = deadline.Add(operators.HandOverGrace(time.Until(t.Deadline)))
	}
	actx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	start := time.Now()
	res, usage, err := r.backend.Invoke(actx, t)
	if usage.Duration == 0 {
		usage.Duration = time.Since(start)
	}
	if err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %s (deadline %s): %w", time.Since(start).Round(time.Millisecond), t.Deadline.Format(time.TimeOnly), err)
	}
	return res, usage, err
}

// check validates a result — present, small, and yielding only in long-running
// waves — and returns its JSON encoding: encoded, when the backend returned the
// bytes it decoded res from, or res encoded again.
func (r *waveRunner) check(w *operators.Wave, t *operators.Task, res *operators.Result, encoded []byte) ([]byte, error) {
	if res == nil {
		return nil, fmt.Errorf("task %s returned no result", t.Name())
	}
	if res.Yield && !w.LongRunning {
		return nil, fmt.Errorf("task %s yielded, but wave %q is not long-running", t.Name(), w.Name)
	}
	b := encoded
	if b == nil {
		var err error
		if b, err = json.Marshal(res); err != nil {
			return nil, fmt.Errorf("task %s: result does not encode: %w", t.Name(), err)
		}
	}
	return b, operators.CheckSize("result of task "+t.Name(), b)
}

// record saves a task's result (its JSON) under the stage key, for resume.
func (r *waveRunner) record(wave string, i, gen int, final bool, b []byte) error {
	if err := r.state.PutTask(r.key, state.TaskRecord{Wave: wave, Index: i, Final: final, Generation: gen, Result: b}); err != nil {
		return fmt.Errorf("record task %s/%s[%d]: %w", r.stage, wave, i, err)
	}
	return nil
}

// cost is what the stage's attempts so far would cost on Lambda: GB-seconds at
// price, plus the per-request charge. Call with r.mu held.
func (r *waveRunner) cost(p pricing.Pricing) float64 {
	return p.Duration(r.gbSeconds) + p.Requests(r.requests)
}

func (r *waveRunner) account(u Usage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tasks++
	r.requests++
	r.gbSeconds += u.GBSeconds()
	if u.Init > 0 {
		r.coldStarts++
		r.initSeconds += u.Init.Seconds()
	}
}

// delay is the wait before retry attempt+1: exponential from backoff, with full
// jitter, capped at 10 s.
func (r *waveRunner) delay(attempt int) time.Duration {
	d := r.backoff << min(attempt, 10)
	d = min(d, 10*time.Second)
	if d <= 0 {
		return 0
	}
	return d/2 + time.Duration(mrand.Int64N(int64(d/2)+1))
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func shortKey(k string) string {
	if len(k) > 16 {
		return k[:16]
	}
	return k
}

func nonce() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// begin counts an attempt as running from now; end stops counting it.
func (r *waveRunner) begin() float64 {
	now := float64(time.Now().UnixNano()) / 1e9
	r.mu.Lock()
	r.inflight++
	r.inflightSince += now
	r.mu.Unlock()
	return now
}

func (r *waveRunner) end(began float64) {
	r.mu.Lock()
	r.inflight--
	r.inflightSince -= began
	r.mu.Unlock()
}

// running returns the attempts running now and the function-seconds they have
// used so far (not yet billed).
func (r *waveRunner) running(now time.Time) (int, float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := float64(now.UnixNano()) / 1e9
	return r.inflight, max(0, float64(r.inflight)*t-r.inflightSince)
}
