package dashboard_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/dashboard"
	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/internal/pricing"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/state"
)

func TestHubTotals(t *testing.T) {
	const price = 0.001 // USD per function-second
	// 1024 MB at price per GB-second: price per function-second.
	h := dashboard.NewHub(dashboard.HubOptions{Pricing: pricing.Pricing{PerGBSecond: price}, MemoryMB: 1024})
	t0 := time.Now().Add(-time.Minute)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	ev := func(e executor.Event) { h.Event(e) }
	ev(executor.Event{Time: at(0), Type: executor.ApplyStarted})
	ev(executor.Event{Time: at(0), Type: executor.StageStarted, Stage: "g.s", Operator: "grid_search"})
	for i := range 3 {
		ev(executor.Event{Time: at(0), Type: executor.TaskStarted, Stage: "g.s", Wave: "w", Index: i})
	}
	ev(executor.Event{Time: at(2), Type: executor.TaskFinished, Stage: "g.s", Wave: "w", Index: 0, Duration: 2 * time.Second})
	ev(executor.Event{Time: at(3), Type: executor.TaskRetried, Stage: "g.s", Wave: "w", Index: 1})
	trial := func(id, status string, ups float64) {
		ev(executor.Event{Time: at(3), Type: executor.StageEvent, Stage: "g.s", Kind: "trial",
			Labels: map[string]string{"trial": id, "status": status}, Metrics: map[string]float64{"updates_per_second": ups}})
	}
	trial("t-1", "RUNNING", 100)
	trial("t-2", "RUNNING", 50)
	trial("t-3", "RUNNING", math.Inf(1))
	trial("t-3", "KILLED", math.Inf(1))
	trial("t-3", "RUNNING", 7) // a late RUNNING after KILLED does not revive it

	tot := h.Totals()
	if tot.ActiveFunctions != 1 {
		t.Errorf("active functions %d, want 1", tot.ActiveFunctions)
	}
	if tot.UpdatesPerSecond != 150 {
		t.Errorf("updates/s %v, want 150 (running trials only)", tot.UpdatesPerSecond)
	}
	// 2 s + 3 s ended, plus one still running since t0 (about 60 s).
	if min, max := price*(5+59), price*(5+62); tot.CostUSD < min || tot.CostUSD > max {
		t.Errorf("cost %v, want in [%v, %v]", tot.CostUSD, min, max)
	}
	if tot.Trials["RUNNING"] != 2 || tot.Trials["KILLED"] != 1 {
		t.Errorf("trial counts %v", tot.Trials)
	}
	// A cancelled task ends with its wave.
	ev(executor.Event{Time: at(10), Type: executor.WaveFinished, Stage: "g.s", Wave: "w", Error: "context canceled"})
	if n := h.Totals().ActiveFunctions; n != 0 {
		t.Errorf("active functions after the wave: %d", n)
	}
	// The stage's own figure replaces the estimate when it finishes.
	ev(executor.Event{Time: at(11), Type: executor.StageFinished, Stage: "g.s", Summary: &executor.StageSummary{Tasks: 3, CostUSD: 0.5}})
	ev(executor.Event{Time: at(11), Type: executor.ApplyFinished})
	s := h.Status()
	if s.Totals.CostUSD != 0.5 || s.Stages[0].Status != dashboard.StageDone || s.Run.State != "done" {
		t.Errorf("after finish: cost %v stage %s run %s", s.Totals.CostUSD, s.Stages[0].Status, s.Run.State)
	}
	if s.Totals.UpdatesPerSecond != 0 {
		t.Errorf("updates/s after the stage finished: %v", s.Totals.UpdatesPerSecond)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Errorf("status with infinite metrics does not encode: %v", err)
	}

	// Points of a trial whose reported cost is infinite, or whose metrics are NaN,
	// still encode (a snapshot that did not would lock every browser out).
	trial("t-4", "RUNNING", 1)
	ev(executor.Event{Time: at(4), Type: executor.StageEvent, Stage: "g.s", Kind: "trial",
		Labels: map[string]string{"trial": "t-4"}, Metrics: map[string]float64{"cost_usd": math.Inf(1), "seconds": 1}})
	ev(executor.Event{Time: at(5), Type: executor.StageEvent, Stage: "g.s", Kind: "metric",
		Labels: map[string]string{"trial": "t-4"}, Metrics: map[string]float64{"test_logloss": math.NaN(), "t": 2, "updates": math.NaN()}})
	if b, err := json.Marshal(h.Curves()); err != nil || !strings.Contains(string(b), `"loss":null`) {
		t.Errorf("curves with non-finite values: %v %s", err, b)
	}
}

func TestHubApplyOutcome(t *testing.T) {
	h := dashboard.NewHub(dashboard.HubOptions{})
	h.Event(executor.Event{Type: executor.StageStarted, Stage: "a.x"})
	h.Event(executor.Event{Type: executor.StageFailed, Stage: "a.x", Error: "boom\nat line 2"})
	h.Event(executor.Event{Type: executor.StageStarted, Stage: "a.y"})
	h.Event(executor.Event{Type: executor.ApplyFinished})
	s := h.Status()
	got := map[string]string{}
	for _, st := range s.Stages {
		got[st.Address] = st.Status
	}
	if got["a.x"] != "failed" || got["a.y"] != "interrupted" || s.Run.State != "failed" {
		t.Errorf("stages %v run %s", got, s.Run.State)
	}
	if len(s.Log) != 1 || s.Log[0].Level != "error" || s.Log[0].Text != "failed: boom" {
		t.Errorf("log %+v", s.Log)
	}
}

func TestHubCurveBounded(t *testing.T) {
	h := dashboard.NewHub(dashboard.HubOptions{})
	n := dashboard.MaxPoints*3 + 17
	t0 := time.Now()
	for i := range n {
		h.Event(executor.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Type: executor.StageEvent, Stage: "train.lr", Kind: "metric",
			Metrics: map[string]float64{"test_logloss": 1 / float64(i+1), "t": float64(i)}})
	}
	cs := h.Curves()
	if len(cs) != 1 || cs[0].Trial != "" {
		t.Fatalf("curves %+v", cs)
	}
	ps := cs[0].Points
	if len(ps) > dashboard.MaxPoints || len(ps) < dashboard.MaxPoints/2 {
		t.Errorf("%d points kept of %d, want between %d and %d", len(ps), n, dashboard.MaxPoints/2, dashboard.MaxPoints)
	}
	if ps[0].T != 0 || ps[len(ps)-1].T != float64(n-1) {
		t.Errorf("first and last points %v, %v: want 0 and %d", ps[0].T, ps[len(ps)-1].T, n-1)
	}
	if !sort.SliceIsSorted(ps, func(i, j int) bool { return ps[i].T < ps[j].T }) {
		t.Error("points out of order")
	}
}

// TestLoadState reads a finished apply back: stages with their edges and recorded
// cost, and only the recorded run's trial events.
func TestLoadState(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	put := func(e operators.Event) {
		b, _ := json.Marshal(e)
		if err := st.AppendSeries("grid_search.g", b); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	put(operators.Event{Time: old, Kind: "trial", Labels: map[string]string{"trial": "t-old", "status": "DONE"}})
	began := time.Now()
	put(operators.Event{Time: began.Add(time.Millisecond), Kind: "trial", Labels: map[string]string{"trial": "t-new", "status": "RUNNING", "params": `{"lr":1}`}})
	put(operators.Event{Time: began.Add(2 * time.Millisecond), Kind: "metric", Labels: map[string]string{"trial": "t-new"}, Metrics: map[string]float64{"test_logloss": 0.4, "t": 1}})
	put(operators.Event{Time: began.Add(3 * time.Millisecond), Kind: "trial", Labels: map[string]string{"trial": "t-new", "status": "KILLED", "reason": "killed by user"}})
	for _, r := range []*state.StageRecord{
		{Address: "train.lr", Operator: "train", Key: "k1", Started: began, Finished: began, CostUSD: 0.25},
		{Address: "grid_search.g", Operator: "grid_search", Key: "k2", Upstream: map[string]string{"train.lr": "k1"}, Started: began, Finished: began.Add(5 * time.Millisecond), CostUSD: 1},
	} {
		if err := st.PutStage(r); err != nil {
			t.Fatal(err)
		}
	}
	h, err := dashboard.LoadState(st, dashboard.RunInfo{Dir: "/p"})
	if err != nil {
		t.Fatal(err)
	}
	s := h.Status()
	if s.Run.Mode != "finished" || s.Run.CanKill || s.Totals.CostUSD != 1.25 {
		t.Errorf("run %+v cost %v", s.Run, s.Totals.CostUSD)
	}
	deps := map[string][]string{}
	for _, x := range s.Stages {
		deps[x.Address] = x.Deps
		if x.Status != dashboard.StageDone {
			t.Errorf("%s is %s", x.Address, x.Status)
		}
	}
	if len(deps["grid_search.g"]) != 1 || deps["grid_search.g"][0] != "train.lr" {
		t.Errorf("deps %v", deps)
	}
	if len(s.Trials) != 1 || s.Trials[0].ID != "t-new" || s.Trials[0].Status != "KILLED" || s.Trials[0].Reason != "killed by user" || string(s.Trials[0].Params) != `{"lr":1}` {
		t.Errorf("trials %+v: want only t-new, KILLED", s.Trials)
	}
	if cs := h.Curves(); len(cs) != 1 || len(cs[0].Points) != 1 {
		t.Errorf("curves %+v", cs)
	}
}

// TestBundleCurrent checks that web/dist was built from the sources as they are:
// run `npm ci && npm run build` in dashboard/web after changing them.
func TestBundleCurrent(t *testing.T) {
	want, err := os.ReadFile("web/dist/SOURCES.sha256")
	if err != nil {
		t.Fatal(err)
	}
	inputs := []string{"build.mjs", "package.json", "package-lock.json"}
	src, err := os.ReadDir("web/src")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range src {
		inputs = append(inputs, "src/"+e.Name())
	}
	sort.Strings(inputs[3:])
	var got strings.Builder
	for _, f := range inputs {
		b, err := os.ReadFile(filepath.Join("web", f))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		got.WriteString(hex.EncodeToString(sum[:]) + "  " + f + "\n")
	}
	if got.String() != string(want) {
		t.Errorf("the dashboard bundle is stale: run `npm ci && npm run build` in dashboard/web and commit web/dist.\nsources:\n%sbundle built from:\n%s", got.String(), want)
	}
	for _, f := range []string{"index.html", "app.js", "app.css"} {
		if fi, err := os.Stat(filepath.Join("web/dist", f)); err != nil || fi.Size() == 0 {
			t.Errorf("web/dist/%s missing or empty", f)
		}
	}
}

// TestHubWorkers follows a train stage's worker count: the count it starts
// with (an event without a note, which the log does not show) and each change
// an elastic run makes (a note, which it does); a trial's count is not the
// stage's. A finished apply's dashboard replays the count from the series.
func TestHubWorkers(t *testing.T) {
	h := dashboard.NewHub(dashboard.HubOptions{})
	t0 := time.Now()
	h.Event(executor.Event{Time: t0, Type: executor.StageStarted, Stage: "train.lr", Operator: "train"})
	workers := func() int { return h.Status().Stages[0].Workers }
	h.Event(executor.Event{Time: t0, Type: executor.StageEvent, Stage: "train.lr", Kind: "workers", Metrics: map[string]float64{"workers": 1}})
	if n, log := workers(), h.Status().Log; n != 1 || len(log) != 0 {
		t.Fatalf("workers %d, log %+v; want 1 and no log line", n, log)
	}
	note := "workers 1 → 2: loss −9.5%/epoch at $0.0014/worker-min"
	h.Event(executor.Event{Time: t0, Type: executor.StageEvent, Stage: "train.lr", Kind: "workers", Note: note, Metrics: map[string]float64{"workers": 2, "workers_from": 1}})
	h.Event(executor.Event{Time: t0, Type: executor.StageEvent, Stage: "train.lr", Kind: "workers", Labels: map[string]string{operators.TrialLabel: "t-1"}, Metrics: map[string]float64{"workers": 5}})
	s := h.Status()
	if s.Stages[0].Workers != 2 || s.Stages[0].Note != note || len(s.Log) != 1 || s.Log[0].Text != note {
		t.Fatalf("after the change: workers %d, note %q, log %+v", s.Stages[0].Workers, s.Stages[0].Note, s.Log)
	}
	if b, _ := json.Marshal(s.Stages[0]); !strings.Contains(string(b), `"workers":2`) {
		t.Errorf("the stage's JSON lacks its workers: %s", b)
	}

	st, err := state.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, e := range []operators.Event{
		{Time: t0.Add(time.Millisecond), Kind: "workers", Metrics: map[string]float64{"workers": 1}},
		{Time: t0.Add(2 * time.Millisecond), Kind: "workers", Note: note, Metrics: map[string]float64{"workers": 2, "workers_from": 1}},
		{Time: t0.Add(3 * time.Millisecond), Kind: "workers", Note: "workers 2 → 1: loss only −0.1%/epoch", Metrics: map[string]float64{"workers": 1, "workers_from": 2}},
	} {
		b, _ := json.Marshal(e)
		if err := st.AppendSeries("train.lr", b); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.PutStage(&state.StageRecord{Address: "train.lr", Operator: "train", Key: "k1", Started: t0, Finished: t0.Add(5 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	fh, err := dashboard.LoadState(st, dashboard.RunInfo{Dir: "/p"})
	if err != nil {
		t.Fatal(err)
	}
	if fs := fh.Status(); fs.Stages[0].Workers != 1 || len(fs.Log) != 2 {
		t.Errorf("replayed: workers %d, log %+v; want 1 and two changes", fs.Stages[0].Workers, fs.Log)
	}
}
