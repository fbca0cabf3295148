package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/internal/pricing"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/planner"
)

// Limits on what a Hub keeps in memory, whatever the length of the apply.
const (
	// MaxPoints bounds the points kept per curve: past it, every other old point is
	// dropped, so a long run keeps its shape at half the resolution.
	MaxPoints = 4000
	// maxLog bounds the log lines kept.
	maxLog = 200
	// subscriberBuffer is how many messages a slow dashboard may lag behind before
	// it is disconnected (its browser reconnects and gets a fresh snapshot).
	subscriberBuffer = 4096
)

// Hub follows an apply: it is an executor.Observer that keeps the latest state of
// every stage and trial, each curve's evaluation points, and the running totals, and
// fans each change out to subscribers (the dashboards' event streams). Event never
// blocks on a subscriber: one that falls subscriberBuffer messages behind is
// dropped. A Hub is safe for concurrent use.
type Hub struct {
	pricing  pricing.Pricing
	memoryMB int

	mu     sync.Mutex
	run    RunInfo
	stages map[string]*stageState
	order  []string // stage addresses, plan order
	trials map[CurveKey]*Trial
	torder []CurveKey
	curves map[CurveKey]*Curve
	corder []CurveKey
	rates  map[CurveKey]float64 // latest updates/s per curve
	log    []LogLine
	subs   map[*subscriber]struct{}
	closed bool
}

type stageState struct {
	StageStatus
	active    map[string]time.Time // "wave/index" → when its function started
	fnSeconds float64              // function-seconds of ended attempts
	final     bool                 // CostUSD is the executor's own figure
}

// HubOptions configure a Hub.
type HubOptions struct {
	// Plan gives the DAG and each stage's action; nil starts with no stages (they
	// appear as events name them).
	Plan *planner.Plan
	// Pricing prices functions' run time (zero: pricing.Default()), each function
	// having MemoryMB (zero: pricing.DefaultMemoryMB).
	Pricing  pricing.Pricing
	MemoryMB int
	// Run describes the apply.
	Run RunInfo
}

// NewHub returns a Hub for an apply of o.Plan.
func NewHub(o HubOptions) *Hub {
	h := &Hub{
		pricing:  o.Pricing,
		memoryMB: o.MemoryMB,
		run:      o.Run,
		stages:   map[string]*stageState{},
		trials:   map[CurveKey]*Trial{},
		curves:   map[CurveKey]*Curve{},
		rates:    map[CurveKey]float64{},
		subs:     map[*subscriber]struct{}{},
	}
	if h.pricing.PerGBSecond <= 0 {
		h.pricing = pricing.Default()
	}
	if h.memoryMB <= 0 {
		h.memoryMB = pricing.DefaultMemoryMB
	}
	if h.run.Mode == "" {
		h.run.Mode = "live"
	}
	if h.run.State == "" {
		h.run.State = "running"
	}
	if o.Plan != nil {
		for _, sp := range o.Plan.Stages {
			st := h.stage(sp.Address)
			st.Operator, st.Action, st.Reason = sp.Operator, string(sp.Action), sp.Reason
			st.Deps = append([]string{}, sp.Deps...)
			if sp.Action == planner.Cached {
				st.Status = StageCached
			}
		}
	}
	return h
}

// stage returns the state of addr, adding it when new. Call with h.mu held.
func (h *Hub) stage(addr string) *stageState {
	if st := h.stages[addr]; st != nil {
		return st
	}
	st := &stageState{StageStatus: StageStatus{Address: addr, Status: StagePending, Deps: []string{}}, active: map[string]time.Time{}}
	h.stages[addr] = st
	h.order = append(h.order, addr)
	return st
}

// Event records e and sends what changed to the subscribers.
func (h *Hub) Event(e executor.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var msgs []message
	emitStage := func(st *stageState) {
		st.CostUSD = h.stageCost(st, e.Time)
		st.Active = len(st.active)
		s := st.StageStatus
		msgs = append(msgs, message{"stage", &s})
	}
	switch e.Type {
	case executor.ApplyStarted:
		if h.run.Started.IsZero() {
			h.run.Started = e.Time
		}
		h.run.State = "running"
		msgs = append(msgs, message{"run", h.run})
	case executor.StageCached:
		st := h.stage(e.Stage)
		st.Operator, st.Status = e.Operator, StageCached
		emitStage(st)
	case executor.StageStarted:
		st := h.stage(e.Stage)
		st.Operator, st.Status, st.Started = e.Operator, StageRunning, e.Time
		emitStage(st)
	case executor.TaskStarted:
		st := h.stage(e.Stage)
		st.active[taskKey(e)] = e.Time
		st.Tasks++
		emitStage(st)
	case executor.TaskFinished, executor.TaskRelaunch, executor.TaskRetried, executor.TaskFailed:
		st := h.stage(e.Stage)
		h.endTask(st, taskKey(e), e.Time, e.Duration)
		if e.Type == executor.TaskFailed {
			msgs = append(msgs, h.addLog(LogLine{Time: e.Time, Stage: e.Stage, Level: "error", Text: firstLine(e.Error)}))
		}
		emitStage(st)
	case executor.WaveFinished:
		// Tasks still counted active were cancelled (a killed trial): they ended now.
		st := h.stage(e.Stage)
		for k := range st.active {
			if strings.HasPrefix(k, e.Wave+"/") {
				h.endTask(st, k, e.Time, 0)
			}
		}
		emitStage(st)
	case executor.StageEvent:
		msgs = append(msgs, h.operatorEvent(e)...)
		if n, ok := e.Metrics["workers"]; ok && e.Kind == "workers" && e.Labels[operators.TrialLabel] == "" {
			st := h.stage(e.Stage)
			st.Workers = int(n)
			if e.Note == "" {
				emitStage(st)
			}
		}
		if e.Note != "" {
			st := h.stage(e.Stage)
			st.Note = e.Note
			emitStage(st)
		}
	case executor.StageFinished, executor.StageFailed:
		st := h.stage(e.Stage)
		for k := range st.active {
			h.endTask(st, k, e.Time, 0)
		}
		st.Finished = e.Time
		st.Status = StageDone
		if e.Type == executor.StageFailed {
			st.Status, st.Error = StageFailed, e.Error
			msgs = append(msgs, h.addLog(LogLine{Time: e.Time, Stage: e.Stage, Level: "error", Text: "failed: " + firstLine(e.Error)}))
		}
		if e.Summary != nil {
			st.Tasks, st.CostUSD, st.final = e.Summary.Tasks, fin(e.Summary.CostUSD), true
		}
		emitStage(st)
	case executor.ApplyFinished:
		h.run.Finished, h.run.State, h.run.CanKill = e.Time, "done", false
		for _, a := range h.order {
			st := h.stages[a]
			switch st.Status {
			case StageFailed:
				h.run.State = "failed"
			case StageRunning:
				st.Status = StageInterrupted
				for k := range st.active {
					h.endTask(st, k, e.Time, 0)
				}
				emitStage(st)
			case StagePending:
				st.Status = StageSkipped
				emitStage(st)
			}
		}
		for _, a := range h.order {
			if h.stages[a].Status == StageInterrupted && h.run.State == "done" {
				h.run.State = "interrupted"
			}
		}
		msgs = append(msgs, message{"run", h.run})
	}
	msgs = append(msgs, message{"event", wireEvent(e)})
	h.broadcast(msgs)
}

func taskKey(e executor.Event) string { return fmt.Sprintf("%s/%d", e.Wave, e.Index) }

// endTask accounts for the end of a function started under key. Call with h.mu held.
func (h *Hub) endTask(st *stageState, key string, now time.Time, d time.Duration) {
	began, ok := st.active[key]
	if !ok {
		return
	}
	delete(st.active, key)
	if d <= 0 {
		d = now.Sub(began)
	}
	st.fnSeconds += d.Seconds()
}

// stageCost is the stage's recorded cost once it finished, else the estimate from
// its functions' run time so far. Call with h.mu held.
func (h *Hub) stageCost(st *stageState, now time.Time) float64 {
	if st.final {
		return st.CostUSD
	}
	secs := st.fnSeconds
	for _, began := range st.active {
		secs += now.Sub(began).Seconds()
	}
	return h.fnCost(secs)
}

// fnCost is what one function costs for secs seconds.
func (h *Hub) fnCost(secs float64) float64 {
	return h.pricing.Function(time.Duration(secs*float64(time.Second)), h.memoryMB)
}

// operatorEvent handles an operator's event: trial state, evaluation points, notes.
// Call with h.mu held.
func (h *Hub) operatorEvent(e executor.Event) []message {
	var msgs []message
	id := e.Labels[operators.TrialLabel]
	key := CurveKey{Stage: e.Stage, Trial: id}
	switch e.Kind {
	case operators.KindTrial:
		te, ok := e.Trial()
		if !ok {
			return nil
		}
		t := h.trial(key)
		// A status left out keeps the trial's; an ended trial does not run again.
		if s := te.Status; s != "" && !(t.Status.Terminal() && !s.Terminal()) {
			if s != t.Status && s.Terminal() {
				text := t.ID + " " + string(s)
				if te.Reason != "" {
					text += ": " + te.Reason
				}
				level := "info"
				if s == operators.TrialFailed {
					level = "warn"
				}
				msgs = append(msgs, h.addLog(LogLine{Time: e.Time, Stage: e.Stage, Trial: id, Level: level, Text: text}))
			}
			t.Status = s
		}
		if te.Params != "" {
			t.Params = rawParams(te.Params)
		}
		if te.Reason != "" {
			t.Reason = te.Reason
		}
		if te.Model != "" {
			t.Model = te.Model
		}
		for k, v := range te.Metrics.Map() {
			t.Metrics[k] = v
		}
		if v := te.Metrics.UpdatesPerSecond; !math.IsNaN(v) {
			h.rates[key] = v
		}
		t.Updated = e.Time
		c := *t
		c.Metrics = clone(t.Metrics)
		msgs = append(msgs, message{"trial", &c})
	case "metric":
		p := h.addPoint(key, e)
		msgs = append(msgs, message{"point", pointMsg{CurveKey: key, Point: p}})
		if v, ok := e.Metrics["updates_per_second"]; ok {
			h.rates[key] = v
		}
		if id != "" {
			// Follow the loss from metric events too, for operators that report a
			// trial's evaluations more often than its state.
			t := h.trial(key)
			if p.Loss != nil {
				t.Metrics["test_logloss"] = *p.Loss
				if b, ok := t.Metrics["best_logloss"]; !ok || *p.Loss < b {
					t.Metrics["best_logloss"] = *p.Loss
				}
			}
			if t.Status == "" {
				t.Status = operators.TrialRunning
			}
			t.Updated = e.Time
			c := *t
			c.Metrics = clone(t.Metrics)
			msgs = append(msgs, message{"trial", &c})
		}
	}
	if e.Note != "" {
		msgs = append(msgs, h.addLog(LogLine{Time: e.Time, Stage: e.Stage, Trial: id, Level: "info", Text: e.Note}))
	}
	return msgs
}

// trial returns the trial under key, adding it when new. Call with h.mu held.
func (h *Hub) trial(key CurveKey) *Trial {
	if t := h.trials[key]; t != nil {
		return t
	}
	t := &Trial{Stage: key.Stage, ID: key.Trial, Metrics: Metrics{}}
	h.trials[key] = t
	h.torder = append(h.torder, key)
	return t
}

// addPoint appends an evaluation to its curve, estimating its cost. Call with h.mu
// held.
func (h *Hub) addPoint(key CurveKey, e executor.Event) Point {
	c := h.curves[key]
	if c == nil {
		c = &Curve{CurveKey: key}
		h.curves[key] = c
		h.corder = append(h.corder, key)
	}
	p := Point{Time: e.Time.UnixMilli(), Loss: finiteLoss(e.Metrics), Updates: e.Metrics["updates"]}
	if t, ok := e.Metrics["t"]; ok {
		p.T = t
	} else if len(c.Points) > 0 {
		p.T = c.Points[0].T + float64(p.Time-c.Points[0].Time)/1000
	}
	st := h.stage(key.Stage)
	switch t := h.trials[key]; {
	case key.Trial == "" && st.final && st.Finished.After(st.Started):
		// A recorded stage: its cost spread over its run time.
		f := float64(e.Time.Sub(st.Started)) / float64(st.Finished.Sub(st.Started))
		p.CostUSD = st.CostUSD * min(max(f, 0), 1)
	case key.Trial == "":
		p.CostUSD = h.stageCost(st, e.Time)
	case t != nil && t.Metrics["seconds"] > 0 && t.Metrics["cost_usd"] > 0:
		p.CostUSD = t.Metrics["cost_usd"] / t.Metrics["seconds"] * p.T
	default:
		workers := 1.0
		if t != nil && t.Metrics["workers"] > 0 {
			workers = t.Metrics["workers"]
		}
		p.CostUSD = h.fnCost(workers * p.T)
	}
	// JSON has no NaN or infinity: a point must always encode.
	p.T, p.CostUSD, p.Updates = fin(p.T), fin(p.CostUSD), fin(p.Updates)
	c.Points = append(c.Points, p)
	if len(c.Points) > MaxPoints {
		c.Points = decimate(c.Points)
	}
	return p
}

// decimate drops every other point of the older half, keeping the first and the
// recent half whole.
func decimate(ps []Point) []Point {
	half := len(ps) / 2
	out := ps[:1]
	for i := 2; i < half; i += 2 {
		out = append(out, ps[i])
	}
	return append(out, ps[half:]...)
}

// addLog keeps a log line and returns its message. Call with h.mu held.
func (h *Hub) addLog(l LogLine) message {
	h.log = append(h.log, l)
	if len(h.log) > maxLog {
		h.log = append(h.log[:0:0], h.log[len(h.log)-maxLog:]...)
	}
	return message{"log", l}
}

// Status returns a copy of the current state.
func (h *Hub) Status() Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status(time.Now())
}

func (h *Hub) status(now time.Time) Status {
	s := Status{Run: h.run, Stages: make([]*StageStatus, 0, len(h.order)), Trials: make([]*Trial, 0, len(h.torder)), Log: append([]LogLine{}, h.log...)}
	for _, a := range h.order {
		st := h.stages[a]
		st.CostUSD = h.stageCost(st, now)
		st.Active = len(st.active)
		c := st.StageStatus
		c.Deps = append([]string{}, st.Deps...)
		s.Stages = append(s.Stages, &c)
	}
	for _, k := range h.torder {
		t := *h.trials[k]
		t.Metrics = clone(t.Metrics)
		s.Trials = append(s.Trials, &t)
	}
	s.Totals = h.totals(now)
	return s
}

// Totals returns the running totals.
func (h *Hub) Totals() Totals {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.totals(time.Now())
}

func (h *Hub) totals(now time.Time) Totals {
	t := Totals{Trials: map[operators.TrialStatus]int{}}
	for _, a := range h.order {
		st := h.stages[a]
		t.ActiveFunctions += len(st.active)
		t.CostUSD += h.stageCost(st, now)
	}
	for k, r := range h.rates {
		st := h.stages[k.Stage]
		if st == nil || st.Status != StageRunning {
			continue
		}
		if k.Trial != "" {
			if tr := h.trials[k]; tr != nil && tr.Status != operators.TrialRunning {
				continue
			}
		}
		if !math.IsNaN(r) && !math.IsInf(r, 0) {
			t.UpdatesPerSecond += r
		}
	}
	for _, tr := range h.trials {
		t.Trials[tr.Status]++
	}
	switch {
	case h.run.Started.IsZero():
	case !h.run.Finished.IsZero():
		t.Elapsed = h.run.Finished.Sub(h.run.Started).Seconds()
	default:
		t.Elapsed = now.Sub(h.run.Started).Seconds()
	}
	return t
}

// Curves returns a copy of every curve's points.
func (h *Hub) Curves() []Curve {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.curveCopies()
}

func (h *Hub) curveCopies() []Curve {
	out := make([]Curve, 0, len(h.corder))
	for _, k := range h.corder {
		c := h.curves[k]
		out = append(out, Curve{CurveKey: c.CurveKey, Points: append([]Point{}, c.Points...)})
	}
	return out
}

// Trial returns the trial id of stage (any stage when stage is ""): the first match
// in the order trials appeared, or nil.
func (h *Hub) Trial(stage, id string) *Trial {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range h.torder {
		if k.Trial == id && (stage == "" || k.Stage == stage) {
			t := *h.trials[k]
			t.Metrics = clone(t.Metrics)
			return &t
		}
	}
	return nil
}

// TrialStages returns the stages that reported trials.
func (h *Hub) TrialStages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, k := range h.torder {
		if !seen[k.Stage] {
			seen[k.Stage] = true
			out = append(out, k.Stage)
		}
	}
	return out
}

// StageStatus returns the status of the stage at addr ("" when unknown).
func (h *Hub) StageStatus(addr string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st := h.stages[addr]; st != nil {
		return st.Status
	}
	return ""
}

// fin returns x, or 0 when x is NaN or infinite.
func fin(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

func clone(m Metrics) Metrics {
	c := make(Metrics, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// rawParams keeps a params label that is a JSON object as it is, and quotes any
// other text as a JSON string.
func rawParams(s string) json.RawMessage {
	b := []byte(s)
	if json.Valid(b) && bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		return json.RawMessage(b)
	}
	q, _ := json.Marshal(s)
	return q
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// sortedKeys returns m's keys sorted.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
