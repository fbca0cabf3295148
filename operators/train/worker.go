package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/stratus-ml/stratus/dataset/prefetch"
	"github.com/stratus-ml/stratus/operators"
)

// workerParams are a worker task's parameters.
type workerParams struct {
	Model     string `json:"model"`
	Dim       uint64 `json:"dim"`
	UnitsKey  string `json:"units"` // blob key of the training units (JSON)
	Worker    int    `json:"worker"`
	Workers   int    `json:"workers"`
	Minibatch int    `json:"minibatch"`
	Epochs    int    `json:"epochs"`
	Seed      int64  `json:"seed"`
	Prefetch  int    `json:"prefetch"`
	Kind      string `json:"model_kind,omitempty"` // the loss: "" or logistic_regression, linear_svm
	// Classes are softmax's classes (see labelFunc).
	Classes []float64 `json:"classes,omitempty"`
	// Huber is linear_regression's Huber threshold (0: the squared loss).
	Huber float64 `json:"huber,omitempty"`
	// An elastic run's workers run in segments of one worker count each
	// (coordinator_elastic.go): Segment numbers the worker's, which starts at
	// StartEpoch with the units at RestKey (what the previous segment left of
	// that epoch; empty: all units), and ends when the coordinator asks for a
	// later segment.
	Elastic    bool   `json:"elastic,omitempty"`
	Segment    int    `json:"segment,omitempty"`
	StartEpoch int    `json:"start_epoch,omitempty"`
	RestKey    string `json:"rest,omitempty"`
}

// position is where a worker is: the epoch, the unit of its share of that epoch, and
// the row in that unit's partition. It is handed to the next generation (and
// published, so a worker relaunched after a crash resumes near where it died).
type position struct {
	Epoch int `json:"epoch"`
	Unit  int `json:"unit"`
	Row   int `json:"row"`
}

func (p position) before(q position) bool {
	if p.Epoch != q.Epoch {
		return p.Epoch < q.Epoch
	}
	if p.Unit != q.Unit {
		return p.Unit < q.Unit
	}
	return p.Row < q.Row
}

// workerResume is what a worker hands to its next generation.
type workerResume struct {
	Position   position `json:"position"`
	Iterations int64    `json:"iterations"`
	Examples   int64    `json:"examples"`
	Phases     phases   `json:"phases"`
}

// workerResult is a worker's final output.
type workerResult struct {
	Iterations int64     `json:"iterations"`
	Examples   int64     `json:"examples"`
	Phases     phases    `json:"phases"`
	Hist       histogram `json:"hist"`
	// PullHist and PushHist time the psstore client's sparse pulls and pushes
	// (a push is queued, so it is the client's side of it), for the latencies
	// the stage records (calibration).
	PullHist histogram `json:"pull_hist"`
	PushHist histogram `json:"push_hist"`
	Stopped  bool      `json:"stopped"` // told to stop before its epochs were done
	// Rescaled says the worker ended its segment because the coordinator
	// changed the worker count, at Position.
	Rescaled bool     `json:"rescaled,omitempty"`
	Position position `json:"position"`
}

// Intervals of a worker's side traffic.
const (
	stopCheckEvery = 100 * time.Millisecond
	publishEvery   = 500 * time.Millisecond
)

// testHooks let this package's tests wait for a worker's events instead of
// guessing their timing; both are nil outside tests. started is told where an
// attempt resumes: the generation's position (resume) and where it starts after
// reading its own last publication (start). published is told of each
// mid-run publication of the worker's position.
var testHooks struct {
	started   func(ctx context.Context, t *operators.Task, worker int, resume, start position)
	published func(ctx context.Context, t *operators.Task, worker int, pos position)
}

// handover is how long before its deadline a function of the given lifetime hands
// over to the next generation: enough to flush its pushes and return, and never so
// much that a short lifetime leaves no time to work.
func handover(lifetime time.Duration) time.Duration {
	return min(max(lifetime/20, 20*time.Millisecond), 2*time.Second)
}

// runWorker is the "train.worker" task: it runs asynchronous SGD over its share of
// each epoch — next minibatch from the prefetching iterator, pull the minibatch's
// weights, compute the logistic-loss gradient, push it without waiting — until its
// epochs are done, the coordinator says stop, or its lifetime nears its end, when it
// yields its position to the next generation. A crash loses at most the push in
// flight and the progress since its last publication (half a second).
func runWorker(ctx context.Context, env operators.Env, t *operators.Task) (*operators.Result, error) {
	var p workerParams
	if err := t.DecodeParams(&p); err != nil {
		return nil, err
	}
	sh, err := setupTask(ctx, env, p.Model, p.UnitsKey)
	if err != nil {
		return nil, err
	}
	store, ps, ctl, units := sh.store, sh.ps, sh.ctl, sh.units

	var rs workerResume
	rs.Position.Epoch = p.StartEpoch
	var rest []prefetch.Unit
	if p.RestKey != "" {
		if rest, err = loadUnits(ctx, store, p.RestKey); err != nil {
			return nil, err
		}
	}
	if len(t.Resume) > 0 {
		if err := json.Unmarshal(t.Resume, &rs); err != nil {
			return nil, fmt.Errorf("task %s: bad resume position: %w", t.Name(), err)
		}
	}
	resume := rs.Position
	// A relaunch after a crash starts from the generation's position; the worker's
	// own last publication may be further along.
	if pub, err := ctl.workers(ctx, p.Workers); err == nil {
		for _, s := range pub {
			if s.Worker == p.Worker && s.Segment == p.Segment && rs.Position.before(s.Position) && !s.Done {
				rs.Position, rs.Iterations, rs.Examples, rs.Phases = s.Position, s.Iterations, s.Examples, s.Phases
			}
		}
	}
	if testHooks.started != nil {
		testHooks.started(ctx, t, p.Worker, resume, rs.Position)
	}

	var mb *minibatch
	var sb *softmaxBatch
	if p.Kind == "softmax" {
		sb = newSoftmaxBatch(p.Dim, len(p.Classes))
	} else {
		mb = newMinibatch(p.Dim)
	}
	var fn lossFunc // nil: logistic, inlined
	if p.Kind == "linear_svm" || p.Kind == "linear_regression" {
		fn = lossOf(p.Kind, p.Huber)
	}
	hist, pullHist, pushHist := newHistogram(), newHistogram(), newHistogram()
	pos := rs.Position
	var lossSum float64
	var lossN int
	lastStopCheck, lastPublish := time.Now(), time.Now()
	publish := func(done bool) {
		s := workerStats{Worker: p.Worker, Generation: t.Generation, Segment: p.Segment, Position: pos, Iterations: rs.Iterations,
			Examples: rs.Examples, Phases: rs.Phases, Hist: hist, Done: done, Updated: time.Now()}
		if lossN > 0 {
			s.Loss = lossSum / float64(lossN)
		}
		_ = ctl.putWorker(ctx, s) // progress reports are best effort
		lossSum, lossN = 0, 0
	}
	margin := handover(time.Until(t.Deadline))
	finish := func(stopped, rescaled bool) (*operators.Result, error) {
		if err := ps.Flush(ctx); err != nil {
			return nil, fmt.Errorf("push gradients: %w", err)
		}
		publish(true)
		out, _ := json.Marshal(workerResult{Iterations: rs.Iterations, Examples: rs.Examples, Phases: rs.Phases, Hist: hist, PullHist: pullHist, PushHist: pushHist, Stopped: stopped,
			Rescaled: rescaled, Position: pos})
		return &operators.Result{Output: out}, nil
	}

	for ; pos.Epoch < p.Epochs; pos.Epoch, pos.Unit, pos.Row = pos.Epoch+1, 0, 0 {
		rs.Position = pos
		src := units
		if pos.Epoch == p.StartEpoch && p.RestKey != "" {
			src = rest
		}
		mine := deal(src, p.Seed, pos.Epoch, p.Worker, p.Workers)
		it := prefetch.New(ctx, store, mine, prefetch.Options{Minibatch: p.Minibatch, Buffer: p.Prefetch, StartUnit: pos.Unit, StartRow: pos.Row, Labels: labelFunc(p.Kind, p.Classes)})
		for {
			now := time.Now()
			if now.Sub(lastStopCheck) >= stopCheckEvery {
				lastStopCheck = now
				stop, segment, err := ctl.signals(ctx, p.Elastic)
				if err == nil && stop {
					it.Close()
					return finish(true, false)
				}
				if err == nil && segment > p.Segment {
					it.Close()
					return finish(false, true)
				}
			}
			if time.Until(t.Deadline) < margin {
				it.Close()
				if err := ps.Flush(ctx); err != nil {
					return nil, fmt.Errorf("push gradients: %w", err)
				}
				publish(false)
				b, _ := json.Marshal(rs)
				return &operators.Result{Yield: true, Resume: b}, nil
			}
			if now.Sub(lastPublish) >= publishEvery {
				lastPublish = now
				publish(false)
				if testHooks.published != nil {
					testHooks.published(ctx, t, p.Worker, pos)
				}
			}

			t0 := time.Now()
			b, err := it.Next()
			t1 := time.Now()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				it.Close()
				return nil, fmt.Errorf("read training data: %w", err)
			}
			var keys []uint64
			var ws, gs []float32
			if sb != nil {
				sb.build(b)
				keys, ws, gs = sb.keys, sb.w, sb.g
			} else {
				mb.build(b)
				keys, ws, gs = mb.keys, mb.w, mb.g
			}
			if p.Workers == 1 {
				// A lone worker reads its own writes, so a run with a fixed seed
				// reproduces exactly; with more workers, asynchrony is the point.
				if err := ps.Flush(ctx); err != nil {
					it.Close()
					return nil, fmt.Errorf("push gradients: %w", err)
				}
			}
			if err := ps.PullSparse(ctx, p.Model, keys, ws); err != nil {
				it.Close()
				return nil, fmt.Errorf("pull weights: %w", err)
			}
			t2 := time.Now()
			var loss float64
			if sb != nil {
				loss = sb.gradient(b)
			} else {
				loss = mb.gradientOf(b, fn)
			}
			t3 := time.Now()
			if err := ps.PushSparse(ctx, p.Model, keys, gs); err != nil {
				it.Close()
				return nil, fmt.Errorf("push gradients: %w", err)
			}
			t4 := time.Now()
			rs.Phases.add(phases{Get: t1.Sub(t0), Pull: t2.Sub(t1), Compute: t3.Sub(t2), Push: t4.Sub(t3)})
			hist.add(t4.Sub(t0))
			pullHist.add(t2.Sub(t1))
			pushHist.add(t4.Sub(t3))
			rs.Iterations++
			rs.Examples += int64(b.Len())
			lossSum += loss
			lossN++
			pos.Unit, pos.Row = it.Position()
			rs.Position = pos
		}
		if err := it.Close(); err != nil {
			return nil, err
		}
	}
	return finish(false, false)
}
