package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/stratus-ml/stratus/dashboard"
	"github.com/stratus-ml/stratus/internal/testtools"
	"github.com/stratus-ml/stratus/operators"
)

// browser starts headless Chromium with a fresh profile and returns a context for
// its tab. Console errors and uncaught exceptions of the page fail the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := testtools.Binary(t, "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1100),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		cancelTab()
		cancelAlloc()
		t.Fatalf("start %s: %v", exe, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	msgs := chromedp.Console(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			// The event stream is cut when the server stops; the page expects it.
			if strings.Contains(p, "/api/events") {
				continue
			}
			t.Errorf("browser console: %s", p)
		}
	})
	return ctx
}

// poll evaluates a JavaScript expression until check accepts its value.
func poll[T any](t *testing.T, ctx context.Context, d time.Duration, what, expr string, check func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(d)
	var last T
	var lastErr error
	for time.Now().Before(deadline) {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
		if err == nil && check(v) {
			return v
		}
		last, lastErr = v, err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s: last value %+v, error %v", d, what, last, lastErr)
	return last
}

type chartSeries struct {
	Stage, Trial, Label string
	Points              int
}

// TestDashboardInBrowser loads the dashboard in headless Chromium during an apply
// with four running trials, checks that the chart has points for every one of them,
// kills one with the page's buttons and checks that it is KILLED in the API and in
// the state, then kills the rest with the kill-all button and checks the page's
// end of run. A screenshot is kept: in $STRATUS_ARTIFACTS when set.
func TestDashboardInBrowser(t *testing.T) {
	ctx := browser(t)
	r := startRun(t, `
test_map "prep" {
  tasks = 2
}
test_trials "search" {
  trials   = 5
  parallel = 4
  points   = 600
  interval = "50ms"
  after    = test_map.prep.sum
}
`, "")

	var running []*dashboard.Trial
	eventually(t, 30*time.Second, "4 running trials with 3 points each", func() bool {
		running = running[:0]
		for _, c := range r.hub.Curves() {
			if tr := trialsOf(r.hub.Status())[c.Trial]; tr != nil && tr.Status == operators.TrialRunning && len(c.Points) >= 3 {
				running = append(running, tr)
			}
		}
		return len(running) == 4
	})

	if _, err := chromedp.Run(ctx, chromedp.Navigate(r.srv.URL())); err != nil {
		t.Fatal(err)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(loc, "token") {
		t.Errorf("the token stayed in the address bar: %s", loc)
	}

	// The DAG shows both stages, the search running.
	poll(t, ctx, 10*time.Second, "the DAG", `[...document.querySelectorAll('#dag g.stage')].map(g => g.dataset.stage + '=' + g.dataset.status).sort().join(',')`,
		func(s string) bool { return s == "test_map.prep=done,test_trials.search=running" })

	// Every running trial has a curve with points on the chart.
	series := poll(t, ctx, 15*time.Second, "points for every running trial", `window.stratusDashboard.chartSeries()`, func(ss []chartSeries) bool {
		have := map[string]int{}
		for _, s := range ss {
			have[s.Trial] = s.Points
		}
		for _, tr := range running {
			if have[tr.ID] < 2 {
				return false
			}
		}
		return true
	})
	for _, s := range series {
		if s.Stage != "test_trials.search" || !strings.HasPrefix(s.Label, s.Trial+" learning_rate=") {
			t.Errorf("chart series %+v", s)
		}
	}
	// uPlot drew them: its canvas exists and has a size.
	if w, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelector('#chart-time canvas').width`)); err != nil || w < 300 {
		t.Errorf("chart canvas width %d (%v)", w, err)
	}
	// The totals are live.
	poll(t, ctx, 5*time.Second, "active functions", `document.getElementById('t-fn').textContent`, func(s string) bool { return s == "4" })

	// Click a trial's row, then its kill button twice (arm, confirm).
	victim := running[1].ID
	row := chromedp.CSS(fmt.Sprintf(`#trials tbody tr[data-trial=%q]`, victim))
	if err := chromedp.Do(ctx,
		chromedp.Click(row),
		chromedp.WaitVisible(chromedp.CSS(`#d-kill`)),
	); err != nil {
		t.Fatal(err)
	}
	params, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#d-params`)))
	if err != nil || !strings.Contains(params, `"learning_rate"`) {
		t.Errorf("details show parameters %q (%v)", params, err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#d-kill`))); err != nil {
		t.Fatal(err)
	}
	armed, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#d-kill`)))
	if !strings.Contains(armed, victim) {
		t.Errorf("first click should ask to confirm the kill of %s; button says %q", victim, armed)
	}
	if st := trialsOf(r.hub.Status())[victim].Status; st != operators.TrialRunning {
		t.Fatalf("one click killed the trial (%s)", st)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#d-kill`))); err != nil {
		t.Fatal(err)
	}

	// KILLED in the API, in the state's series, and on the page; the others run on.
	eventually(t, 10*time.Second, "the trial KILLED in the API", func() bool {
		var s dashboard.Status
		r.api("GET", "/api/status", "", &s)
		tr := trialsOf(s)[victim]
		return tr != nil && tr.Status == operators.TrialKilled && tr.Reason == operators.ReasonKilled
	})
	rec := recordedStatus(t, r.st, "test_trials.search")
	if rec[victim] != operators.TrialKilled {
		t.Errorf("state series records %s for %s, want KILLED", rec[victim], victim)
	}
	for _, tr := range running {
		if tr.ID != victim && rec[tr.ID] != operators.TrialRunning {
			t.Errorf("trial %s recorded %s after killing only %s", tr.ID, rec[tr.ID], victim)
		}
	}
	poll(t, ctx, 10*time.Second, "the row KILLED", fmt.Sprintf(`document.querySelector('#trials tbody tr[data-trial=%q]').dataset.status`, victim),
		func(s string) bool { return s == string(operators.TrialKilled) })
	poll(t, ctx, 5*time.Second, "the kill button gone", `document.getElementById('d-kill').hidden`, func(h bool) bool { return h })

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	saveArtifact(t, "dashboard.png", png)

	// Kill all: the stage completes with what finished, the apply ends, and the page
	// keeps its final state and says the server stopped.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#kill-all`)), chromedp.Click(chromedp.CSS(`#kill-all`))); err != nil {
		t.Fatal(err)
	}
	r.wait()
	for id, s := range recordedStatus(t, r.st, "test_trials.search") {
		if s != operators.TrialKilled {
			t.Errorf("after kill-all, %s is recorded %s", id, s)
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := r.srv.Close(cctx); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, 10*time.Second, "the end banner", `document.getElementById('banner').hidden ? '' : document.getElementById('banner').textContent`,
		func(s string) bool { return strings.Contains(s, "has finished") })
	poll(t, ctx, 5*time.Second, "the final DAG", `document.querySelector('#dag g.stage[data-stage="test_trials.search"]').dataset.status`,
		func(s string) bool { return s == "done" })
}

// TestFinishedDashboardInBrowser serves a finished apply from its state, as
// `stratus ui` does: every stage done, a curve per trial and one for a plain
// training stage, and no kill buttons.
func TestFinishedDashboardInBrowser(t *testing.T) {
	ctx := browser(t)
	r := startRun(t, `
test_map "prep" {
  tasks = 2
  sleep = "300ms"
}
test_trials "search" {
  trials   = 3
  points   = 8
  interval = "20ms"
  after    = test_map.prep.sum
}
`, "")
	r.wait()
	// A training stage's curve has no trial label: record one for prep, within its run.
	prep, err := r.st.Stage("test_map.prep")
	if err != nil || prep == nil {
		t.Fatalf("prep record: %v", err)
	}
	for i := range 5 {
		b, _ := json.Marshal(operators.Event{Time: prep.Started.Add(time.Duration(i*50) * time.Millisecond), Kind: "metric",
			Metrics: map[string]float64{"test_logloss": 0.6 - 0.05*float64(i), "t": float64(i) / 20, "updates": float64(100 * i)}})
		if err := r.st.AppendSeries("test_map.prep", b); err != nil {
			t.Fatal(err)
		}
	}
	hub, err := dashboard.LoadState(r.st, dashboard.RunInfo{Dir: r.dir})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := dashboard.Start(dashboard.Options{Hub: hub})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = srv.Close(cctx)
	})
	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL())); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, 10*time.Second, "the DAG", `[...document.querySelectorAll('#dag g.stage')].map(g => g.dataset.stage + '=' + g.dataset.status).sort().join(',')`,
		func(s string) bool { return s == "test_map.prep=done,test_trials.search=done" })
	series := poll(t, ctx, 10*time.Second, "four curves", `window.stratusDashboard.chartSeries()`, func(ss []chartSeries) bool { return len(ss) == 4 })
	for _, s := range series {
		want := 8
		if s.Trial == "" {
			want = 5
		}
		if s.Points != want {
			t.Errorf("curve %+v: want %d points", s, want)
		}
	}
	state := poll(t, ctx, 5*time.Second, "the run state", `document.getElementById('run-state').textContent`, func(s string) bool { return s != "connecting…" })
	if state != "finished apply (done)" {
		t.Errorf("run state %q", state)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#trials tbody tr[data-trial=""]`)), chromedp.WaitVisible(chromedp.CSS(`#details`))); err != nil {
		t.Fatal(err)
	}
	hidden, err := chromedp.Run(ctx, chromedp.Evaluate[[]bool](`[document.getElementById('kill-all').hidden, document.getElementById('d-kill').hidden]`))
	if err != nil || !hidden[0] || !hidden[1] {
		t.Errorf("kill buttons of a finished apply hidden: %v (%v)", hidden, err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	saveArtifact(t, "dashboard-finished.png", png)
}

// saveArtifact writes b to $STRATUS_ARTIFACTS/name, or into a temporary directory,
// and logs the path.
func saveArtifact(t *testing.T, name string, b []byte) {
	t.Helper()
	dir := os.Getenv("STRATUS_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(b))
}
