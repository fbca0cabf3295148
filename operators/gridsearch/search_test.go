package gridsearch_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/stratus-ml/stratus/psstore"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/executortest"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
	"github.com/stratus-ml/stratus/operators"
)

// running matches the event of trial tid RUNNING after its first evaluation.
func running(tid string) func(executor.Event) bool {
	return func(e executor.Event) bool {
		te, ok := e.Trial()
		return ok && te.ID == tid && te.Status == operators.TrialRunning && te.Metrics.Iterations > 0
	}
}

// TestKillTrials kills a running trial through the router, then kills the rest
// with kill-all: the killed trials are KILLED in the outputs and the state, and the
// stage completes with the trial that finished.
func TestKillTrials(t *testing.T) {
	h := runtimetest.New(t, a9aPipeline(t, "  epochs = 1\n  eval_interval = \"100ms\"\n  timeout = \"2m\"", `
grid_search "tune" {
  train        = train.base
  grid         = { epochs = [2, 1000, 999, 998] }
  max_parallel = 2
}
output "best" { value = grid_search.tune.best.id }
`))
	trial := func(epochs int64) string { return id(map[string]cty.Value{"epochs": cty.NumberIntVal(epochs)}) }
	short, long, next1, next2 := trial(2), trial(1000), trial(999), trial(998)
	router := executor.NewRouter()
	watch := &executortest.Recorder{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	applied := make(chan error, 1)
	var sum *executor.Summary
	go func() {
		var err error
		sum, _, err = apply(ctx, h, runOpts{router: router, observer: watch})
		applied <- err
	}()
	send := func(op, target string) error {
		return router.Send(ctx, "grid_search.tune", operators.Command{Op: op, Target: target})
	}

	at := watch.Wait(t, 0, applied, "the long trial ran", running(long))
	if err := send("kill", long); err != nil {
		t.Fatalf("kill %s: %v", long, err)
	}
	if err := send("kill", long); err == nil || !strings.Contains(err.Error(), long) {
		t.Errorf("second kill of %s: %v, want an error naming it", long, err)
	}
	if err := send("kill", "t-00000000"); err == nil || !strings.Contains(err.Error(), `no trial "t-00000000"`) {
		t.Errorf("kill of an unknown trial: %v", err)
	}
	if err := send("pause", ""); err == nil || !strings.Contains(err.Error(), "kill-all") {
		t.Errorf("unknown command: %v", err)
	}
	// The short trial finishes and the long one's workers go to the queued trials.
	watch.Wait(t, at, applied, "the killed trial's slot was reused", running(next2))
	if err := send("kill-all", ""); err != nil {
		t.Fatalf("kill-all: %v", err)
	}
	if err := <-applied; err != nil {
		t.Fatalf("apply: %v\n%s", err, stageErrors(sum))
	}

	out := h.Output("grid_search.tune")
	ts := trials(t, out)
	if s := ts[short].GetAttr("status").AsString(); s != string(operators.TrialDone) {
		t.Errorf("short trial %s: %s", short, s)
	}
	for _, k := range []string{long, next1, next2} {
		tr := ts[k]
		if s, r := tr.GetAttr("status").AsString(), tr.GetAttr("reason").AsString(); s != string(operators.TrialKilled) || r != operators.ReasonKilled {
			t.Errorf("trial %s: %s (%s), want KILLED (killed by user)", k, s, r)
		}
		if it := num(tr.GetAttr("metrics").GetAttr("iterations")); it >= 999*32561/100 {
			t.Errorf("killed trial %s ran all its %g iterations", k, it)
		}
	}
	if got := sum.Outputs["best"].AsString(); got != short {
		t.Errorf("best = %s, want the finished trial %s", got, short)
	}
	// The state's series records the kills.
	seqs := statuses(seriesEvents(t, h, "grid_search.tune", "trial"))
	for _, k := range []string{long, next1, next2} {
		if got := strings.Join(seqs[k], " "); got != "QUEUED RUNNING KILLED" {
			t.Errorf("trial %s went %s in the state", k, got)
		}
	}
}

func stageErrors(sum *executor.Summary) string {
	if sum == nil {
		return ""
	}
	var b strings.Builder
	for _, s := range sum.Stages {
		if s.Error != "" {
			b.WriteString(s.Address + ": " + s.Error + "\n")
		}
	}
	return b.String()
}

// trainRuns counts the trials an apply trained: train.Run's workers waves.
func trainRuns(rec *executortest.Recorder) []string {
	var out []string
	for _, e := range rec.Events() {
		if e.Type == executor.WaveStarted && e.Stage == "grid_search.tune" && strings.HasPrefix(e.Wave, "workers-") {
			out = append(out, strings.TrimPrefix(e.Wave, "workers-"))
		}
	}
	return out
}

// TestGrowGridRerunsOnlyNewTrials applies a grid, then the same grid reordered with
// one value more: only the new trial trains; the others are reused from the trial
// cache with their results. A change that keeps every trial (max_parallel) trains
// none. The metric here is auc, maximised.
func TestGrowGridRerunsOnlyNewTrials(t *testing.T) {
	search := func(grid string, parallel int) string {
		return a9aPipeline(t, "  epochs = 2\n  eval_interval = \"100ms\"", `
grid_search "tune" {
  train        = train.base
  grid         = `+grid+`
  metric       = "auc"
  max_parallel = `+string(rune('0'+parallel))+`
}
`)
	}
	h := runtimetest.New(t, search(`{ learning_rate = [0.1, 0.5], minibatch = [100] }`, 2))
	_, rec := mustApply(t, h, runOpts{})
	if got := trainRuns(rec); len(got) != 2 {
		t.Fatalf("first apply trained %v, want 2 trials", got)
	}
	first := trials(t, h.Output("grid_search.tune"))

	h.Write("main.hcl", search(`{ minibatch = [100], learning_rate = [0.5, 0.05, 0.1] }`, 2))
	p := h.MustPlan()
	if a := p.Stage("grid_search.tune").Action; a != "rerun" {
		t.Fatalf("grown grid planned as %s, want rerun", a)
	}
	sum, rec, err := apply(context.Background(), h, runOpts{})
	if err != nil {
		t.Fatalf("%v\n%s", err, stageErrors(sum))
	}
	newID := id(map[string]cty.Value{"learning_rate": lr(0.05), "minibatch": cty.NumberIntVal(100)})
	if got := trainRuns(rec); len(got) != 1 || got[0] != newID {
		t.Fatalf("grown grid trained %v, want only the new trial %s", got, newID)
	}
	out := h.Output("grid_search.tune")
	second := trials(t, out)
	if len(second) != 3 {
		t.Fatalf("%d trials after growing the grid", len(second))
	}
	for k, tr := range first {
		again := second[k]
		if again == cty.NilVal || !again.GetAttr("metrics").RawEquals(tr.GetAttr("metrics")) || !again.GetAttr("model").RawEquals(tr.GetAttr("model")) {
			t.Errorf("trial %s: first %s, reused %s", k, tr.GoString(), again.GoString())
		}
	}
	cached := map[string]bool{}
	for _, e := range rec.Events() {
		if te, ok := e.Trial(); ok && te.Cached && te.Status == operators.TrialDone {
			cached[te.ID] = true
		}
	}
	if len(cached) != 2 || cached[newID] {
		t.Errorf("trials reported DONE (cached): %v", cached)
	}
	// The best by auc, maximised.
	best := out.GetAttr("best")
	for k, tr := range second {
		if num(tr.GetAttr("metrics").GetAttr("auc")) > num(best.GetAttr("metrics").GetAttr("auc")) {
			t.Errorf("trial %s has a higher auc than the best %s", k, best.GetAttr("id").AsString())
		}
	}

	// Another max_parallel reruns the stage, and trains nothing.
	h.Write("main.hcl", search(`{ minibatch = [100], learning_rate = [0.5, 0.05, 0.1] }`, 3))
	_, rec = mustApply(t, h, runOpts{})
	if got := trainRuns(rec); len(got) != 0 {
		t.Errorf("max_parallel change trained %v", got)
	}
}

// maxRunning replays a stage's trial events and returns the most trials RUNNING at
// once.
func maxRunning(events []operators.Event) int {
	status := map[string]operators.TrialStatus{}
	n, most := 0, 0
	for _, e := range events {
		te, ok := operators.DecodeTrial(e)
		if !ok {
			continue
		}
		id, s := te.ID, te.Status
		if status[id] == s {
			continue
		}
		if s == operators.TrialRunning {
			n++
		} else if status[id] == operators.TrialRunning {
			n--
		}
		status[id] = s
		most = max(most, n)
	}
	return most
}

// TestRandomSearchSharesWorkers runs a random search twice with the same seed (the
// same trials) and checks the trials share the worker budget and the backend's
// capacity: with 2 workers each, a budget of 2 runs one trial at a time; 7 slots
// run at most two (each needs its workers and an evaluator).
func TestRandomSearchSharesWorkers(t *testing.T) {
	src := func(budget string) string {
		return a9aPipeline(t, "  epochs = 1\n  eval_interval = \"100ms\"", `
grid_search "tune" {
  train        = train.base
  max_parallel = 4
  `+budget+`
  random {
    samples = 5
    seed    = 42
    params  = {
      learning_rate = loguniform(0.01, 1)
      minibatch     = choice([50, 100, 200])
    }
  }
}
`)
	}
	var ids []string
	for _, c := range []struct {
		budget string
		slots  int
		most   int
	}{{"worker_budget = 2", 16, 1}, {"", 7, 2}} {
		h := runtimetest.New(t, src(c.budget))
		mustApply(t, h, runOpts{slots: c.slots})
		ts := trials(t, h.Output("grid_search.tune"))
		var got []string
		for it := h.Output("grid_search.tune").GetAttr("trials").ElementIterator(); it.Next(); {
			_, tr := it.Element()
			got = append(got, tr.GetAttr("id").AsString())
			lrv := num(tr.GetAttr("params").GetAttr("learning_rate"))
			mb := num(tr.GetAttr("params").GetAttr("minibatch"))
			if lrv < 0.01 || lrv > 1 || (mb != 50 && mb != 100 && mb != 200) || tr.GetAttr("status").AsString() != string(operators.TrialDone) {
				t.Errorf("trial %s", tr.GoString())
			}
		}
		if len(ts) != 5 {
			t.Errorf("%d distinct trials of 5 samples", len(ts))
		}
		if ids == nil {
			ids = got
		} else if strings.Join(ids, " ") != strings.Join(got, " ") {
			t.Errorf("seed 42 drew %v, then %v", ids, got)
		}
		if m := maxRunning(seriesEvents(t, h, "grid_search.tune", "trial")); m > c.most || m < 1 {
			t.Errorf("%q with %d slots: %d trials ran at once, want at most %d", c.budget, c.slots, m, c.most)
		}
	}
}

// TestEarlyStoppingRulesEndToEnd runs four sgd trials, two of them with learning
// rates far too small to get anywhere: the median rule and ASHA each stop those,
// and the best trial is one of the others. Two run at a time, the good ones first,
// so each poor trial is judged against the good trials' finished curves rather
// than on how far the trials beside it got in the same wall-clock time: the
// median rule from its first evaluation (a 1ms grace), ASHA at its first rung,
// which the good trials reached (300ms; they train for a second or more). The
// trials run enough epochs (40: about 65,000 iterations, seconds over gRPC; more
// would let the slow learning rates catch up) that a stop, which reaches the workers within a
// few hundred milliseconds, lands well before a poor trial could finish.
func TestEarlyStoppingRulesEndToEnd(t *testing.T) {
	// The workers reach their shards over gRPC, as on Lambda: in-process, a9a
	// trains at 3M examples/s and a poor trial can finish its epochs before the
	// rule's stop (decided at the rung, a few hundred ms in) reaches it.
	t.Setenv(psstore.TransportEnv, "grpc")
	const epochs = 40
	for _, rule := range []string{`rule = "median"
    grace = "1ms"
    min_trials = 2`, `rule = "asha"
    grace = "300ms"
    reduction_factor = 2`} {
		name := strings.Trim(strings.Fields(rule)[2], `"`)
		t.Run(name, func(t *testing.T) {
			h := runtimetest.New(t, a9aPipeline(t, fmt.Sprintf("  epochs = %d\n  eval_interval = \"100ms\"\n  optimizer = \"sgd\"", epochs), `
grid_search "tune" {
  train        = train.base
  grid         = { learning_rate = [0.5, 0.2, 0.0005, 0.0002], minibatch = [20] }
  max_parallel = 2
  early_stop {
    `+rule+`
    interval = "100ms"
  }
}
`))
			_, rec := mustApply(t, h, runOpts{})
			for _, n := range rec.Notes("grid_search.tune") {
				t.Log(n)
			}
			out := h.Output("grid_search.tune")
			ts := trials(t, out)
			for _, rate := range []float64{0.0005, 0.0002} {
				tr := ts[id(map[string]cty.Value{"learning_rate": lr(rate), "minibatch": cty.NumberIntVal(20)})]
				s, r := tr.GetAttr("status").AsString(), tr.GetAttr("reason").AsString()
				if s != string(operators.TrialStopped) || !strings.HasPrefix(r, map[string]string{"median": "median rule", "asha": "asha rung"}[name]) {
					t.Errorf("learning_rate %g: %s (%s), want stopped by the %s rule", rate, s, r, name)
				}
				if it := num(tr.GetAttr("metrics").GetAttr("iterations")); it >= 0.8*epochs*32561/20 {
					t.Errorf("learning_rate %g: stopped after all its %g iterations", rate, it)
				}
			}
			best := out.GetAttr("best")
			if b := num(best.GetAttr("params").GetAttr("learning_rate")); b != 0.5 && b != 0.2 {
				t.Errorf("best learning rate %g", b)
			}
		})
	}
}

// TestBadGridSearch checks configurations that must fail at plan time, with a
// message naming the problem.
func TestBadGridSearch(t *testing.T) {
	for _, c := range []struct{ name, block, want string }{
		{"unknown key", `train = train.base
  grid = { learnin_rate = [0.1] }`, `"learnin_rate" is not an argument of train. Did you mean "learning_rate"?`},
		{"empty list", `train = train.base
  grid = { learning_rate = [] }`, "grid.learning_rate is empty"},
		{"wrong type", `train = train.base
  grid = { minibatch = ["big"] }`, "grid.minibatch[0]: minibatch must be a number"},
		{"bad enum", `train = train.base
  grid = { optimizer = ["adam"] }`, `"adam" is not one of`},
		{"not a train stage", `train = normalize.adult
  grid = { learning_rate = [0.1] }`, "train must name a train stage"},
		{"nothing to search", `train = train.base`, "Nothing to search"},
		{"searched twice", `train = train.base
  grid = { learning_rate = [0.1] }
  random {
    samples = 2
    params  = { learning_rate = loguniform(0.01, 1) }
  }`, "learning_rate is in the grid and in random.params"},
		{"bad distribution", `train = train.base
  random {
    samples = 2
    params  = { optimizer = uniform(0, 1) }
  }`, "uniform(…) samples numbers, but optimizer is a string"},
		{"bad rule", `train = train.base
  grid = { learning_rate = [0.1] }
  early_stop { rule = "hyperband" }`, `"hyperband" is not one of`},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := runtimetest.New(t, a9aPipeline(t, "", "grid_search \"tune\" {\n  "+c.block+"\n}\n"))
			_, diags := h.Plan()
			if !diags.HasErrors() || !strings.Contains(diags.Error(), c.want) {
				t.Errorf("diagnostics %v, want %q", diags, c.want)
			}
		})
	}
}

// TestInterruptedSearchResumes cancels an apply while the second of two trials
// runs, then applies again: the finished trial is reused, the interrupted one
// trains to the end, and the stage completes.
func TestInterruptedSearchResumes(t *testing.T) {
	h := runtimetest.New(t, a9aPipeline(t, "  epochs = 1\n  eval_interval = \"100ms\"", `
grid_search "tune" {
  train        = train.base
  grid         = { epochs = [2, 40] }
  max_parallel = 1
}
`))
	first := id(map[string]cty.Value{"epochs": cty.NumberIntVal(2)})
	second := id(map[string]cty.Value{"epochs": cty.NumberIntVal(40)})
	watch := &executortest.Recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	applied := make(chan error, 1)
	go func() {
		_, _, err := apply(ctx, h, runOpts{observer: watch})
		applied <- err
	}()
	watch.Wait(t, 0, applied, "the second trial ran", running(second))
	cancel()
	if err := <-applied; !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted apply: %v", err)
	}
	if rec, _ := h.State.Stage("grid_search.tune"); rec != nil {
		t.Fatal("interrupted stage recorded")
	}

	sum, rec, err := apply(context.Background(), h, runOpts{})
	if err != nil {
		t.Fatalf("second apply: %v\n%s", err, stageErrors(sum))
	}
	if got := trainRuns(rec); len(got) != 1 || got[0] != second {
		t.Errorf("second apply trained %v, want only %s", got, second)
	}
	ts := trials(t, h.Output("grid_search.tune"))
	for _, k := range []string{first, second} {
		if s := ts[k].GetAttr("status").AsString(); s != string(operators.TrialDone) {
			t.Errorf("trial %s: %s", k, s)
		}
	}
	if it := num(ts[second].GetAttr("metrics").GetAttr("iterations")); it < 40*32561/100*0.95 {
		t.Errorf("resumed trial ran %g iterations, want 40 epochs' worth", it)
	}
}

// TestKillAllThenRerun kills every trial: with nothing to choose from the stage
// fails, saying why. The next apply (same stage key) trains the killed trials
// afresh rather than resuming the killed runs' recorded waves.
func TestKillAllThenRerun(t *testing.T) {
	h := runtimetest.New(t, a9aPipeline(t, "  epochs = 1\n  eval_interval = \"100ms\"", `
grid_search "tune" {
  train        = train.base
  grid         = { epochs = [30, 31] }
  max_parallel = 2
}
`))
	a := id(map[string]cty.Value{"epochs": cty.NumberIntVal(30)})
	b := id(map[string]cty.Value{"epochs": cty.NumberIntVal(31)})
	router := executor.NewRouter()
	watch := &executortest.Recorder{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	applied := make(chan error, 1)
	var sum *executor.Summary
	go func() {
		var err error
		sum, _, err = apply(ctx, h, runOpts{router: router, observer: watch})
		applied <- err
	}()
	watch.Wait(t, 0, applied, "trial a ran", running(a))
	if err := router.Send(ctx, "grid_search.tune", operators.Command{Op: "kill-all"}); err != nil {
		t.Fatal(err)
	}
	if err := <-applied; !errors.Is(err, executor.ErrStagesFailed) {
		t.Fatalf("apply after kill-all: %v, want the stage to fail", err)
	}
	if msg := stageErrors(sum); !strings.Contains(msg, "no trial of 2 left a model to choose from (2 KILLED); see the trials' reasons above") {
		t.Errorf("stage error: %s", msg)
	}

	sum, rec, err := apply(context.Background(), h, runOpts{})
	if err != nil {
		t.Fatalf("rerun: %v\n%s", err, stageErrors(sum))
	}
	runs := trainRuns(rec)
	if len(runs) != 2 {
		t.Fatalf("rerun trained %v, want both trials", runs)
	}
	ts := trials(t, h.Output("grid_search.tune"))
	for _, c := range []struct {
		id     string
		epochs float64
	}{{a, 30}, {b, 31}} {
		tr := ts[c.id]
		if s := tr.GetAttr("status").AsString(); s != string(operators.TrialDone) {
			t.Errorf("trial %s: %s", c.id, s)
		}
		if it := num(tr.GetAttr("metrics").GetAttr("iterations")); it < c.epochs*32561/100*0.95 {
			t.Errorf("trial %s: %g iterations, want %g epochs' worth (a resumed killed run stops early)", c.id, it, c.epochs)
		}
	}
}
