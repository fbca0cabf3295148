package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset/prefetch"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/psstore"
)

// An SGD run's workers run as segments: each a long-running wave of one worker
// count. A run with a fixed count has one segment. When an elastic run's rule
// (scale.go) asks for another count, the coordinator sets the control key
// "segment"; the workers flush, publish and return their positions; the
// coordinator deals what they left of their epoch to the new count as the next
// segment, which continues from there. Each segment's plan is written to the
// blob store before it starts, so that an interrupted run resumes the same
// segments.

// autoSized is a Stage that knows which of its arguments the planner chose
// ("auto"); the executor's stage does.
type autoSized interface {
	AutoSized(param string) bool
}

// limited is a Stage that knows how much of its budget and deadline is left
// (+Inf: none).
type limited interface {
	Left() (usd float64, wall time.Duration)
}

// sharedCores is a Stage that knows how many cores the backend's functions
// share (the executor's stage does: the local backend's; 0 on Lambda).
type sharedCores interface {
	Cores() int
}

// elastic reports whether a run may change its worker count: the stage's own
// run (not a grid search trial, which shares the backend with the others) whose
// workers the planner chose. The caller also needs room for two workers
// (elasticMax).
func elastic(s operators.Stage, trial string) bool {
	a, ok := s.(autoSized)
	return ok && trial == "" && a.AutoSized("workers")
}

// elasticMax is the most workers an elastic run may scale to (ElasticMax): from
// the backend's concurrency, the cores its functions share and the members of
// the psstore cluster.
func elasticMax(s operators.Stage, ps *psstore.Client) int {
	l := ElasticLimits{Functions: s.Capacity()}
	if c, ok := s.(sharedCores); ok {
		l.Cores = c.Cores()
	}
	if ps != nil {
		if m := ps.Map(); m != nil {
			l.Members = len(m.Members)
		}
	}
	n, _ := ElasticMax(l)
	return n
}

// segmentPlan is what a segment runs.
type segmentPlan struct {
	Workers    int    `json:"workers"`
	StartEpoch int    `json:"start_epoch"`
	RestKey    string `json:"rest,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

// waveOut is a segment's wave result.
type waveOut struct {
	res []*operators.Result
	err error
}

// workerPool runs a run's worker segments.
type workerPool struct {
	s        operators.Stage
	st       blob.Store
	ctl      control
	wave     string // the first segment's wave name
	dir      string
	units    []prefetch.Unit
	params   workerParams // the template: Worker, Workers and the segment's fields are set per task
	lifetime time.Duration
	elastic  bool
	done     chan waveOut

	seg     int         // the running segment
	plan    segmentPlan // its plan
	next    *segmentPlan
	results []*operators.Result // of the segments that ended
}

func (p *workerPool) segWave(k int) string {
	if k == 0 {
		return p.wave
	}
	return fmt.Sprintf("%s.%d", p.wave, k)
}

func (p *workerPool) planKey(k int) string {
	return fmt.Sprintf("%ssegments/%s.json", p.dir, p.segWave(k))
}

// launch starts segment k with plan in its own goroutine, which reports on
// p.done; the wave ends when ctx does.
func (p *workerPool) launch(ctx context.Context, k int, plan segmentPlan) error {
	if p.elastic {
		if rec, err := p.readPlan(ctx, k); err != nil {
			return err
		} else if rec != nil {
			plan = *rec // an interrupted run of this stage ran it so: resume it
		} else if err := p.writePlan(ctx, k, plan); err != nil {
			return err
		}
	}
	tasks := make([]operators.Task, plan.Workers)
	for i := range tasks {
		wp := p.params
		wp.Worker, wp.Workers = i, plan.Workers
		wp.Elastic, wp.Segment, wp.StartEpoch, wp.RestKey = p.elastic, k, plan.StartEpoch, plan.RestKey
		tasks[i] = operators.Task{Kind: KindWorker}
		if err := tasks[i].SetParams(wp); err != nil {
			return err
		}
	}
	p.seg, p.plan, p.next = k, plan, nil
	name := p.segWave(k)
	go func() {
		r, err := p.s.RunWave(ctx, operators.Wave{Name: name, Tasks: tasks, LongRunning: true, Lifetime: p.lifetime})
		p.done <- waveOut{res: r, err: err}
	}()
	return nil
}

func (p *workerPool) readPlan(ctx context.Context, k int) (*segmentPlan, error) {
	rc, err := p.st.Get(ctx, p.planKey(k))
	if errors.Is(err, blob.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the plan of worker segment %d: %w", k, err)
	}
	defer rc.Close()
	var sp segmentPlan
	if err := json.NewDecoder(rc).Decode(&sp); err != nil || sp.Workers < 1 {
		return nil, fmt.Errorf("bad plan of worker segment %d at %s: %v", k, p.st.URI(p.planKey(k)), err)
	}
	return &sp, nil
}

func (p *workerPool) writePlan(ctx context.Context, k int, plan segmentPlan) error {
	b, _ := json.Marshal(plan)
	if err := p.st.Put(ctx, p.planKey(k), bytes.NewReader(b)); err != nil {
		return fmt.Errorf("record the plan of worker segment %d: %w", k, err)
	}
	return nil
}

// rescale asks the running segment's workers to end it, so that the next runs
// n workers. It does nothing while a change is under way.
func (p *workerPool) rescale(ctx context.Context, n int, reason string) error {
	if p.next != nil || n == p.plan.Workers {
		return nil
	}
	p.next = &segmentPlan{Workers: n, Reason: reason}
	return p.ctl.rescale(ctx, p.seg+1)
}

// ended takes a segment's results: it returns true when training is over
// (every worker finished its epochs or was stopped), and otherwise launches the
// next segment, from where the workers left the epoch.
func (p *workerPool) ended(ctx context.Context, w waveOut, stopping bool) (over bool, err error) {
	p.results = append(p.results, w.res...)
	var outs []workerResult
	rescaled := false
	for _, r := range w.res {
		var wr workerResult
		if err := json.Unmarshal(r.Output, &wr); err != nil {
			return true, fmt.Errorf("bad worker result: %w", err)
		}
		outs = append(outs, wr)
		rescaled = rescaled || wr.Rescaled
	}
	if !rescaled || stopping {
		return true, nil
	}
	plan := p.next
	if plan == nil {
		// A resumed run: the interrupted one changed the count here. Its plan
		// of the next segment says to what (launch reads it); else keep it.
		plan = &segmentPlan{Workers: p.plan.Workers}
	}
	epoch, rest, err := p.remainder(ctx, outs)
	if err != nil {
		return true, err
	}
	if epoch >= p.params.Epochs {
		return true, nil
	}
	plan.StartEpoch, plan.RestKey = epoch, ""
	if len(rest) > 0 {
		plan.RestKey = fmt.Sprintf("%ssegments/%s.rest.json", p.dir, p.segWave(p.seg+1))
		if err := saveUnits(ctx, p.st, plan.RestKey, rest); err != nil {
			return true, err
		}
	}
	if err := p.launch(ctx, p.seg+1, *plan); err != nil {
		return true, err
	}
	return false, nil
}

// remainder is where the next segment starts: the earliest epoch a worker of
// the last one was in, and the units of that epoch no worker had read (the
// unit a worker was in from its row on). Workers already in a later epoch
// read part of it twice (asynchronous SGD does not mind a few rows more).
func (p *workerPool) remainder(ctx context.Context, outs []workerResult) (int, []prefetch.Unit, error) {
	epoch := math.MaxInt
	for _, o := range outs {
		epoch = min(epoch, o.Position.Epoch)
	}
	if epoch == math.MaxInt || epoch >= p.params.Epochs {
		return epoch, nil, nil
	}
	src := p.units
	if epoch == p.plan.StartEpoch && p.plan.RestKey != "" {
		rest, err := loadUnits(ctx, p.st, p.plan.RestKey)
		if err != nil {
			return 0, nil, err
		}
		src = rest
	}
	var rest []prefetch.Unit
	for i, o := range outs {
		if o.Position.Epoch != epoch {
			continue
		}
		mine := deal(src, p.params.Seed, epoch, i, len(outs))
		for j := o.Position.Unit; j < len(mine); j++ {
			u := mine[j]
			if j == o.Position.Unit && o.Position.Row > u.Lo {
				u.Lo = o.Position.Row
				if u.Hi >= 0 && u.Lo >= u.Hi {
					continue
				}
			}
			rest = append(rest, u)
		}
	}
	if len(rest) == 0 {
		return epoch + 1, nil, nil
	}
	return epoch, rest, nil
}

// totals are the workers' results of every segment.

// scalePoint is an evaluation as the scaling rule sees it: examples are the
// model's applied pushes times the minibatch; it belongs to the pool's running
// segment, and to a change of the count when one is under way (its workers
// are handing over).
func scalePoint(e EvalPoint, pool *workerPool, minibatch int) ScalePoint {
	return ScalePoint{Seconds: e.Seconds, Loss: e.Logloss, Examples: float64(e.Iterations) * float64(minibatch),
		Workers: pool.plan.Workers, Segment: pool.seg, HandOver: pool.next != nil}
}

// scaleChange is one change of the worker count, as recorded and reported.
type scaleChange struct {
	Seconds  float64 `json:"t"`
	From, To int
	Reason   string
}

func (c scaleChange) note() string {
	return fmt.Sprintf("workers %d → %d: %s", c.From, c.To, c.Reason)
}

// scaleEvent is the event of a change: a note for the progress output, and the
// new count (with the old) as metrics for the dashboard and the state's series.
func scaleEvent(c scaleChange, labels map[string]string) operators.Event {
	return operators.Event{Kind: KindWorkersEvent, Labels: labels, Note: c.note(),
		Metrics: map[string]float64{"workers": float64(c.To), "workers_from": float64(c.From), "t": c.Seconds}}
}

// KindWorkersEvent is the kind of the event a train stage reports when it
// changes its worker count; its metrics carry "workers" (the new count) and
// "workers_from".
const KindWorkersEvent = "workers"

// stageLeft returns the budget and deadline the stage has left (+Inf: none).
func stageLeft(s operators.Stage) (float64, float64) {
	if l, ok := s.(limited); ok {
		usd, wall := l.Left()
		w := math.Inf(1)
		if wall < time.Duration(math.MaxInt64) {
			w = wall.Seconds()
		}
		return usd, w
	}
	return math.Inf(1), math.Inf(1)
}

// unitRows counts the rows of units, whose partitions are parts.
func unitRows(units []prefetch.Unit, parts []PartRef) int {
	rows := map[string]int{}
	for _, p := range parts {
		rows[p.Key] = p.Rows
	}
	n := 0
	for _, u := range units {
		hi := rows[u.Key]
		if u.Hi >= 0 {
			hi = min(hi, u.Hi)
		}
		n += max(0, hi-u.Lo)
	}
	return n
}
