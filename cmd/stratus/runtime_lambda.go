package main

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor"
	lambdabe "github.com/stratus-ml/stratus/executor/lambda"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/taskenv"
	"github.com/stratus-ml/stratus/planner"
)

// lambdaRuntime sets up the lambda backend from the pipeline's backend "lambda"
// block. STRATUS_LAMBDA_ENDPOINTS (comma-separated base URLs) overrides the
// block's endpoints, pointing the client at Lambda Runtime Interface Emulators;
// with it, -backend lambda also runs a pipeline without a lambda block, with the
// local blob store (the emulators run on this machine).
func (c *cli) lambdaRuntime(ctx context.Context, p *planner.Plan, dir string) (*runtime, error) {
	cfg := p.Config
	endpoints := lambdabe.EndpointsFromEnv()
	emulated := len(endpoints) > 0
	var lb dsl.LambdaBackend
	if cfg.Backend.Type == "lambda" {
		lb = cfg.Backend.Lambda
		if len(endpoints) == 0 {
			endpoints = lb.Endpoints
		}
	} else if len(endpoints) == 0 {
		return nil, errors.New("-backend lambda needs a backend \"lambda\" block (function, region, bucket), or emulator endpoints in " + lambdabe.EnvEndpoints)
	}
	lb.ApplyDefaults() // a no-op for a decoded block; the defaults for emulators without one
	be, err := lambdabe.New(ctx, lambdabe.Options{
		Function:        lb.Function,
		Region:          lb.Region,
		MemoryMB:        lb.MemoryMB,
		Endpoints:       endpoints,
		MaxConcurrency:  lb.MaxConcurrency,
		FunctionTimeout: lb.TimeoutD,
	})
	if err != nil {
		return nil, err
	}
	price := executor.PriceGBSecondARM
	if lb.Architecture == "x86_64" {
		price = executor.PriceGBSecondX86
	}
	env := operators.TaskEnv{Blob: cfg.BlobURI(absDir(stateDir(dir)))}
	if cfg.Backend.Type == "lambda" {
		env.BlobRegion, env.BlobEndpoint, env.PSStore = lb.Region, lb.S3Endpoint, lb.PSStore
	}
	// Coordinators run here and reach the run's stores directly.
	envs := taskenv.New()
	rt := &runtime{
		backend: be,
		env:     env,
		// An attempt may use the whole function timeout; the runner then gives up.
		taskTimeout: lb.TimeoutD + 10*time.Second,
		lifetime:    lb.LifetimeD,
		price:       price,
		memoryMB:    lb.MemoryMB,
	}
	rt.closers = append(rt.closers, envs.Close, be.Close)
	switch {
	case len(env.PSStore) > 0:
		env.Token = os.Getenv("STRATUS_PSSTORE_TOKEN")
		if env.Token == "" {
			rt.Close()
			return nil, errors.New("the backend's psstore shards need their token in STRATUS_PSSTORE_TOKEN (the --token they were started with)")
		}
		rt.env = env
	case needsPSStore(p) && emulated:
		// Emulators run on this machine: serve them local shards.
		if err := rt.startPSStore(ctx, dir, dsl.DefaultShards); err != nil {
			rt.Close()
			return nil, err
		}
	case needsPSStore(p):
		rt.Close()
		return nil, errors.New("training on Lambda needs psstore shards reachable from the functions: run `stratus psstore serve` on a host and list it in the backend block: psstore = [\"host:port\"]")
	}
	rt.services = envs.Services(rt.env)
	return rt, nil
}
