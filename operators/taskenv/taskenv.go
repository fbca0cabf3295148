// Package taskenv builds the Env a task handler runs with from the task's TaskEnv
// alone, caching connections across invocations of one process: the local backend
// shares one Factory among its goroutines, and a Lambda function keeps one across
// warm invocations.
package taskenv

import (
	"context"
	"log/slog"
	"sync"

	"github.com/stratus-ml/stratus/operators"
)

// Factory makes Envs. It is safe for concurrent use.
type Factory struct {
	logger   *slog.Logger
	progress func(t *operators.Task, done, total int64)

	mu sync.Mutex
}

// Option configures a Factory.
type Option func(*Factory)

// WithLogger sets the logger handlers log to.
func WithLogger(l *slog.Logger) Option { return func(f *Factory) { f.logger = l } }

// WithProgress delivers handlers' progress reports.
func WithProgress(fn func(t *operators.Task, done, total int64)) Option {
	return func(f *Factory) { f.progress = fn }
}

// New returns a Factory.
func New(opts ...Option) *Factory {
	f := &Factory{logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Env returns the environment for t.
func (f *Factory) Env(ctx context.Context, t *operators.Task) (operators.Env, error) {
	return &env{f: f, task: t, logger: f.logger.With("task", t.Name())}, nil
}

// Close releases cached connections.
func (f *Factory) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return nil
}

type env struct {
	f      *Factory
	task   *operators.Task
	logger *slog.Logger
}

func (e *env) Logger() *slog.Logger { return e.logger }

func (e *env) Progress(done, total int64) {
	if e.f.progress != nil {
		e.f.progress(e.task, done, total)
	}
}
