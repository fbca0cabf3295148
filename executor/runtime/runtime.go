// Package runtime assembles everything one run needs in one place: the backend
// (each backend package decodes its own block), the environment every task
// receives, the blob store, psstore — started in-process or dialled — and the
// Pricing that turns what the run used into dollars, with one Close.
//
// The CLI and the tests get runtimes only from here (the test kit,
// runtime/runtimetest, is built on Open), so what the tests exercise is the
// assembly the binary ships.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/stratus-ml/stratus/executor"
	lambdabe "github.com/stratus-ml/stratus/executor/lambda"
	"github.com/stratus-ml/stratus/executor/local"
	"github.com/stratus-ml/stratus/internal/pricing"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/taskenv"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/psstore"
	"github.com/stratus-ml/stratus/state/sharedcache"
)

// EnvToken names the environment variable holding the token of remote psstore
// shards (the --token they were started with).
const EnvToken = "STRATUS_PSSTORE_TOKEN"

// Options configure Open.
type Options struct {
	// Registry holds the task handlers functions of the local backend run
	// (builtin.Registry, or one with test operators). Required.
	Registry *operators.Registry
	// StateDir is the pipeline's .stratus directory: the default blob store and the
	// in-process shards' data live under it. Required.
	StateDir string
	// Backend overrides the pipeline's backend type ("local" or "lambda"; the
	// -backend flag). Empty keeps the pipeline's.
	Backend string
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string

	// Configure, when set, adjusts the decoded settings before anything starts (the
	// test kit sizes its backends with it).
	Configure func(*Settings)
	// WrapBackend, when set, wraps the backend (tests inject faults with it).
	WrapBackend func(executor.Backend) executor.Backend
	// BlobRegion and BlobEndpoint point an s3:// blob store of the local backend at
	// an S3-compatible server (the tests' MinIO).
	BlobRegion, BlobEndpoint string
	// PSStore, when set, are shards the local backend dials (with PSStoreToken and
	// PSStoreReplicas) instead of starting its own: tests that share one cluster
	// among several applies.
	PSStore         []string
	PSStoreToken    string
	PSStoreReplicas int
}

// Runtime is what an apply runs on. Build one with Open; Close releases it.
type Runtime struct {
	// Settings are the effective backend settings (the override applied).
	Settings *Settings
	// Backend runs task attempts.
	Backend executor.Backend
	// TaskEnv is what every task receives: blob store root, psstore shards, token.
	TaskEnv operators.TaskEnv
	// Services are the run's stores as coordinators reach them.
	Services operators.Services
	// TaskTimeout bounds one attempt; Lifetime is the function lifetime of
	// long-running tasks.
	TaskTimeout, Lifetime time.Duration
	// Pricing prices what the run uses; MemoryMB is each function's memory.
	Pricing  pricing.Pricing
	MemoryMB int
	// Shared is the pipeline's shared stage cache, or nil: the one the plan
	// looked its stages up in (Plan.SharedCache), else SharedCache's.
	Shared *sharedcache.Cache

	closers []func() error
}

// Open assembles the runtime plan p runs on. The psstore start-up policy lives
// here and nowhere else:
//
//   - shards named by the backend block are dialled, with their token from
//     STRATUS_PSSTORE_TOKEN;
//   - otherwise, on the local backend, when a stage that will run uses psstore,
//     shards are started in this process with their data under StateDir/psstore,
//     so an interrupted training resumes from its last checkpoint;
//   - otherwise a Lambda backend (real or emulated: the functions share nothing
//     with this process but the bucket and the shards) has nowhere to keep models,
//     which is an error that says what to run.
func Open(ctx context.Context, p *planner.Plan, o Options) (*Runtime, error) {
	if o.Registry == nil || o.StateDir == "" {
		return nil, errors.New("runtime.Open: Registry and StateDir are required")
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	s, diags := SettingsOf(p.Config)
	if diags.HasErrors() {
		return nil, diags
	}
	s, err := s.override(o.Backend)
	if err != nil {
		return nil, err
	}
	if o.Configure != nil {
		o.Configure(s)
	}
	r := &Runtime{Settings: s}
	envs := taskenv.New()
	r.closers = append(r.closers, envs.Close)
	startLocal := 0 // shards to start in-process, if a stage needs them
	switch s.Type {
	case "local":
		lc := s.Local
		// Shards and memory left to the planner are what it chose.
		if n := p.PlannedShards(); lc.ShardsAuto && n > 0 {
			lc.PSStoreShards = n
		}
		if lc.MemoryAuto && p.MemoryMB > 0 {
			lc.MemoryMB = p.MemoryMB
		}
		be := local.New(o.Registry, envs, local.Options{MaxConcurrency: lc.MaxConcurrency, MemoryMB: lc.MemoryMB, KillEvery: lc.KillEveryD})
		r.setBackend(be, o.WrapBackend)
		r.TaskEnv = operators.TaskEnv{Blob: s.BlobRoot(p.Config, o.StateDir), BlobRegion: o.BlobRegion, BlobEndpoint: o.BlobEndpoint,
			PSStore: o.PSStore, Token: o.PSStoreToken, PSStoreReplicas: o.PSStoreReplicas}
		r.TaskTimeout, r.Lifetime, r.MemoryMB = lc.TaskTimeoutD, lc.LifetimeD, lc.MemoryMB
		r.Pricing = pricing.Default()
		startLocal = lc.PSStoreShards
	case "lambda":
		// Emulators are the real mode with other endpoints: the same bucket and
		// shards of the backend block, only the invoke URLs differ.
		if !s.Declared {
			r.Close()
			return nil, errors.New("-backend lambda needs a backend \"lambda\" block in the pipeline (function, bucket, psstore); see README.md, On AWS Lambda")
		}
		lc := s.Lambda
		endpoints := lc.Endpoints
		if env := lambdabe.EndpointsFromEnv(); len(env) > 0 {
			endpoints = env
		}
		be, err := lambdabe.New(ctx, lambdabe.Options{
			Function:        lc.Function,
			Region:          lc.Region,
			MemoryMB:        lc.MemoryMB,
			Endpoints:       endpoints,
			MaxConcurrency:  lc.MaxConcurrency,
			FunctionTimeout: lc.TimeoutD,
		})
		if err != nil {
			r.Close()
			return nil, err
		}
		r.setBackend(be, o.WrapBackend)
		// An attempt may use the whole function timeout; the runner then gives up.
		r.TaskTimeout, r.Lifetime, r.MemoryMB = lc.TimeoutD+10*time.Second, lc.LifetimeD, lc.MemoryMB
		if r.Pricing, err = pricing.For(lc.Region, lc.Architecture); err != nil {
			r.Close()
			return nil, err
		}
		r.Pricing.HostPerHour = lc.PSStoreHourlyUSD
		r.TaskEnv = operators.TaskEnv{Blob: s.BlobRoot(p.Config, o.StateDir), BlobRegion: lc.Region, BlobEndpoint: lc.S3Endpoint, PSStore: lc.PSStore}
		if r.TaskEnv.PSStoreCA, err = lc.CAPEM(p.Config.Dir); err != nil {
			r.Close()
			return nil, err
		}
	}
	switch {
	case len(r.TaskEnv.PSStore) > 0 && r.TaskEnv.Token != "":
	case len(r.TaskEnv.PSStore) > 0:
		r.TaskEnv.Token = o.Getenv(EnvToken)
		if r.TaskEnv.Token == "" {
			r.Close()
			return nil, fmt.Errorf("the backend's psstore shards need their token in %s (the --token they were started with)", EnvToken)
		}
	case !NeedsPSStore(p):
	case startLocal > 0:
		if err := r.startPSStore(ctx, o.StateDir, startLocal); err != nil {
			r.Close()
			return nil, err
		}
	default:
		r.Close()
		return nil, errors.New("training on Lambda needs psstore shards reachable from the functions: run `stratus psstore serve` on a host and list it in the backend block: psstore = [\"host:port\"]")
	}
	r.Services = envs.Services(r.TaskEnv)
	if sc, ok := p.SharedCache.(*sharedcache.Cache); ok && sc != nil {
		r.Shared = sc // the one the plan looked its stages up in
	} else if r.Shared, err = SharedCache(ctx, p.Config); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Runtime) setBackend(be executor.Backend, wrap func(executor.Backend) executor.Backend) {
	r.closers = append(r.closers, be.Close)
	if wrap != nil {
		be = wrap(be)
	}
	r.Backend = be
}

// startPSStore starts the local shards and hands their addresses to tasks.
// They open when first dialled (psstore.StartLocalLazy), which a stage that
// needs them does as it starts; opening them is most of a small apply's
// fixed cost, and a run that never dials them — a small model's full-batch
// training — never pays it. A task's client waits for them, and a failed
// start is its error.
func (r *Runtime) startPSStore(ctx context.Context, stateDir string, n int) error {
	lc, err := startLocalShards(ctx, stateDir, n, true)
	if err != nil {
		return err
	}
	r.TaskEnv.PSStore, r.TaskEnv.Token, r.TaskEnv.PSStoreReplicas = lc.Addrs(), lc.Token(), 1 // in-process shards die together: no replicas
	r.closers = append(r.closers, lc.Close)
	return nil
}

// NeedsPSStore reports whether a stage that will run uses psstore.
func NeedsPSStore(p *planner.Plan) bool { return planner.NeedsPSStore(p) }

// ApplyOptions returns the executor options this runtime provides — backend, task
// environment, services, timeouts, pricing — for the caller to complete with the
// plan, state, registry, observer and retry policy.
func (r *Runtime) ApplyOptions() executor.Options {
	o := executor.Options{
		Backend:     r.Backend,
		TaskEnv:     r.TaskEnv,
		Services:    r.Services,
		TaskTimeout: r.TaskTimeout,
		Lifetime:    r.Lifetime,
		Pricing:     r.Pricing,
		MemoryMB:    r.MemoryMB,
	}
	if r.Shared != nil {
		o.Shared = r.Shared
	}
	if r.Settings != nil && r.Settings.Type == "lambda" {
		o.PSStoreHosts = r.PSStoreHosts
	}
	return o
}

// PSStoreHosts counts the hosts of the psstore cluster the run uses: the
// members of its shard map (a cluster grows and shrinks; the backend block
// lists only seeds), or the seeds when the map cannot be read. 0 without
// psstore.
func (r *Runtime) PSStoreHosts(ctx context.Context) int {
	if len(r.TaskEnv.PSStore) == 0 || r.Services == nil {
		return len(r.TaskEnv.PSStore)
	}
	c, err := r.Services.PSStore(ctx)
	if err != nil {
		return len(r.TaskEnv.PSStore)
	}
	if m := c.Map(); m != nil && len(m.Members) > 0 {
		return len(m.Members)
	}
	return len(r.TaskEnv.PSStore)
}

// Close releases everything Open started, last started first, and returns the
// first error. It is safe to call more than once.
func (r *Runtime) Close() error {
	var first error
	for i := len(r.closers) - 1; i >= 0; i-- {
		if err := r.closers[i](); err != nil && first == nil {
			first = err
		}
	}
	r.closers = nil
	return first
}

// LocalShardsDir is where the local backend's n in-process shards keep their data.
func LocalShardsDir(stateDir string, n int) string {
	return filepath.Join(stateDir, "psstore", fmt.Sprintf("%d-shards", n))
}

// StartLocalShards starts n in-process psstore shards on 127.0.0.1 with a fresh
// token and their data in LocalShardsDir (models are checkpointed there, so an
// interrupted training resumes). The caller closes the cluster.
func StartLocalShards(ctx context.Context, stateDir string, n int) (*psstore.LocalCluster, error) {
	return startLocalShards(ctx, stateDir, n, false)
}

func startLocalShards(ctx context.Context, stateDir string, n int, async bool) (*psstore.LocalCluster, error) {
	start := psstore.StartLocal
	if async {
		start = psstore.StartLocalLazy
	}
	lc, err := start(context.WithoutCancel(ctx), n, LocalShardsDir(stateDir, n), "", func(o *psstore.ServerOptions) {
		o.Logf = func(string, ...any) {}
	})
	if err != nil {
		return nil, fmt.Errorf("start psstore shards: %w", err)
	}
	return lc, nil
}
