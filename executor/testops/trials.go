package testops

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/operators"
)

// trialsSchema is `test_trials`: a stand-in for grid_search that needs no data. It
// runs `trials` trials, at most `parallel` at once, each a function that sleeps for
// points × interval while the coordinator reports a made-up, decreasing test loss
// every interval. It emits the trial and metric events of the grid_search
// conventions and honours "kill" and "kill-all" commands, so the control plane and
// the dashboard can be tested end to end.
var trialsSchema = &operators.Schema{
	Name:    "test_trials",
	Version: 1,
	Attrs: []operators.Attr{
		{Name: "trials", Type: cty.Number, Integer: true, Default: cty.NumberIntVal(4)},
		{Name: "parallel", Type: cty.Number, Integer: true, Default: cty.NumberIntVal(4), Doc: "trials running at once; the others wait QUEUED"},
		{Name: "points", Type: cty.Number, Integer: true, Default: cty.NumberIntVal(20), Doc: "evaluations per trial"},
		{Name: "interval", Type: cty.String, Default: cty.StringVal("100ms"), Duration: true},
		{Name: "after", Type: cty.DynamicPseudoType, Doc: "ignored: a reference to an upstream stage, to put this one after it in the DAG"},
	},
	Outputs: map[string]cty.Type{"done": cty.Number, "killed": cty.Number, "best": cty.String},
}

type testTrial struct {
	id    string
	pjson string
	rate  float64 // how fast the loss falls

	mu      sync.Mutex // orders this trial's events: no RUNNING after KILLED
	status  operators.TrialStatus
	reason  string
	started time.Time
	loss    float64
	best    float64
	step    int
	cancel  context.CancelFunc
}

// trialID is the ID grid_search gives trials with these parameters.
func trialID(params map[string]float64) string {
	obj := map[string]cty.Value{}
	for k, v := range params {
		obj[k] = cty.NumberFloatVal(v)
	}
	return operators.TrialID(cty.ObjectVal(obj))
}

// event emits the trial's current state; call with t.mu held.
func (t *testTrial) event(s operators.Stage) {
	e := operators.NewTrialEvent(t.id, t.status)
	e.Params, e.Reason = t.pjson, t.reason
	m := &e.Metrics
	m.Iterations, m.Workers = float64(t.step*10), 1
	if !t.started.IsZero() {
		secs := time.Since(t.started).Seconds()
		m.Seconds = secs
		m.CostUSD = s.FunctionCost(time.Since(t.started))
		if t.step > 0 {
			m.TestLogloss, m.BestLogloss = t.loss, t.best
			m.UpdatesPerSecond = float64(t.step*10) / math.Max(secs, 1e-3)
		}
	}
	s.Event(e.Event())
}

func runTrials(ctx context.Context, s operators.Stage) (cty.Value, error) {
	cfg := s.Config()
	n, parallel, points := num(cfg, "trials"), max(1, num(cfg, "parallel")), num(cfg, "points")
	interval := dur(cfg, "interval")
	trials := make([]*testTrial, n)
	byID := map[string]*testTrial{}
	for i := range trials {
		p := map[string]float64{"learning_rate": math.Pow(10, -float64(i%4)-1), "seed": float64(i)}
		b, _ := json.Marshal(p)
		t := &testTrial{pjson: string(b), id: trialID(p), rate: 0.05 + 0.04*float64(i%5), status: operators.TrialQueued}
		trials[i], byID[t.id] = t, t
		t.mu.Lock()
		t.event(s)
		t.mu.Unlock()
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	finished := make(chan *testTrial, n)
	next, running := 0, 0
	start := func() {
		for running < parallel && next < n {
			t := trials[next]
			next++
			t.mu.Lock()
			if t.status != operators.TrialQueued { // killed while queued
				t.mu.Unlock()
				continue
			}
			tctx, cancel := context.WithCancel(ctx)
			t.status, t.started, t.cancel = operators.TrialRunning, time.Now(), cancel
			t.event(s)
			t.mu.Unlock()
			running++
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer cancel()
				runTestTrial(tctx, s, t, points, interval)
				finished <- t
			}()
		}
	}
	kill := func(t *testTrial, reason string) bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.status != operators.TrialQueued && t.status != operators.TrialRunning {
			return false
		}
		t.status, t.reason = operators.TrialKilled, reason
		t.event(s)
		if t.cancel != nil {
			t.cancel()
		}
		return true
	}
	start()
	for running > 0 {
		select {
		case <-ctx.Done():
			return cty.NilVal, ctx.Err()
		case <-finished:
			running--
			start()
		case cmd := <-s.Commands():
			var err error
			switch cmd.Op {
			case "kill":
				t, ok := byID[cmd.Target]
				switch {
				case !ok:
					err = fmt.Errorf("no trial %q in %s", cmd.Target, s.Address())
				case !kill(t, operators.ReasonKilled):
					t.mu.Lock()
					err = fmt.Errorf("trial %s is %s; only a queued or running trial can be killed", t.id, t.status)
					t.mu.Unlock()
				}
			case "kill-all":
				for _, t := range trials {
					kill(t, operators.ReasonKilled)
				}
			default:
				err = fmt.Errorf("%s does not understand %q", s.Address(), cmd.Op)
			}
			cmd.Reply <- err
			start()
		}
	}

	done, killed, best, bestLoss := 0, 0, "", math.Inf(1)
	for _, t := range trials {
		switch t.status {
		case operators.TrialDone:
			done++
			if t.best < bestLoss {
				best, bestLoss = t.id, t.best
			}
		case operators.TrialKilled:
			killed++
		}
	}
	return cty.ObjectVal(map[string]cty.Value{
		"done": cty.NumberIntVal(int64(done)), "killed": cty.NumberIntVal(int64(killed)), "best": cty.StringVal(best),
	}), nil
}

// runTestTrial runs one trial: a function that sleeps for its whole run, while the
// coordinator reports an evaluation every interval.
func runTestTrial(ctx context.Context, s operators.Stage, t *testTrial, points int, interval time.Duration) {
	task := operators.Task{Kind: "test.trial"}
	_ = task.SetParams(map[string]any{"sleep": time.Duration(points) * interval})
	wave := make(chan error, 1)
	go func() {
		_, err := s.RunWave(ctx, operators.Wave{Name: "trial-" + t.id, Tasks: []operators.Task{task}})
		wave <- err
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for step := 1; step <= points; step++ {
		select {
		case <-ctx.Done():
			<-wave
			return
		case <-tick.C:
		}
		t.mu.Lock()
		if t.status != operators.TrialRunning {
			t.mu.Unlock()
			<-wave
			return
		}
		secs := time.Since(t.started).Seconds()
		t.step = step
		t.loss = 0.3 + 0.4*math.Exp(-t.rate*float64(step))
		if step == 1 || t.loss < t.best {
			t.best = t.loss
		}
		s.Event(operators.Event{Kind: "metric", Labels: map[string]string{operators.TrialLabel: t.id}, Metrics: map[string]float64{
			"test_logloss": t.loss, "accuracy": 1 - t.loss/2, "updates": float64(step * 10),
			"updates_per_second": float64(step*10) / math.Max(secs, 1e-3), "t": secs,
		}})
		t.event(s)
		t.mu.Unlock()
	}
	err := <-wave
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.status != operators.TrialRunning {
		return
	}
	if err != nil {
		t.status, t.reason = operators.TrialFailed, err.Error()
	} else {
		t.status = operators.TrialDone
	}
	t.event(s)
}

// trialSleep is a trial's function: it runs until its time is up or it is cancelled.
func trialSleep(ctx context.Context, env operators.Env, t *operators.Task) (*operators.Result, error) {
	var p struct{ Sleep time.Duration }
	if err := t.DecodeParams(&p); err != nil {
		return nil, err
	}
	select {
	case <-time.After(p.Sleep):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &operators.Result{Output: json.RawMessage(`{}`)}, nil
}
