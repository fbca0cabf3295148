// Package local is the embedded default backend: each task attempt runs in a
// goroutine of this process, through the same handler registry and the same JSON
// encoding of Task and Result that a Lambda function uses.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/taskenv"
)

// Options configure the backend.
type Options struct {
	// MaxConcurrency bounds attempts in flight; 0 means four per core.
	MaxConcurrency int
	// MemoryMB is the memory each function is billed for in the cost summary.
	MemoryMB int
	// CloseTimeout bounds how long Close waits for abandoned attempts.
	CloseTimeout time.Duration
	// KillEvery, when positive, rehearses churn: each attempt is killed (its context
	// cancelled, its result lost) after a random, exponentially distributed time with
	// this mean, as a provider reclaiming functions would. The runner retries it.
	KillEvery time.Duration
}

// Backend runs tasks on goroutines.
type Backend struct {
	reg  *operators.Registry
	envs *taskenv.Factory
	opts Options
	wg   sync.WaitGroup // every attempt's goroutine, including abandoned ones
}

var _ executor.Backend = (*Backend)(nil)

// New returns a local backend dispatching to reg with environments from envs.
func New(reg *operators.Registry, envs *taskenv.Factory, opts Options) *Backend {
	if opts.MaxConcurrency <= 0 {
		opts.MaxConcurrency = 4 * runtime.NumCPU()
	}
	if opts.MemoryMB <= 0 {
		opts.MemoryMB = executor.DefaultMemoryMB
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 10 * time.Second
	}
	return &Backend{reg: reg, envs: envs, opts: opts}
}

// errKilled is the cause of an attempt killed by KillEvery.
var errKilled = errors.New("function killed (kill_every churn rehearsal)")

// Name is "local".
func (b *Backend) Name() string { return "local" }

// Slots is MaxConcurrency.
func (b *Backend) Slots() int { return b.opts.MaxConcurrency }

// abandonGrace is how long a cancelled attempt's handler may take to return before
// the attempt is abandoned (its goroutine still runs; Close waits for it).
const abandonGrace = 2 * time.Second

// Invoke runs one attempt in a goroutine. It returns when the handler returns, or,
// once ctx ends, when the handler returns within abandonGrace — so the result of a
// handler that finished as the run was cancelled is kept, not run again. A handler
// that ignores cancellation longer keeps running, abandoned, and its late result is
// dropped — as a Lambda function past the client's patience would be. A kill_every
// rehearsal kill returns at once.
func (b *Backend) Invoke(ctx context.Context, t *operators.Task) (*operators.Result, executor.Usage, error) {
	usage := executor.Usage{MemoryMB: b.opts.MemoryMB}
	payload, err := json.Marshal(t)
	if err != nil {
		return nil, usage, fmt.Errorf("encode task %s: %w", t.Name(), err)
	}
	if err := operators.CheckSize("task "+t.Name(), payload); err != nil {
		return nil, usage, err
	}
	var task operators.Task
	if err := json.Unmarshal(payload, &task); err != nil {
		return nil, usage, fmt.Errorf("decode task %s: %w", t.Name(), err)
	}
	type outcome struct {
		res []byte
		err error
	}
	if b.opts.KillEvery > 0 {
		after := time.Duration(rand.ExpFloat64() * float64(b.opts.KillEvery))
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		kill := time.AfterFunc(after, func() { cancel(errKilled) })
		defer kill.Stop()
		defer cancel(nil)
	}
	ch := make(chan outcome, 1)
	start := time.Now()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		env, err := b.envs.Env(ctx, &task)
		if err != nil {
			ch <- outcome{err: fmt.Errorf("set up task environment: %w", err)}
			return
		}
		res, err := b.reg.Dispatch(ctx, env, &task)
		if err != nil {
			ch <- outcome{err: err}
			return
		}
		out, err := json.Marshal(res)
		ch <- outcome{res: out, err: err}
	}()
	finish := func(o outcome) (*operators.Result, executor.Usage, error) {
		usage.Duration = time.Since(start)
		if o.err != nil {
			return nil, usage, o.err
		}
		var res operators.Result
		if err := json.Unmarshal(o.res, &res); err != nil {
			return nil, usage, fmt.Errorf("decode result of %s: %w", t.Name(), err)
		}
		usage.Encoded = o.res
		return &res, usage, nil
	}
	select {
	case o := <-ch:
		return finish(o)
	case <-ctx.Done():
		if errors.Is(context.Cause(ctx), errKilled) {
			usage.Duration = time.Since(start)
			return nil, usage, fmt.Errorf("task %s: %w after %s", t.Name(), errKilled, usage.Duration.Round(time.Millisecond))
		}
		// Cancelled (an interrupt, a failed sibling, a deadline): a handler that
		// honours its context returns at once, and one that had already finished
		// — its side effects done — must have its result recorded, or the next
		// apply runs it again. Only a handler that ignores cancellation for
		// abandonGrace is abandoned.
		grace := time.NewTimer(abandonGrace)
		defer grace.Stop()
		select {
		case o := <-ch:
			return finish(o)
		case <-grace.C:
			usage.Duration = time.Since(start)
			return nil, usage, fmt.Errorf("task %s abandoned: %w", t.Name(), ctx.Err())
		}
	}
}

// Close waits up to CloseTimeout for attempts still running (abandoned ones
// included), then reports how many it left behind.
func (b *Backend) Close() error {
	if !executor.WaitTimeout(&b.wg, b.opts.CloseTimeout) {
		return fmt.Errorf("local backend: tasks still running %s after close (handlers that ignore cancellation)", b.opts.CloseTimeout)
	}
	return b.envs.Close()
}
