package gridsearch_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/dataset/manifest"
	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/builtin"
	"github.com/stratus-ml/stratus/operators/train"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/state"
)

// a9aPipeline is load → normalize → a base train stage on a9a (with base's extra
// arguments), then extra blocks.
func a9aPipeline(t testing.TB, base, extra string) string {
	return fmt.Sprintf(`
load "adult" {
  source      = %q
  test_source = %q
}
normalize "adult" {
  input  = load.adult
  method = "min_max"
}
train "base" {
  input         = normalize.adult
  workers       = 2
  minibatch     = 100
  learning_rate = 0.1
%s
}
%s
`, testdata(t, "a9a"), testdata(t, "a9a.t"), base, extra)
}

// num is a cty number as a float64 (NaN for null).
func num(v cty.Value) float64 {
	if v.IsNull() {
		return math.NaN()
	}
	f, _ := v.AsBigFloat().Float64()
	return f
}

// trials returns a grid_search output's trials by ID.
func trials(t *testing.T, out cty.Value) map[string]cty.Value {
	t.Helper()
	m := map[string]cty.Value{}
	for it := out.GetAttr("trials").ElementIterator(); it.Next(); {
		_, tr := it.Element()
		for _, a := range []string{"id", "params", "status", "reason", "metrics", "model"} {
			if !tr.Type().HasAttribute(a) {
				t.Fatalf("trial %s has no %s", tr.GoString(), a)
			}
		}
		m[tr.GetAttr("id").AsString()] = tr
	}
	return m
}

// id is the trial ID of params.
func id(params map[string]cty.Value) string { return operators.TrialID(cty.ObjectVal(params)) }

func lr(x float64) cty.Value { return cty.NumberFloatVal(x) }

// seriesEvents returns the stage's recorded events of kind ("" for all).
func seriesEvents(t *testing.T, h *runtimetest.Harness, stage, kind string) []operators.Event {
	t.Helper()
	raw, err := h.State.Series(stage)
	if err != nil {
		t.Fatal(err)
	}
	var out []operators.Event
	for _, r := range raw {
		var e operators.Event
		if err := json.Unmarshal(r, &e); err != nil {
			t.Fatalf("series point %s: %v", r, err)
		}
		if kind == "" || e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// statuses returns the sequence of distinct statuses each trial's events went
// through.
func statuses(events []operators.Event) map[string][]string {
	out := map[string][]string{}
	for _, e := range events {
		te, ok := operators.DecodeTrial(e)
		if !ok {
			continue
		}
		id, s := te.ID, string(te.Status)
		if seq := out[id]; len(seq) == 0 || seq[len(seq)-1] != s {
			out[id] = append(seq, s)
		}
	}
	return out
}

// TestGridSearchA9A runs an 8-trial grid on a9a, two of whose learning rates
// diverge: the threshold rule stops those, the others finish, the best reaches the
// a9a target, the outputs and results table have their shape, the trials' events
// are in the state, and a downstream train stage trains with the best parameters.
func TestGridSearchA9A(t *testing.T) {
	h := runtimetest.New(t, a9aPipeline(t, "  epochs = 10\n  eval_interval = \"100ms\"", `
grid_search "tune" {
  train = train.base
  grid = {
    minibatch     = [20, 100]
    learning_rate = [0.05, 0.1, 0.3, 5000]
  }
  max_parallel = 3
  early_stop {
    rule        = "threshold"
    max_logloss = 2
  }
}
train "final" {
  input         = normalize.adult
  workers       = 2
  minibatch     = grid_search.tune.best.params.minibatch
  learning_rate = grid_search.tune.best.params.learning_rate
  epochs        = 3
  eval_interval = "200ms"
}
output "best"          { value = grid_search.tune.best }
output "best_lr"       { value = grid_search.tune.best.params.learning_rate }
output "final_logloss" { value = train.final.metrics.test_logloss }
`))
	// Plan time: the downstream stage's parameters are unknown until the search ran.
	p := h.MustPlan()
	if fin := p.Stage("train.final"); fin == nil || !strings.Contains(fin.Params["learning_rate"].Display, "known after apply") {
		t.Errorf("plan of train.final: learning_rate %+v, want known after apply", fin.Params["learning_rate"])
	}
	sum, rec := mustApply(t, h, runOpts{})
	if got := runtimetest.Actions(sum); !strings.Contains(got, "grid_search.tune=ran") || !strings.Contains(got, "train.final=ran") {
		t.Fatalf("actions: %s", got)
	}
	out := h.Output("grid_search.tune")
	ts := trials(t, out)
	if len(ts) != 8 {
		t.Fatalf("%d trials, want 8", len(ts))
	}
	for _, rate := range []float64{0.05, 0.1, 0.3, 5000} {
		for _, mb := range []int64{20, 100} {
			tid := id(map[string]cty.Value{"learning_rate": lr(rate), "minibatch": cty.NumberIntVal(mb)})
			tr, ok := ts[tid]
			if !ok {
				t.Fatalf("no trial %s for learning_rate %g minibatch %d", tid, rate, mb)
			}
			status, reason := tr.GetAttr("status").AsString(), tr.GetAttr("reason").AsString()
			if rate == 5000 {
				if status != string(operators.TrialStopped) || reason != operators.ReasonDiverged {
					t.Errorf("learning_rate 5000 minibatch %d: %s (%s), want STOPPED (diverged)", mb, status, reason)
				}
				continue
			}
			if status != string(operators.TrialDone) || reason != "epochs" {
				t.Errorf("learning_rate %g minibatch %d: %s (%s), want DONE (epochs)", rate, mb, status, reason)
			}
			m := tr.GetAttr("metrics")
			if ll := num(m.GetAttr("test_logloss")); !(ll > 0.3 && ll < 0.36) {
				t.Errorf("learning_rate %g minibatch %d: test logloss %g", rate, mb, ll)
			}
			if it := num(m.GetAttr("iterations")); it < 10*32561/float64(mb)*0.95 {
				t.Errorf("learning_rate %g minibatch %d: %g iterations for 10 epochs", rate, mb, it)
			}
			if tr.GetAttr("model").IsNull() {
				t.Errorf("learning_rate %g minibatch %d: no model", rate, mb)
			}
		}
	}
	// The best trial: the lowest test loss among the finished ones, at the a9a target.
	best := out.GetAttr("best")
	bestLL := num(best.GetAttr("metrics").GetAttr("test_logloss"))
	if bestLL > 0.330 {
		t.Errorf("best test logloss %.4f, want ≤ 0.330", bestLL)
	}
	for tid, tr := range ts {
		if tr.GetAttr("status").AsString() == string(operators.TrialDone) && num(tr.GetAttr("metrics").GetAttr("test_logloss")) < bestLL {
			t.Errorf("trial %s has a lower loss than the best", tid)
		}
	}
	bt := ts[best.GetAttr("id").AsString()]
	if !bt.GetAttr("params").RawEquals(best.GetAttr("params")) || !bt.GetAttr("model").RawEquals(best.GetAttr("model")) {
		t.Errorf("best %s does not match its trial %s", best.GoString(), bt.GoString())
	}
	// The model artifact is the trial's, with the trial's parameters.
	st := h.Store()
	key, err := manifest.KeyOf(st, best.GetAttr("model").AsString())
	if err != nil {
		t.Fatal(err)
	}
	art, w, err := train.ReadArtifact(context.Background(), st, key)
	if err != nil {
		t.Fatal(err)
	}
	if art.Trial != best.GetAttr("id").AsString() || art.Config.LearningRate != num(best.GetAttr("params").GetAttr("learning_rate")) || len(w) != 124 {
		t.Errorf("best model: trial %s, learning rate %g, %d weights", art.Trial, art.Config.LearningRate, len(w))
	}
	// The stage's headline figures are the best trial's, with how the trials ended.
	srec, _ := h.State.Stage("grid_search.tune")
	if m := srec.Metrics; m["test_logloss"] != bestLL || m["trials"] != 8 || m["trials_done"] != 6 || m["trials_stopped"] != 2 {
		t.Errorf("stage metrics %v", m)
	}
	if _, ok := srec.Metrics["iteration_p50_us"]; ok {
		t.Errorf("a trial's own summary leaked into the stage's metrics: %v", srec.Metrics)
	}
	// Downstream: train.final used the best parameters.
	if got := num(sum.Outputs["best_lr"]); got != art.Config.LearningRate {
		t.Errorf("output best_lr = %g", got)
	}
	fin := h.Output("train.final")
	if ll := num(fin.GetAttr("metrics").GetAttr("test_logloss")); !(ll < 0.34) {
		t.Errorf("train.final test logloss %g", ll)
	}
	fkey, err := manifest.KeyOf(st, fin.GetAttr("model").AsString())
	if err != nil {
		t.Fatal(err)
	}
	fart, _, err := train.ReadArtifact(context.Background(), st, fkey)
	if err != nil {
		t.Fatal(err)
	}
	if fart.Config.LearningRate != art.Config.LearningRate || fart.Config.Minibatch != art.Config.Minibatch {
		t.Errorf("train.final ran with learning_rate %g minibatch %d; the best trial's are %g and %d",
			fart.Config.LearningRate, fart.Config.Minibatch, art.Config.LearningRate, art.Config.Minibatch)
	}

	// Trial events in the state: every trial queued, ran and ended; live updates
	// between; the series of metric points per trial.
	events := seriesEvents(t, h, "grid_search.tune", "")
	seqs := statuses(events)
	for tid, tr := range ts {
		want := "QUEUED RUNNING " + tr.GetAttr("status").AsString()
		if got := strings.Join(seqs[tid], " "); got != want {
			t.Errorf("trial %s went %s, want %s", tid, got, want)
		}
	}
	points := map[string]int{}
	running := map[string]int{}
	for _, e := range events {
		switch {
		case e.Kind == "metric":
			points[e.Labels["trial"]]++
			if _, ok := e.Metrics["t"]; !ok {
				t.Fatalf("metric point without t: %+v", e)
			}
		case e.Kind == operators.KindTrial && e.Labels["status"] == string(operators.TrialRunning) && e.Metrics["iterations"] > 0:
			// The wire form, as the state records it.
			running[e.Labels["trial"]]++
			for _, k := range []string{"test_logloss", "best_logloss", "accuracy", "auc", "updates_per_second", "seconds", "cost_usd", "workers"} {
				if _, ok := e.Metrics[k]; !ok {
					t.Fatalf("running trial event without %s: %+v", k, e)
				}
			}
			if e.Labels["params"] == "" || !json.Valid([]byte(e.Labels["params"])) {
				t.Fatalf("trial event params %q", e.Labels["params"])
			}
		}
	}
	for tid, tr := range ts {
		if tr.GetAttr("status").AsString() == string(operators.TrialDone) && (points[tid] < 2 || running[tid] < 1) {
			t.Errorf("trial %s: %d metric points, %d live updates recorded", tid, points[tid], running[tid])
		}
	}

	// The results table: CSV and JSON sorted by the metric, linked from a note.
	var csvURI string
	for _, e := range rec.Events() {
		if e.Type == executor.StageEvent && e.Labels["results_csv"] != "" {
			csvURI = e.Labels["results_csv"]
			if !strings.Contains(e.Note, "TEST_LOGLOSS") || strings.Count(e.Note, "\n") < 9 {
				t.Errorf("results note is not a table:\n%s", e.Note)
			}
		}
	}
	if csvURI == "" || csvURI != out.GetAttr("results").GetAttr("csv").AsString() {
		t.Fatalf("results CSV %q, output %s", csvURI, out.GetAttr("results").GoString())
	}
	rows := readCSV(t, st, csvURI)
	if len(rows) != 9 {
		t.Fatalf("results CSV has %d lines, want a header and 8 trials", len(rows))
	}
	col := map[string]int{}
	for i, c := range rows[0] {
		col[c] = i
	}
	if rows[1][col["trial"]] != best.GetAttr("id").AsString() || rows[1][col["best"]] != "true" {
		t.Errorf("first row %v is not the best trial", rows[1])
	}
	prev := 0.0
	for _, r := range rows[1:7] {
		var ll float64
		fmt.Sscan(r[col["test_logloss"]], &ll)
		if ll < prev {
			t.Errorf("results not sorted by test_logloss: %v", rows)
		}
		prev = ll
	}
	var js []map[string]any
	if err := json.Unmarshal(readBlob(t, st, out.GetAttr("results").GetAttr("json").AsString()), &js); err != nil || len(js) != 8 {
		t.Fatalf("results JSON: %d rows, %v", len(js), err)
	}
}

func readBlob(t *testing.T, st interface {
	Get(context.Context, string) (io.ReadCloser, error)
	URI(string) string
}, uri string) []byte {
	t.Helper()
	key := strings.TrimPrefix(uri, strings.TrimSuffix(st.URI(""), "/")+"/")
	rc, err := st.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readCSV(t *testing.T, st interface {
	Get(context.Context, string) (io.ReadCloser, error)
	URI(string) string
}, uri string) [][]string {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(string(readBlob(t, st, uri)))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestA9ATunePipelinePlans plans the example pipeline pipelines/a9a-tune: it is
// valid, and the final stage's parameters wait for the search.
func TestA9ATunePipelinePlans(t *testing.T) {
	reg := builtin.Registry()
	cfg, diags := dsl.Load(filepath.Join("..", "..", "pipelines", "a9a-tune"), dsl.LoadOptions{Registry: reg})
	if diags.HasErrors() {
		t.Fatalf("load: %s", diags.Error())
	}
	st, err := state.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, diags := planner.Build(context.Background(), cfg, planner.Options{State: st})
	if diags.HasErrors() {
		t.Fatalf("plan: %s", diags.Error())
	}
	if len(p.Stages) != 5 || p.Stage("grid_search.tune") == nil {
		t.Fatalf("%d stages", len(p.Stages))
	}
	for _, a := range []string{"learning_rate", "minibatch"} {
		if d := p.Stage("train.final").Params[a].Display; d != "(known after apply)" {
			t.Errorf("train.final %s = %s at plan time", a, d)
		}
	}
}
