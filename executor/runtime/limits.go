package runtime

import (
	"context"
	"fmt"
	"os"
	goruntime "runtime"
	"time"

	"github.com/stratus-ml/stratus/dsl"
	lambdabe "github.com/stratus-ml/stratus/executor/lambda"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/taskenv"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/psstore"
)

// PlanLimits are the limits of the backend cfg runs on (after the -backend
// override) that the planner sizes stages against (planner/sizing.go), and
// whether the function memory is the planner's to choose:
//
//   - local: this machine's cores bound CPU-bound work, the backend's slots
//     (max_concurrency, four per core by default) the functions at once; psstore
//     shards and memory are chosen unless the block sets them.
//   - lambda: the functions at once are max_concurrency when set, else the
//     account's concurrency from GetAccountSettings (falling back, with a note,
//     to planner.DefaultLambdaConcurrency when it cannot be read), or one per
//     emulator endpoint; the shards are the members of the psstore cluster the
//     block's list seeds (its shard map, when it can be read from here with the
//     token in EnvToken; else the list), and the memory is the deployed
//     function's.
func PlanLimits(ctx context.Context, cfg *dsl.Config, override string) (planner.Limits, bool) {
	return planLimits(ctx, cfg, override, true)
}

// OfflineLimits are PlanLimits read without a request, for a command that
// draws actions and needs no sizing (graph): on lambda the account's
// concurrency is assumed (planner.DefaultLambdaConcurrency) unless the block or
// the environment says it, and the shards are the block's list.
func OfflineLimits(cfg *dsl.Config, override string) (planner.Limits, bool) {
	return planLimits(context.Background(), cfg, override, false)
}

// planLimits is PlanLimits; dial says whether it may ask Lambda and the psstore
// cluster.
func planLimits(ctx context.Context, cfg *dsl.Config, override string, dial bool) (planner.Limits, bool) {
	s, diags := SettingsOf(cfg)
	if diags.HasErrors() {
		return planner.Limits{}, false
	}
	s, err := s.override(override)
	if err != nil {
		return planner.Limits{}, false
	}
	if s.Type == "lambda" {
		lc := s.Lambda
		lim := planner.Limits{Backend: "lambda", Shards: len(lc.PSStore), MemoryMB: lc.MemoryMB}
		switch eps := lambdabe.EndpointsFromEnv(); {
		case len(eps) > 0 || len(lc.Endpoints) > 0:
			n := len(lc.Endpoints)
			if len(eps) > 0 {
				n = len(eps) // the environment overrides the block, as in Open
			}
			lim.Functions, lim.Why = n, fmt.Sprintf("%d Lambda emulator endpoints", n)
			lim.HostCores = loopbackCores(eps, lc.Endpoints)
		case lc.MaxConcurrency > 0:
			lim.Functions, lim.Why = lc.MaxConcurrency, fmt.Sprintf("max_concurrency %d", lc.MaxConcurrency)
		case !dial:
			lim.Functions = planner.DefaultLambdaConcurrency
			lim.Why = fmt.Sprintf("Lambda concurrency %d (assumed)", lim.Functions)
		default:
			n, err := lambdabe.AccountConcurrency(ctx, lc.Region)
			if err != nil {
				lim.Functions = planner.DefaultLambdaConcurrency
				lim.Why = fmt.Sprintf("Lambda concurrency %d (assumed)", lim.Functions)
				lim.Note = fmt.Sprintf("Could not read the account's Lambda concurrency (%v); sizing assumes %d. Set max_concurrency in the backend block to say.", err, lim.Functions)
			} else {
				lim.Functions, lim.Why = n, fmt.Sprintf("Lambda account concurrency %d (GetAccountSettings)", n)
			}
		}
		if dial {
			if n := clusterMembers(ctx, lc, cfg.Dir); n > 0 {
				lim.Shards = n // the cluster's members: the block lists only seeds
			}
		}
		if lim.Shards == 0 {
			lim.Shards = 1 // unreachable: lambda training needs listed shards
		}
		return lim, false
	}
	lc := s.Local
	// The cores the local backend's goroutines run on at once: GOMAXPROCS,
	// which Go sets from the CPUs this process may use and its cgroup's
	// quota (the elastic coordinator reads the same: executor/elastic.go).
	cores := goruntime.GOMAXPROCS(0)
	lim := planner.Limits{Backend: "local", Cores: cores, Functions: lc.MaxConcurrency, Why: fmt.Sprintf("local backend: %d cores", cores)}
	if lim.Functions <= 0 {
		lim.Functions = 4 * goruntime.NumCPU() // the backend's default slots (executor/local)
	} else {
		lim.Why += fmt.Sprintf(", max_concurrency %d", lim.Functions)
	}
	if !lc.ShardsAuto {
		lim.Shards = lc.PSStoreShards
	}
	if !lc.MemoryAuto {
		lim.MemoryMB = lc.MemoryMB
	}
	return lim, lc.MemoryAuto
}

// clusterMembers counts the members of the psstore cluster lc's list seeds,
// from its shard map, or returns 0 when the map cannot be read from here (no
// token, or no seed answers within a few seconds).
func clusterMembers(ctx context.Context, lc lambdabe.Config, dir string) int {
	token := os.Getenv(EnvToken)
	if len(lc.PSStore) == 0 || token == "" {
		return 0
	}
	te := operators.TaskEnv{PSStore: lc.PSStore, Token: token}
	var err error
	if te.PSStoreCA, err = lc.CAPEM(dir); err != nil {
		return 0
	}
	opts, err := taskenv.PSStoreOptions(te)
	if err != nil {
		return 0
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := psstore.Dial(cctx, lc.PSStore, append(opts, psstore.WithRetry(psstore.RetryPolicy{Wait: 2 * time.Second}))...)
	if err != nil {
		return 0
	}
	defer c.Close()
	if m := c.Map(); m != nil {
		return len(m.Members)
	}
	return 0
}
