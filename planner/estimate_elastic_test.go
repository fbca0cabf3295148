package planner

import (
	"strings"
	"testing"
)

// elasticDir is a pipeline of one train stage on rows examples with the given
// train arguments (HCL lines).
func elasticDir(t *testing.T, rows int, args string) string {
	t.Helper()
	return pipelineDir(t, map[string]string{
		"main.hcl": "load \"d\" {\n  source = \"data.svm\"\n}\ntrain \"lr\" {\n  input = load.d\n" + args + "\n}\n",
		"data.svm": strings.Repeat("+1 1:0.5 2:0.25 3:1\n", rows),
	})
}

func elasticPlan(t *testing.T, dir string, lim Limits) *StagePlan {
	t.Helper()
	p, diags := Build(t.Context(), load(t, dir), Options{Limits: lim})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return p.Stage("train.lr")
}

func elasticChoice(sp *StagePlan) *Choice {
	for i := range sp.Sizing {
		if sp.Sizing[i].Param == "workers_max" {
			return &sp.Sizing[i]
		}
	}
	return nil
}

// TestElasticRange: a train stage whose workers the planner chose states the
// range elastic training may use — from the planned count to the backend's
// functions beside the evaluator, 8 per psstore member on a remote backend,
// what the budget pays for — and the cost of the most throughout; the
// estimate stays that of the planned count.
func TestElasticRange(t *testing.T) {
	local8 := Limits{Backend: "local", Cores: 8, Functions: 8, Why: "local backend: 8 cores"}
	for _, tc := range []struct {
		name string
		args string
		lim  Limits
		want int      // workers_max; 0: none
		has  []string // substrings of its reason
	}{
		{"sgd on the local backend", `solver = "sgd"`, local8, 7,
			[]string{"from 1, doubling while the held-out loss falls ≥2%/epoch per dollar, halving under 0.5%, undoing a doubling that does not reach 1.5× the examples/s; at most 7 (the backend runs 8 functions at once, one for the evaluator)", "The estimate is at 1 worker(s); at 7 throughout ≈"}},
		{"solver auto on LIBSVM may not be SGD", ``, local8, 7, []string{`if solver "auto" chooses SGD (the data decide): the workers change`}},
		{"SGD arguments make auto SGD", `learning_rate = 0.2`, local8, 7, nil},
		{"lambda: 8 per psstore member", `solver = "sgd"`, Limits{Backend: "lambda", Functions: 100, Shards: 2}, 16, []string{"at most 16 (8 per psstore member, 2 members)"}},
		{"a deadline makes it grow sooner", "solver = \"sgd\"\n  deadline = \"1h\"", local8, 7, []string{"short of the deadline it grows at any gain over 0.5% and does not shrink"}},
		{"two functions leave no room", `solver = "sgd"`, Limits{Backend: "local", Cores: 2, Functions: 2}, 0, nil},
		// The bound the coordinator applies (train.ElasticMax): on the local
		// backend one worker per core but one. On 2 cores the rule grew to 7
		// of 8 slots, and 2 workers ran 4× slower than one.
		{"local: one worker per core but one", `solver = "sgd"`, Limits{Backend: "local", Cores: 4, Functions: 16}, 3,
			[]string{"at most 3 (4 cores, one worker per core but one, which the evaluator and the in-process psstore shards need)"}},
		{"2 cores leave no room", `solver = "sgd"`, Limits{Backend: "local", Cores: 2, Functions: 8}, 0, nil},
		{"lambda emulators on this machine: the concurrency", `solver = "sgd"`, Limits{Backend: "lambda", Functions: 5, HostCores: 2, Shards: 2}, 4, []string{"at most 4 (the backend runs 5 functions at once"}},
		{"fixed workers", "solver = \"sgd\"\n  workers = 2", local8, 0, nil},
		{"lbfgs", `solver = "lbfgs"`, local8, 0, nil},
		{"one epoch", "solver = \"sgd\"\n  epochs = 1", local8, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := elasticPlan(t, elasticDir(t, 1000, tc.args), tc.lim)
			c := elasticChoice(sp)
			if tc.want == 0 {
				if c != nil {
					t.Fatalf("elastic %+v", c)
				}
				return
			}
			if c == nil || c.Value != tc.want || !c.Auto {
				t.Fatalf("workers_max %+v, want %d (sizing %+v)", c, tc.want, sp.Sizing)
			}
			for _, s := range tc.has {
				if !strings.Contains(c.Reason, s) {
					t.Errorf("reason %q lacks %q", c.Reason, s)
				}
			}
			if !strings.HasPrefix(c.String(), "elastic, up to ") {
				t.Errorf("shown as %q", c.String())
			}
		})
	}
}

// TestElasticBudget: the most workers is what the budget pays for throughout;
// the estimate is the planned count's either way. On Lambda emulators sharing
// 2 cores (which bound the estimates, not the range), 7 workers cost 3.5× one
// worker's GB-seconds; a budget between 2 and 3 workers' cost stops the
// range at 2.
func TestElasticBudget(t *testing.T) {
	lim := Limits{Backend: "lambda", HostCores: 2, Functions: 8, Shards: 1, Why: "8 Lambda emulator endpoints"}
	free := elasticPlan(t, elasticDir(t, 100000, `solver = "sgd"`), lim)
	one := free.Estimate.CostUSD
	budget := one * 1.25 // 3 workers on 2 cores: 1.5× the work's function-seconds
	sp := elasticPlan(t, elasticDir(t, 100000, "solver = \"sgd\"\n  budget = \""+FormatUSD(budget)+"\""), lim)
	c := elasticChoice(sp)
	if c == nil || c.Value != 2 || !strings.Contains(c.Reason, "at most 2 (what budget") {
		t.Fatalf("budget %s (one worker %s): %+v", FormatUSD(budget), FormatUSD(one), c)
	}
	if sp.Estimate.Wall != free.Estimate.Wall || sp.Chosen("workers") != 1 {
		t.Errorf("the budget changed the estimate: %s, workers %d; without it %s", sp.Estimate.Wall, sp.Chosen("workers"), free.Estimate.Wall)
	}
}
