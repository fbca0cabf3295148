package executor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/executortest"
	"github.com/stratus-ml/stratus/executor/local"
	"github.com/stratus-ml/stratus/executor/testops"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/taskenv"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/state"
)

// harness applies pipelines from a directory against one state store.
type harness struct {
	t       *testing.T
	dir     string
	reg     *operators.Registry
	st      *state.Store
	backend func() executor.Backend
}

func newHarness(t *testing.T, src string) *harness {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(filepath.Join(dir, ".stratus", "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &harness{t: t, dir: dir, reg: testops.Registry(), st: st}
	h.backend = func() executor.Backend {
		return local.New(h.reg, taskenv.New(), local.Options{MaxConcurrency: 8})
	}
	return h
}

func (h *harness) plan() *planner.Plan {
	h.t.Helper()
	cfg, diags := dsl.Load(h.dir, dsl.LoadOptions{Registry: h.reg})
	if diags.HasErrors() {
		h.t.Fatalf("load: %s", diags.Error())
	}
	p, diags := planner.Build(context.Background(), cfg, planner.Options{State: h.st})
	if diags.HasErrors() {
		h.t.Fatalf("plan: %s", diags.Error())
	}
	return p
}

func (h *harness) apply(ctx context.Context, obs executor.Observer) (*executor.Summary, error) {
	h.t.Helper()
	be := h.backend()
	defer be.Close()
	return executor.Apply(ctx, executor.Options{
		Plan: h.plan(), State: h.st, Backend: be, Registry: h.reg, Observer: obs,
		TaskEnv: operators.TaskEnv{Blob: "file://" + filepath.Join(h.dir, ".stratus", "blobs")},
		Retries: 3, TaskTimeout: 2 * time.Second, Lifetime: time.Second, RetryBackoff: time.Millisecond,
	})
}

func num(t *testing.T, v cty.Value) int64 {
	t.Helper()
	i, _ := v.AsBigFloat().Int64()
	return i
}

func TestApplyMapReduceLongRunning(t *testing.T) {
	h := newHarness(t, `
test_map "sq" {
  tasks = 6
}
test_mapreduce "mr" {
  tasks    = 5
  reducers = 3
}
test_longrun "lr" {
  workers  = 2
  steps    = 12
  step     = "5ms"
  lifetime = "30ms"
}
test_map "after" {
  tasks  = 2
  offset = test_map.sq.sum
}
output "sum"   { value = test_map.sq.sum }
output "mr"    { value = test_mapreduce.mr.sum }
output "steps" { value = test_longrun.lr.steps }
output "gens"  { value = test_longrun.lr.generations }
output "after" { value = test_map.after.sum }
`)
	rec := &executortest.Recorder{}
	sum, err := h.apply(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	// 0²+…+5² = 55; map-reduce of i, 2i, 3i for i < 5 = 6·10 = 60.
	if got := num(t, sum.Outputs["sum"]); got != 55 {
		t.Errorf("sum = %d, want 55", got)
	}
	if got := num(t, sum.Outputs["mr"]); got != 60 {
		t.Errorf("map-reduce sum = %d, want 60", got)
	}
	if got := num(t, sum.Outputs["steps"]); got != 24 {
		t.Errorf("long-running steps = %d, want 24", got)
	}
	if got := num(t, sum.Outputs["gens"]); got < 2 {
		t.Errorf("long-running workers ran %d generation(s); lifetime 30ms for 60ms of work needs at least 2", got)
	}
	if rec.Count(executor.TaskRelaunch, "") == 0 {
		t.Error("no relaunch events")
	}
	// after reads sq's output: tasks 55 and 56 → 55² + 56² = 6161.
	if got := num(t, sum.Outputs["after"]); got != 55*55+56*56 {
		t.Errorf("downstream stage saw sum %d", got)
	}

	// A second apply reuses everything.
	rec2 := &executortest.Recorder{}
	sum2, err := h.apply(context.Background(), rec2)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sum2.Stages {
		if s.Action != "cached" {
			t.Errorf("second apply: %s %s, want cached", s.Address, s.Action)
		}
	}
	if rec2.Count(executor.TaskStarted, "") != 0 {
		t.Errorf("second apply started %d tasks", rec2.Count(executor.TaskStarted, ""))
	}
	if got := num(t, sum2.Outputs["after"]); got != 55*55+56*56 {
		t.Errorf("cached outputs: after = %d", got)
	}
}

func TestApplyRetriesAndFaults(t *testing.T) {
	for _, tc := range []struct {
		name, cfg  string
		wantRetry  int
		wantFailed bool
		wantReason string
	}{
		{name: "fail twice", cfg: `fail_times = 2
  fail_index = 1`, wantRetry: 2},
		{name: "panic", cfg: `panic_index = 2`, wantRetry: 1},
		{name: "hang past deadline", cfg: `hang_index = 0
  hang = "1500ms"`, wantRetry: 1},
		{name: "out of retries", cfg: `fail_times = 9
  fail_index = 3`, wantRetry: 3, wantFailed: true, wantReason: "injected failure 4 of 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "test_map \"m\" {\n  tasks = 4\n  "+tc.cfg+"\n  task_timeout = \"300ms\"\n}\n")
			rec := &executortest.Recorder{}
			sum, err := h.apply(context.Background(), rec)
			if tc.wantFailed {
				if !errors.Is(err, executor.ErrStagesFailed) {
					t.Fatalf("err = %v, want stage failure", err)
				}
				if sum.Stages[0].Action != "failed" || !strings.Contains(sum.Stages[0].Error, tc.wantReason) {
					t.Errorf("stage summary %+v lacks %q", sum.Stages[0], tc.wantReason)
				}
				if strings.Count(sum.Stages[0].Error, "attempt ") != 4 {
					t.Errorf("error should keep every attempt's reason:\n%s", sum.Stages[0].Error)
				}
				if rec, _ := h.st.Stage("test_map.m"); rec != nil {
					t.Error("failed stage recorded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := rec.Count(executor.TaskRetried, ""); got != tc.wantRetry {
				t.Errorf("retries = %d, want %d", got, tc.wantRetry)
			}
			if sum.Stages[0].Retries != tc.wantRetry {
				t.Errorf("summary retries = %d", sum.Stages[0].Retries)
			}
		})
	}
}
