package main

import (
	"context"
	"fmt"
	"time"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/local"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/taskenv"
)

// runtime is what an apply runs on: a backend and the environment tasks receive.
type runtime struct {
	backend     executor.Backend
	env         operators.TaskEnv
	services    operators.Services
	taskTimeout time.Duration
	lifetime    time.Duration
	price       float64
	closers     []func() error
}

func (r *runtime) Close() error {
	var first error
	for i := len(r.closers) - 1; i >= 0; i-- {
		if err := r.closers[i](); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// newRuntime sets up the backend the pipeline (or -backend) asks for.
func (c *cli) newRuntime(ctx context.Context, cfg *dsl.Config, dir, override string) (*runtime, error) {
	kind, err := pipelineBackend(cfg, override)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "local":
		lb := cfg.Backend.Local
		if cfg.Backend.Type != "local" {
			lb = dsl.LocalBackend{}
			lb = defaultLocal(lb)
		}
		envs := taskenv.New()
		be := local.New(registry, envs, local.Options{MaxConcurrency: lb.MaxConcurrency, MemoryMB: lb.MemoryMB})
		te := operators.TaskEnv{Blob: cfg.BlobURI(absDir(stateDir(dir)))}
		rt := &runtime{
			backend:     be,
			env:         te,
			services:    envs.Services(te),
			taskTimeout: lb.TaskTimeoutD,
			lifetime:    lb.LifetimeD,
			price:       executor.PriceGBSecondARM,
		}
		rt.closers = append(rt.closers, be.Close)
		return rt, nil
	case "lambda":
		return c.lambdaRuntime(ctx, cfg, dir)
	default:
		return nil, fmt.Errorf("%w yet", errNoLambda)
	}
}

// defaultLocal fills a local backend's defaults, for -backend local on a pipeline
// that declares another backend.
func defaultLocal(l dsl.LocalBackend) dsl.LocalBackend {
	if l.MemoryMB == 0 {
		l.MemoryMB = dsl.DefaultMemoryMB
	}
	if l.LifetimeD == 0 {
		l.LifetimeD = dsl.DefaultLambdaCap
	}
	if l.TaskTimeoutD == 0 {
		l.TaskTimeoutD = l.LifetimeD + time.Minute
	}
	return l
}
