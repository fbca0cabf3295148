package executor

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vbauerster/mpb/v8"
)

// trialEvents is a grid search as its events arrive: two trials queued, run, one
// stopped for diverging, the other done, then the results table.
func trialEvents() []Event {
	at := time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)
	step := 300 * time.Millisecond
	ev := func(kind string, labels map[string]string, metrics map[string]float64) Event {
		at = at.Add(step)
		return Event{Time: at, Type: StageEvent, Stage: "grid_search.tune", Operator: "grid_search", Kind: kind, Labels: labels, Metrics: metrics}
	}
	trial := func(id, params, status, reason string, m map[string]float64) Event {
		l := map[string]string{"trial": id, "status": status, "params": params}
		if reason != "" {
			l["reason"] = reason
		}
		return ev("trial", l, m)
	}
	a, b := `{"learning_rate":0.1,"minibatch":20}`, `{"learning_rate":50,"minibatch":20}`
	out := []Event{
		{Time: at, Type: StageStarted, Stage: "grid_search.tune", Operator: "grid_search"},
		trial("t-aaaaaaaa", a, "QUEUED", "", map[string]float64{"workers": 2}),
		trial("t-bbbbbbbb", b, "QUEUED", "", map[string]float64{"workers": 2}),
		trial("t-aaaaaaaa", a, "RUNNING", "", map[string]float64{"workers": 2, "seconds": 0}),
		trial("t-bbbbbbbb", b, "RUNNING", "", map[string]float64{"workers": 2, "seconds": 0}),
		ev("metric", map[string]string{"trial": "t-aaaaaaaa"}, map[string]float64{"test_logloss": 0.4, "t": 0.2}),
		trial("t-aaaaaaaa", a, "RUNNING", "", map[string]float64{"iterations": 600, "test_logloss": 0.5, "best_logloss": 0.5, "updates_per_second": 5000, "seconds": 0.3}),
	}
	step = 2 * time.Second
	out = append(out,
		trial("t-aaaaaaaa", a, "RUNNING", "", map[string]float64{"iterations": 1200, "test_logloss": 0.4012, "best_logloss": 0.4012, "updates_per_second": 5400, "seconds": 2.3}),
	)
	step = 300 * time.Millisecond
	out = append(out,
		trial("t-aaaaaaaa", a, "RUNNING", "", map[string]float64{"iterations": 2400, "test_logloss": 0.3512, "best_logloss": 0.3512, "updates_per_second": 5600, "seconds": 2.6}),
		Event{Time: at, Type: StageEvent, Stage: "grid_search.tune", Kind: "note", Labels: map[string]string{"trial": "t-bbbbbbbb"}, Note: "stopping: diverged"},
		trial("t-bbbbbbbb", b, "STOPPED", "diverged", map[string]float64{"iterations": 300, "test_logloss": 3.2, "best_logloss": 0.69, "seconds": 0.4}),
		trial("t-aaaaaaaa", a, "DONE", "epochs", map[string]float64{"iterations": 4800, "test_logloss": 0.3245, "best_logloss": 0.3241, "seconds": 1.2}),
		Event{Time: at, Type: StageEvent, Stage: "grid_search.tune", Kind: "note", Note: "results by test_logloss, best first:\n  TRIAL  STATUS\n  t-aaaaaaaa  DONE"},
		Event{Time: at, Type: StageFinished, Stage: "grid_search.tune", Operator: "grid_search", Duration: 2 * time.Second},
	)
	return out
}

func TestPlainProgressTrials(t *testing.T) {
	var buf bytes.Buffer
	p := NewPlainProgress(&buf)
	for _, e := range trialEvents() {
		p.Event(e)
	}
	got := buf.String()
	for _, want := range []string{
		"grid_search.tune: trial t-aaaaaaaa  QUEUED  learning_rate=0.1 minibatch=20\n",
		"grid_search.tune: trial t-aaaaaaaa  RUNNING  learning_rate=0.1 minibatch=20\n",
		"grid_search.tune: trial t-bbbbbbbb: stopping: diverged\n",
		"grid_search.tune: trial t-bbbbbbbb  STOPPED (diverged)  learning_rate=50 minibatch=20: loss 3.2000, best 0.6900, 300 iterations, 0.4s\n",
		"grid_search.tune: trial t-aaaaaaaa  DONE  learning_rate=0.1 minibatch=20: loss 0.3245, best 0.3241, 4800 iterations, 1.2s\n",
		"grid_search.tune: results by test_logloss, best first:\n             TRIAL  STATUS\n             t-aaaaaaaa  DONE\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("plain output lacks %q:\n%s", want, got)
		}
	}
	// Live updates of a running trial are rate-limited to one per 2s of event time:
	// the one 300ms after the status change and the one 300ms after the printed
	// update are not printed; metric points are not printed at all.
	if n := strings.Count(got, "t-aaaaaaaa  RUNNING"); n != 2 {
		t.Errorf("%d RUNNING lines for trial a, want 2 (the status change and one update):\n%s", n, got)
	}
	if strings.Contains(got, "test_logloss 0.4") {
		t.Errorf("a trial's metric point was printed:\n%s", got)
	}
	if !regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d grid_search\.tune: trial t-aaaaaaaa  RUNNING  learning_rate=0\.1 minibatch=20: loss 0\.4012, best 0\.4012, 1200 iterations, 5400 updates/s, 2\.3s$`).MatchString(got) {
		t.Errorf("no live line with the trial's figures:\n%s", got)
	}
}

// syncBuffer is a bytes.Buffer safe for mpb's writer goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestTerminalProgressTrialTable(t *testing.T) {
	var buf syncBuffer
	p := newTerminalProgress(&buf, mpb.WithAutoRefresh(), mpb.WithWidth(160))
	for _, e := range trialEvents() {
		p.Event(e)
	}
	// No pause between events: rows render the trial's state at render time,
	// and Wait draws the final frame, which must hold every trial's end state.
	p.Wait()
	got := buf.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`grid_search\.tune trials:`),
		regexp.MustCompile(`TRIAL\s+PARAMETERS\s+STATUS\s+ITERATIONS\s+LOSS\s+BEST\s+UPDATES/S`),
		regexp.MustCompile(`t-aaaaaaaa\s+learning_rate=0\.1 minibatch=20\s+DONE\s+4800\s+0\.3245\s+0\.3241\s+-`),
		regexp.MustCompile(`t-bbbbbbbb\s+learning_rate=50 minibatch=20\s+STOPPED \(diverged\)\s+300\s+3\.2000\s+0\.6900`),
		regexp.MustCompile(`grid_search\.tune: results by test_logloss, best first:\n  +TRIAL  STATUS`),
	} {
		if !want.MatchString(got) {
			t.Errorf("terminal output lacks %s:\n%s", want, got)
		}
	}
}

// TestProgressWorkerChanges: a train stage's change of its worker count is a
// line in plain progress and stays above the bars on a terminal; the starting
// count (an event without a note, for the dashboard) is not shown.
func TestProgressWorkerChanges(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	evs := []Event{
		{Time: now, Type: StageStarted, Stage: "train.lr", Operator: "train"},
		{Time: now, Type: StageEvent, Stage: "train.lr", Kind: "workers", Metrics: map[string]float64{"workers": 1}},
		{Time: now, Type: WaveStarted, Stage: "train.lr", Wave: "workers", Tasks: 1},
		{Time: now, Type: StageEvent, Stage: "train.lr", Kind: "workers", Note: "workers 1 → 2: loss −9.5%/epoch at $0.0014/worker-min", Metrics: map[string]float64{"workers": 2, "workers_from": 1}},
		{Time: now, Type: WaveFinished, Stage: "train.lr", Wave: "workers"},
	}
	var plain bytes.Buffer
	pp := NewPlainProgress(&plain)
	for _, e := range evs {
		pp.Event(e)
	}
	if want := "12:00:00 train.lr: started\n12:00:00 train.lr: wave workers, 1 task(s)\n12:00:00 train.lr: workers 1 → 2: loss −9.5%/epoch at $0.0014/worker-min\n12:00:00 train.lr: wave workers done in 0s\n"; plain.String() != want {
		t.Errorf("plain progress:\n%s\nwant:\n%s", plain.String(), want)
	}
	var buf syncBuffer
	tp := newTerminalProgress(&buf, mpb.WithAutoRefresh(), mpb.WithWidth(160))
	for _, e := range evs {
		tp.Event(e)
	}
	tp.Wait()
	if got := buf.String(); !strings.Contains(got, "12:00:00 train.lr: workers 1 → 2: loss −9.5%/epoch at $0.0014/worker-min\n") {
		t.Errorf("terminal output lacks the change:\n%s", got)
	}
}
