package planner

import (
	"strings"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/internal/pricing"
)

// price is the plan's default pricing at 1769 MB, as sizing is called.
func price(fs float64, tasks int) float64 {
	p := pricing.Default()
	return p.Duration(fs*1769/1024) + p.Requests(tasks)
}

func TestSizeWorkers(t *testing.T) {
	const mb = 1 << 20
	local2 := Limits{Backend: "local", Cores: 2, Functions: 8, Why: "local backend: 2 cores"}
	lambda := Limits{Backend: "lambda", Functions: 1000, Shards: 4, Why: "Lambda account concurrency 1000 (GetAccountSettings)"}
	lambdaSmall := Limits{Backend: "lambda", Functions: 10, Shards: 8, Why: "max_concurrency 10"}
	big := trainShape{bytes: 1200 * mb, epochs: 5}
	// The cost and wall time of big on w workers, to set budgets and deadlines
	// between two sizes.
	cost := func(s trainShape, w int) float64 { fs, _ := trainCost(s, w); return price(fs, w+1) }
	wall := func(s trainShape, w int) time.Duration { _, d := trainCost(s, w); return d }

	for _, tc := range []struct {
		name   string
		shape  trainShape
		lim    Limits
		obj    Objective
		want   int
		ok     bool
		reason []string // substrings of the reason
	}{
		{"tiny data gets one worker", trainShape{bytes: 29, epochs: 5}, local2, Objective{}, 1, true,
			[]string{"29 B of training data", "at least 4.0 MB per worker"}},
		{"a9a-sized data gets one worker", trainShape{bytes: 2329875, epochs: 5}, Limits{Functions: 100, Why: "x"}, Objective{}, 1, true,
			[]string{"2.2 MB of training data over ≈1 partitions, at least 4.0 MB per worker"}},
		{"one worker per 4 MB", trainShape{bytes: 10 * mb, epochs: 5}, Limits{Functions: 100, Why: "x"}, Objective{}, 3, true,
			[]string{"10.0 MB of training data over ≈3 partitions"}},
		{"local: one worker per core but one", big, local2, Objective{}, 1, true,
			[]string{"1.2 GB of training data over ≈300 partitions", "local backend: 2 cores, one worker per core but one, which the evaluator and the psstore shards need"}},
		{"local: eight cores", big, Limits{Cores: 8, Functions: 32, Why: "local backend: 8 cores"}, Objective{}, 7, true, nil},
		{"lambda: bounded by the shards", big, lambda, Objective{}, 16, true,
			[]string{"4 psstore shards serve about 4 workers each"}},
		{"lambda: bounded by concurrency, one function for the evaluator", big, lambdaSmall, Objective{}, 9, true,
			[]string{"max_concurrency 10, one for the evaluator"}},
		{"unknown limits: the data decides", big, Limits{}, Objective{}, 300, true, nil},
		{"fastest within a budget", big, lambda, Objective{Budget: (cost(big, 7) + cost(big, 8)) / 2}, 7, true,
			[]string{"the fastest within budget"}},
		{"budget below the cheapest", big, lambda, Objective{Budget: cost(big, 1) / 2}, 1, false,
			[]string{"the cheapest, ≈", "is over budget"}},
		{"cheapest within a deadline", big, lambda, Objective{Deadline: (wall(big, 5) + wall(big, 6)) / 2}, 6, true,
			[]string{"the cheapest within deadline"}},
		{"deadline beyond reach", big, lambda, Objective{Deadline: time.Millisecond}, 16, false,
			[]string{"the fastest, ≈", "misses deadline 1ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := sizeWorkers(tc.shape, tc.lim, tc.obj, price)
			if c.Value != tc.want || ok != tc.ok || c.Param != "workers" || !c.Auto {
				t.Fatalf("sizeWorkers = %+v, %v; want workers %d, ok %v", c, ok, tc.want, tc.ok)
			}
			for _, s := range tc.reason {
				if !strings.Contains(c.Reason, s) {
					t.Errorf("reason %q does not say %q", c.Reason, s)
				}
			}
		})
	}
}

func TestSizeParallel(t *testing.T) {
	for _, tc := range []struct {
		name            string
		trials, workers int
		per             time.Duration
		lim             Limits
		obj             Objective
		want            int
		ok              bool
		reason          string
	}{
		{"all trials when functions allow", 8, 2, time.Second, Limits{Functions: 1000, Why: "acct"}, Objective{}, 8, true, "8 trials"},
		{"functions bound: workers plus an evaluator each", 8, 2, time.Second, Limits{Functions: 10, Why: "max_concurrency 10"}, Objective{}, 3, true, "8 trials of 2 workers and an evaluator; max_concurrency 10"},
		{"local: cores bound", 8, 1, time.Second, Limits{Functions: 16, Cores: 4, Why: "local backend: 4 cores"}, Objective{}, 3, true, "8 trials of 1 workers; local backend: 4 cores, one core for the evaluators and the psstore shards"},
		{"at least one", 8, 4, time.Second, Limits{Functions: 8, Cores: 2, Why: "local backend: 2 cores"}, Objective{}, 1, true, ""},
		{"cheapest within a deadline", 8, 1, time.Second, Limits{Functions: 1000, Why: "acct"}, Objective{Deadline: 2500 * time.Millisecond}, 4, true, "the cheapest within deadline 2.5s"},
		{"a budget does not bound parallelism", 8, 1, time.Second, Limits{Functions: 1000, Why: "acct"}, Objective{Budget: 1e-9}, 8, true, ""},
		{"deadline beyond reach", 8, 1, time.Second, Limits{Functions: 1000, Why: "acct"}, Objective{Deadline: 500 * time.Millisecond}, 8, false, "misses deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := sizeParallel(tc.trials, tc.workers, tc.per, tc.lim, tc.obj)
			if c.Value != tc.want || ok != tc.ok {
				t.Fatalf("sizeParallel = %+v, %v; want %d, %v", c, ok, tc.want, tc.ok)
			}
			if !strings.Contains(c.Reason, tc.reason) {
				t.Errorf("reason %q does not say %q", c.Reason, tc.reason)
			}
		})
	}
}

func TestSizeShards(t *testing.T) {
	for _, tc := range []struct {
		name       string
		workers    int
		model      int64
		cores      int
		want       int
		reasonPart string
	}{
		{"one shard for a few workers", 2, 4 << 18, 2, 1, "at most 2 worker(s) training at once"},
		{"a shard per four workers", 9, 4 << 18, 16, 3, "4 per shard"},
		{"large model, at most MaxAutoShards", 1, 4 << 30, 64, MaxAutoShards, "the largest model holds 4.0 GB, 256.0 MB per shard; at most 8"},
		{"model of two shards", 1, 400 << 20, 64, 2, "the largest model holds 400.0 MB"},
		{"at most one per core", 40, 0, 2, 2, "at most one per core (2)"},
		{"at most MaxAutoShards", 400, 0, 0, MaxAutoShards, "at most 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sizeShards(tc.workers, tc.model, tc.cores)
			if c.Value != tc.want || c.Param != "psstore_shards" {
				t.Fatalf("sizeShards = %+v, want %d", c, tc.want)
			}
			if !strings.Contains(c.Reason, tc.reasonPart) {
				t.Errorf("reason %q does not say %q", c.Reason, tc.reasonPart)
			}
		})
	}
}

func TestSizeMemory(t *testing.T) {
	for _, tc := range []struct {
		name         string
		share, model int64
		want         int
	}{
		{"small: one full vCPU", 1 << 20, 4 << 18, 1769},
		{"a large share needs more, in 64 MB steps", 1 << 30, 0, 3328}, // 256 + 3 × 1024
		{"rounded up to 64 MB", 1<<30 + 1<<20, 0, 3392},                // 256 + 3 × 1025 = 3331
		{"capped at Lambda's largest", 8 << 30, 4 << 30, MaxMemoryMB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sizeMemory(tc.share, tc.model)
			if c.Value != tc.want {
				t.Fatalf("sizeMemory(%d, %d) = %+v, want %d", tc.share, tc.model, c, tc.want)
			}
			if c.Value%64 != 0 && c.Value != 1769 {
				t.Errorf("memory %d is not in 64 MB steps", c.Value)
			}
		})
	}
}

func TestChoiceString(t *testing.T) {
	for _, tc := range []struct {
		c    Choice
		want string
	}{
		{Choice{Param: "workers", Value: 12, Reason: "r"}, "workers 12: r"},
		{Choice{Param: "max_parallel", Value: 3, Reason: "r"}, "max parallel 3: r"},
		{Choice{Param: "psstore_shards", Value: 2, Reason: "r"}, "psstore shards 2: r"},
		{Choice{Param: "memory_mb", Value: 1769, Reason: "r"}, "memory 1769 MB: r"},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.c, got, tc.want)
		}
	}
}
