// Package testops holds operators that exercise the executor without data: a map
// wave with injectable faults, a two-wave map-reduce, and long-running workers that
// outlive their lifetime. Tests register them next to the built-in operators; the
// Lambda emulator tests build them into a bootstrap binary.
package testops

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/operators"
)

// Operators returns the test operators.
func Operators() []*operators.Operator {
	return []*operators.Operator{
		{Schema: mapSchema, Coordinator: operators.CoordinatorFunc(runMap), Handlers: map[string]operators.Handler{"test.square": square}},
		{Schema: mapReduceSchema, Coordinator: operators.CoordinatorFunc(runMapReduce), Handlers: map[string]operators.Handler{"test.emit": emit, "test.sum": sum}},
		{Schema: longRunSchema, Coordinator: operators.CoordinatorFunc(runLong), Handlers: map[string]operators.Handler{"test.count": count}},
		{Schema: trialsSchema, Coordinator: operators.CoordinatorFunc(runTrials), Handlers: map[string]operators.Handler{"test.trial": trialSleep}},
	}
}

var mapSchema = &operators.Schema{
	Name:    "test_map",
	Version: 1,
	Attrs: []operators.Attr{
		{Name: "tasks", Type: cty.Number, Integer: true, Default: cty.NumberIntVal(4)},
		{Name: "offset", Type: cty.Number, Integer: true, Default: cty.NumberIntVal(0)},
		{Name: "fail_times", Type: cty.Number, Integer: true, Default: cty.NumberIntVal(0), Doc: "every task fails its first fail_times attempts"},
		{Name: "fail_index", Type: cty.Number, Integer: true, Default: cty.NumberIntVal(-1), Doc: "only this task fails (-1: all)"},
		{Name: "hang_index", Type: cty.Number, Integer: true, Default: cty.NumberIntVal(-1), Doc: "this task's first attempt sleeps past its deadline, ignoring cancellation"},
		{Name: "hang", Type: cty.String, Default: cty.StringVal("2s"), Duration: true},
		{Name: "panic_index", Type: cty.Number, Integer: true, Default: cty.NumberIntVal(-1), Doc: "this task's first attempt panics"},
		{Name: "exit_index", Type: cty.Number, Integer: true, Default: cty.NumberIntVal(-1), Doc: "this task's first attempt kills its process"},
		{Name: "sleep", Type: cty.String, Default: cty.StringVal("1ms"), Duration: true},
		{Name: "marker", Type: cty.String, Default: cty.StringVal(""), Doc: "a file each finished task appends its index to"},
	},
	Outputs: map[string]cty.Type{"sum": cty.Number, "count": cty.Number},
}

type squareParams struct {
	I         int           `json:"i"`
	FailTimes int           `json:"fail_times"`
	Hang      time.Duration `json:"hang"`
	Panic     bool          `json:"panic"`
	Exit      bool          `json:"exit"`
	Sleep     time.Duration `json:"sleep"`
	Marker    string        `json:"marker"`
}

func num(v cty.Value, name string) int {
	f, _ := v.GetAttr(name).AsBigFloat().Int64()
	return int(f)
}

func dur(v cty.Value, name string) time.Duration {
	d, _ := time.ParseDuration(v.GetAttr(name).AsString())
	return d
}

func runMap(ctx context.Context, s operators.Stage) (cty.Value, error) {
	cfg := s.Config()
	n := num(cfg, "tasks")
	tasks := make([]operators.Task, n)
	for i := range tasks {
		p := squareParams{I: i + num(cfg, "offset"), Sleep: dur(cfg, "sleep"), Marker: cfg.GetAttr("marker").AsString()}
		if fi := num(cfg, "fail_index"); fi < 0 || fi == i {
			p.FailTimes = num(cfg, "fail_times")
		}
		if num(cfg, "hang_index") == i {
			p.Hang = dur(cfg, "hang")
		}
		p.Panic = num(cfg, "panic_index") == i
		p.Exit = num(cfg, "exit_index") == i
		tasks[i] = operators.Task{Kind: "test.square"}
		if err := tasks[i].SetParams(p); err != nil {
			return cty.NilVal, err
		}
	}
	res, err := s.RunWave(ctx, operators.Wave{Name: "map", Tasks: tasks})
	if err != nil {
		return cty.NilVal, err
	}
	total := 0
	for _, r := range res {
		var out struct{ Square int }
		if err := json.Unmarshal(r.Output, &out); err != nil {
			return cty.NilVal, fmt.Errorf("bad map result: %w", err)
		}
		total += out.Square
	}
	return cty.ObjectVal(map[string]cty.Value{"sum": cty.NumberIntVal(int64(total)), "count": cty.NumberIntVal(int64(n))}), nil
}

func square(ctx context.Context, env operators.Env, t *operators.Task) (*operators.Result, error) {
	var p squareParams
	if err := t.DecodeParams(&p); err != nil {
		return nil, err
	}
	if t.Attempt < p.FailTimes {
		return nil, fmt.Errorf("injected failure %d of %d", t.Attempt+1, p.FailTimes)
	}
	if t.Attempt == 0 && p.Panic {
		panic("injected panic in task " + t.Name())
	}
	if t.Attempt == 0 && p.Exit {
		exitProcess()
	}
	if t.Attempt == 0 && p.Hang > 0 {
		time.Sleep(p.Hang) // ignores cancellation, as a stuck handler would
	}
	select {
	case <-time.After(p.Sleep):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if p.Marker != "" {
		if err := appendMarker(p.Marker, p.I); err != nil {
			return nil, err
		}
	}
	out, _ := json.Marshal(map[string]int{"square": p.I * p.I})
	return &operators.Result{Output: out, Metrics: map[string]float64{"i": float64(p.I)}}, nil
}

var mapReduceSchema = &operators.Schema{
	Name:    "test_mapreduce",
	Version: 1,
	Attrs: []operators.Attr{
		{Name: "tasks", Type: cty.Number, Integer: true, Default: cty.NumberIntVal(8)},
		{Name: "reducers", Type: cty.Number, Default: cty.NumberIntVal(2)},
	},
	Outputs: map[string]cty.Type{"sum": cty.Number, "partials": cty.List(cty.Number)},
}

func runMapReduce(ctx context.Context, s operators.Stage) (cty.Value, error) {
	cfg := s.Config()
	n, r := num(cfg, "tasks"), num(cfg, "reducers")
	maps := make([]operators.Task, n)
	for i := range maps {
		maps[i] = operators.Task{Kind: "test.emit"}
		_ = maps[i].SetParams(map[string]int{"i": i, "reducers": r})
	}
	mres, err := s.RunWave(ctx, operators.Wave{Name: "map", Tasks: maps})
	if err != nil {
		return cty.NilVal, err
	}
	// Shuffle: reducer j gets every mapper's j-th bucket.
	buckets := make([][]int, r)
	for _, m := range mres {
		var out struct{ Buckets [][]int }
		if err := json.Unmarshal(m.Output, &out); err != nil || len(out.Buckets) != r {
			return cty.NilVal, fmt.Errorf("bad map result %s", m.Output)
		}
		for j := range buckets {
			buckets[j] = append(buckets[j], out.Buckets[j]...)
		}
	}
	reds := make([]operators.Task, r)
	for j := range reds {
		reds[j] = operators.Task{Kind: "test.sum"}
		_ = reds[j].SetParams(map[string][]int{"values": buckets[j]})
	}
	rres, err := s.RunWave(ctx, operators.Wave{Name: "reduce", Tasks: reds})
	if err != nil {
		return cty.NilVal, err
	}
	total := 0
	var partials []cty.Value
	for _, x := range rres {
		var out struct{ Sum int }
		if err := json.Unmarshal(x.Output, &out); err != nil {
			return cty.NilVal, err
		}
		total += out.Sum
		partials = append(partials, cty.NumberIntVal(int64(out.Sum)))
	}
	return cty.ObjectVal(map[string]cty.Value{"sum": cty.NumberIntVal(int64(total)), "partials": cty.ListVal(partials)}), nil
}

// emit maps task i to the values i, 2i, 3i, bucketed by value modulo reducers.
func emit(ctx context.Context, env operators.Env, t *operators.Task) (*operators.Result, error) {
	var p struct{ I, Reducers int }
	if err := t.DecodeParams(&p); err != nil {
		return nil, err
	}
	b := make([][]int, p.Reducers)
	for k := 1; k <= 3; k++ {
		v := p.I * k
		b[v%p.Reducers] = append(b[v%p.Reducers], v)
	}
	out, _ := json.Marshal(map[string]any{"buckets": b})
	return &operators.Result{Output: out}, nil
}

func sum(ctx context.Context, env operators.Env, t *operators.Task) (*operators.Result, error) {
	var p struct{ Values []int }
	if err := t.DecodeParams(&p); err != nil {
		return nil, err
	}
	s := 0
	for _, v := range p.Values {
		s += v
	}
	out, _ := json.Marshal(map[string]int{"sum": s})
	return &operators.Result{Output: out}, nil
}

var longRunSchema = &operators.Schema{
	Name:    "test_longrun",
	Version: 1,
	Attrs: []operators.Attr{
		{Name: "workers", Type: cty.Number, Default: cty.NumberIntVal(2)},
		{Name: "steps", Type: cty.Number, Default: cty.NumberIntVal(20)},
		{Name: "step", Type: cty.String, Default: cty.StringVal("10ms"), Duration: true},
		{Name: "lifetime", Type: cty.String, Default: cty.StringVal("60ms"), Duration: true},
	},
	Outputs: map[string]cty.Type{"steps": cty.Number, "generations": cty.Number},
}

type position struct {
	Step        int `json:"step"`
	Generations int `json:"generations"`
}

func runLong(ctx context.Context, s operators.Stage) (cty.Value, error) {
	cfg := s.Config()
	w := num(cfg, "workers")
	tasks := make([]operators.Task, w)
	for i := range tasks {
		tasks[i] = operators.Task{Kind: "test.count"}
		_ = tasks[i].SetParams(map[string]any{"steps": num(cfg, "steps"), "step": dur(cfg, "step")})
	}
	res, err := s.RunWave(ctx, operators.Wave{Name: "workers", Tasks: tasks, LongRunning: true, Lifetime: dur(cfg, "lifetime")})
	if err != nil {
		return cty.NilVal, err
	}
	steps, gens := 0, 0
	for _, r := range res {
		var p position
		if err := json.Unmarshal(r.Output, &p); err != nil {
			return cty.NilVal, err
		}
		steps += p.Step
		gens = max(gens, p.Generations)
	}
	return cty.ObjectVal(map[string]cty.Value{"steps": cty.NumberIntVal(int64(steps)), "generations": cty.NumberIntVal(int64(gens))}), nil
}

// count advances a counter one step at a time, yielding its position before its
// deadline; the next generation resumes from it.
func count(ctx context.Context, env operators.Env, t *operators.Task) (*operators.Result, error) {
	var p struct {
		Steps int
		Step  time.Duration
	}
	if err := t.DecodeParams(&p); err != nil {
		return nil, err
	}
	var pos position
	if len(t.Resume) > 0 {
		if err := json.Unmarshal(t.Resume, &pos); err != nil {
			return nil, fmt.Errorf("bad resume position: %w", err)
		}
	}
	pos.Generations = t.Generation + 1
	for pos.Step < p.Steps {
		if time.Until(t.Deadline) < 2*p.Step {
			b, _ := json.Marshal(pos)
			return &operators.Result{Yield: true, Resume: b}, nil
		}
		select {
		case <-time.After(p.Step):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		pos.Step++
	}
	b, _ := json.Marshal(pos)
	return &operators.Result{Output: b}, nil
}
