package operators_test

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/operators"
)

func fullTrial() operators.TrialEvent {
	return operators.TrialEvent{
		Time:   time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC),
		ID:     "t-1a2b3c4d",
		Status: operators.TrialStopped,
		Params: `{"learning_rate":0.1,"optimizer":"adagrad"}`,
		Reason: "median rule",
		Model:  "s3://bucket/stages/k/trials/t-1a2b3c4d/model.json",
		Cached: true,
		Metrics: operators.TrialMetrics{
			TestLogloss: 0.35, BestLogloss: 0.33, Accuracy: 0.84, AUC: 0.9, Iterations: 1200,
			UpdatesPerSecond: 5000, Seconds: 2.5, CostUSD: 0.0001, Workers: 2,
		},
	}
}

// TestTrialEventRoundTrip encodes a trial event with every field set, through JSON
// as the state records it, and decodes the same event.
func TestTrialEventRoundTrip(t *testing.T) {
	want := fullTrial()
	b, err := json.Marshal(want.Event())
	if err != nil {
		t.Fatal(err)
	}
	var ev operators.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	got, ok := operators.DecodeTrial(ev)
	if !ok {
		t.Fatalf("DecodeTrial(%s) reports no trial event", b)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip through %s:\n got %+v\nwant %+v", b, got, want)
	}
}

// TestTrialStatusesSurviveEncoding encodes an event in each status and decodes it.
func TestTrialStatusesSurviveEncoding(t *testing.T) {
	if len(operators.TrialStatuses) != 6 {
		t.Errorf("TrialStatuses has %d statuses; a new status needs this test, Terminal and the consumers checked", len(operators.TrialStatuses))
	}
	seen := map[operators.TrialStatus]bool{}
	for _, s := range operators.TrialStatuses {
		if s == "" || seen[s] {
			t.Errorf("status %q is empty or listed twice", s)
		}
		seen[s] = true
		e := operators.NewTrialEvent("t-00000001", s)
		b, err := json.Marshal(e.Event())
		if err != nil {
			t.Fatal(err)
		}
		var ev operators.Event
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		got, ok := operators.DecodeTrial(ev)
		if !ok || got.Status != s || got.ID != e.ID {
			t.Errorf("status %s: encoded %s, decoded %+v (ok %v)", s, b, got, ok)
		}
		wantTerminal := s != operators.TrialQueued && s != operators.TrialRunning
		if s.Terminal() != wantTerminal {
			t.Errorf("%s.Terminal() = %v", s, s.Terminal())
		}
	}
}

// TestTrialEventWireForm pins the wire form: an event as grid_search recorded it
// in a stage's series before TrialEvent existed decodes, and encoding it again
// gives the same labels and metrics. Non-finite figures are left out.
func TestTrialEventWireForm(t *testing.T) {
	const recorded = `{"time":"2026-11-30T12:00:00Z","kind":"trial",` +
		`"metrics":{"accuracy":0.84,"auc":0.9,"best_logloss":0.33,"cost_usd":0.0001,"iterations":1200,"seconds":2.5,"test_logloss":0.35,"updates_per_second":5000,"workers":2},` +
		`"labels":{"cached":"true","model":"s3://bucket/stages/k/trials/t-1a2b3c4d/model.json","params":"{\"learning_rate\":0.1,\"optimizer\":\"adagrad\"}","reason":"median rule","status":"STOPPED","trial":"t-1a2b3c4d"}}`
	var ev operators.Event
	if err := json.Unmarshal([]byte(recorded), &ev); err != nil {
		t.Fatal(err)
	}
	got, ok := operators.DecodeTrial(ev)
	if !ok || !reflect.DeepEqual(got, fullTrial()) {
		t.Fatalf("decoded %+v (ok %v), want %+v", got, ok, fullTrial())
	}
	b, err := json.Marshal(got.Event())
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != recorded {
		t.Errorf("encoded\n %s\nwant\n %s", b, recorded)
	}

	e := operators.NewTrialEvent("t-1", operators.TrialRunning)
	e.Metrics.TestLogloss, e.Metrics.BestLogloss, e.Metrics.Iterations = math.Inf(1), math.NaN(), 0
	if m := e.Event().Metrics; !reflect.DeepEqual(m, map[string]float64{"iterations": 0}) {
		t.Errorf("metrics %v: want only the finite iterations 0", m)
	}
	if l := e.Event().Labels; !reflect.DeepEqual(l, map[string]string{"trial": "t-1", "status": "RUNNING"}) {
		t.Errorf("labels %v: want only trial and status", l)
	}
	d, _ := operators.DecodeTrial(operators.Event{Kind: "trial", Labels: map[string]string{"trial": "t-1"}})
	if d.Status != "" || !math.IsNaN(d.Metrics.TestLogloss) || !math.IsNaN(d.Metrics.Workers) || d.Cached {
		t.Errorf("an event without status or metrics decoded as %+v", d)
	}
}

// TestEveryTrialFigureEncodes gives every field of TrialMetrics a distinct value:
// each must reach the Event under its own name and come back.
func TestEveryTrialFigureEncodes(t *testing.T) {
	var m operators.TrialMetrics
	v := reflect.ValueOf(&m).Elem()
	for i := range v.NumField() {
		v.Field(i).SetFloat(float64(i + 1))
	}
	e := operators.NewTrialEvent("t-1", operators.TrialDone)
	e.Metrics = m
	if got := e.Event().Metrics; len(got) != v.NumField() {
		t.Errorf("%d fields encode as %d metrics: %v", v.NumField(), len(got), got)
	}
	if d, _ := operators.DecodeTrial(e.Event()); d.Metrics != m {
		t.Errorf("decoded %+v, want %+v", d.Metrics, m)
	}
}

func TestDecodeTrialRejectsOtherEvents(t *testing.T) {
	for _, ev := range []operators.Event{
		{Kind: "metric", Labels: map[string]string{"trial": "t-1", "status": "RUNNING"}},
		{Kind: "note", Note: "x", Labels: map[string]string{"trial": "t-1"}},
		{Kind: "trial", Labels: map[string]string{"status": "RUNNING"}},
	} {
		if e, ok := operators.DecodeTrial(ev); ok {
			t.Errorf("DecodeTrial(%+v) = %+v, true; want false", ev, e)
		}
	}
}

// TestTrialID pins the ID of a parameter set: IDs name trials across runs (the
// trial cache, kill markers, `stratus trials kill`), so it must never change.
func TestTrialID(t *testing.T) {
	a := operators.TrialID(cty.ObjectVal(map[string]cty.Value{"learning_rate": cty.NumberFloatVal(0.1), "minibatch": cty.NumberIntVal(20)}))
	b := operators.TrialID(cty.ObjectVal(map[string]cty.Value{"minibatch": cty.NumberIntVal(20), "learning_rate": cty.MustParseNumberVal("0.10")}))
	if a != b {
		t.Errorf("the same parameters got IDs %s and %s", a, b)
	}
	if a != "t-99219ee8" {
		t.Errorf("learning_rate=0.1 minibatch=20 got ID %s; it was t-99219ee8, and earlier runs' trials are known by it", a)
	}
}

func TestParamsText(t *testing.T) {
	for in, want := range map[string]string{
		`{"minibatch":20,"learning_rate":0.1,"optimizer":"sgd"}`: "learning_rate=0.1 minibatch=20 optimizer=sgd",
		`"lr=0.1"`: "lr=0.1",
		`lr=0.1`:   "lr=0.1",
	} {
		if got := operators.ParamsText([]byte(in)); got != want {
			t.Errorf("ParamsText(%s) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkTrialEvent measures encoding a running trial's event and decoding it,
// beside the reference: the label and metric maps built by hand, as grid_search
// did before TrialEvent, and read back by key.
//
//	go test ./operators -run '^$' -bench TrialEvent
func BenchmarkTrialEvent(b *testing.B) {
	e := fullTrial()
	b.Run("typed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d, ok := operators.DecodeTrial(e.Event())
			if !ok || d.Metrics.Workers != 2 {
				b.Fatal("decode")
			}
		}
	})
	b.Run("reference-maps", func(b *testing.B) {
		b.ReportAllocs()
		m := e.Metrics
		for b.Loop() {
			labels := map[string]string{"trial": e.ID, "status": string(e.Status), "params": e.Params, "reason": e.Reason, "model": e.Model, "cached": "true"}
			metrics := map[string]float64{"workers": m.Workers, "test_logloss": m.TestLogloss, "accuracy": m.Accuracy, "auc": m.AUC,
				"iterations": m.Iterations, "best_logloss": m.BestLogloss, "updates_per_second": m.UpdatesPerSecond, "seconds": m.Seconds, "cost_usd": m.CostUSD}
			ev := operators.Event{Kind: "trial", Labels: labels, Metrics: metrics}
			if ev.Labels["status"] == "" || ev.Metrics["workers"] != 2 {
				b.Fatal("decode")
			}
		}
	})
}
