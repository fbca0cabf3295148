package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/local"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/taskenv"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/psstore"
)

// runtime is what an apply runs on: a backend and the environment tasks receive.
type runtime struct {
	backend     executor.Backend
	env         operators.TaskEnv
	services    operators.Services
	taskTimeout time.Duration
	lifetime    time.Duration
	price       float64
	memoryMB    int
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
func (c *cli) newRuntime(ctx context.Context, p *planner.Plan, dir, override string) (*runtime, error) {
	cfg := p.Config
	kind, err := pipelineBackend(cfg, override)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "local":
		lb := cfg.Backend.Local
		if cfg.Backend.Type != "local" {
			lb = dsl.LocalBackend{}
			lb.ApplyDefaults()
		}
		envs := taskenv.New()
		be := local.New(registry, envs, local.Options{MaxConcurrency: lb.MaxConcurrency, MemoryMB: lb.MemoryMB, KillEvery: lb.KillEveryD})
		te := operators.TaskEnv{Blob: cfg.BlobURI(absDir(stateDir(dir)))}
		rt := &runtime{
			backend:     be,
			env:         te,
			services:    envs.Services(te),
			taskTimeout: lb.TaskTimeoutD,
			lifetime:    lb.LifetimeD,
			price:       executor.PriceGBSecondARM,
			memoryMB:    lb.MemoryMB,
		}
		rt.closers = append(rt.closers, envs.Close, be.Close)
		if needsPSStore(p) {
			if err := rt.startPSStore(ctx, dir, lb.PSStoreShards); err != nil {
				rt.Close()
				return nil, err
			}
			rt.services = envs.Services(rt.env)
		}
		return rt, nil
	default: // "lambda": pipelineBackend allows nothing else
		return c.lambdaRuntime(ctx, p, dir)
	}
}

// needsPSStore reports whether a stage that will run uses psstore.
func needsPSStore(p *planner.Plan) bool {
	for _, s := range p.Stages {
		if s.Action != planner.Cached && s.Node.Stage.Schema.UsesPSStore {
			return true
		}
	}
	return false
}

// startPSStore starts n in-process psstore shards on 127.0.0.1 with a fresh token,
// their data in .stratus/psstore (models are checkpointed there, so an interrupted
// training run resumes from its last checkpoint), and hands their addresses to tasks.
func (r *runtime) startPSStore(ctx context.Context, dir string, n int) error {
	if n < 1 {
		n = dsl.DefaultShards
	}
	data := filepath.Join(stateDir(dir), "psstore", fmt.Sprintf("%d-shards", n))
	lc, err := psstore.StartLocal(context.WithoutCancel(ctx), n, data, "", func(o *psstore.ServerOptions) {
		o.Logf = func(string, ...any) {}
	})
	if err != nil {
		return fmt.Errorf("start psstore shards: %w", err)
	}
	r.env.PSStore, r.env.Token, r.env.PSStoreReplicas = lc.Addrs(), lc.Token(), 1 // in-process shards die together: no replicas
	r.closers = append(r.closers, lc.Close)
	return nil
}
