package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset/partition"
	"github.com/stratus-ml/stratus/dataset/prefetch"
	"github.com/stratus-ml/stratus/operators"
)

// evalParams are the evaluator task's parameters.
type evalParams struct {
	Model    string        `json:"model"`
	Dim      uint64        `json:"dim"`
	UnitsKey string        `json:"units"` // blob key of the evaluation units (JSON)
	Interval time.Duration `json:"interval"`
	Start    time.Time     `json:"start"` // when training started, for the series' time axis
	// KeepBest stores the weights of each new best evaluation under the control
	// key "best" (a held-out set the run stops on, never the test set).
	KeepBest bool `json:"keep_best,omitempty"`
	// Kind is the model's kind; a linear SVM is scored by its margins and its
	// loss for the stopping rules is the mean squared hinge loss.
	Kind string `json:"model_kind,omitempty"`
	// Classes are softmax's classes (see labelFunc).
	Classes []float64 `json:"classes,omitempty"`
	// Huber is linear_regression's Huber threshold (0: the squared loss).
	Huber float64 `json:"huber,omitempty"`
}

// evalResume carries nothing but the count of evaluations across generations.
type evalResume struct {
	Evaluations int `json:"evaluations"`
	// Best is the lowest loss so far, whose weights are at the control key "best".
	Best *float64 `json:"best,omitempty"`
}

// runEvaluator is the "train.eval" task: it loads the test set once, then every
// interval pulls the dense model and publishes test log loss, accuracy and AUC; when
// the coordinator says stop it makes a final evaluation and returns it.
func runEvaluator(ctx context.Context, env operators.Env, t *operators.Task) (*operators.Result, error) {
	var p evalParams
	if err := t.DecodeParams(&p); err != nil {
		return nil, err
	}
	var rs evalResume
	if len(t.Resume) > 0 {
		_ = json.Unmarshal(t.Resume, &rs)
	}
	sh, err := setupTask(ctx, env, p.Model, p.UnitsKey)
	if err != nil {
		return nil, err
	}
	ps, ctl := sh.ps, sh.ctl
	set, err := loadEvalSet(ctx, sh.store, sh.units, labelFunc(p.Kind, p.Classes))
	if err != nil {
		return nil, err
	}
	set.margins = p.Kind == "linear_svm"
	set.regression = p.Kind == "linear_regression"
	if p.Kind == "softmax" {
		set.classes = len(p.Classes)
	}
	margin := handover(time.Until(t.Deadline))
	// The first generation evaluates at least once, however short its lifetime;
	// later ones yield rather than start an evaluation (its time measured in
	// lastEval) that would run past the deadline.
	evaluated := rs.Evaluations > 0
	var lastEval time.Duration
	var watch counterWatch
	evalOnce := func() (evalPoint, error) {
		began := time.Now()
		defer func() { lastEval = time.Since(began) }()
		w, err := ps.PullDense(ctx, p.Model)
		if err != nil {
			return evalPoint{}, fmt.Errorf("pull model: %w", err)
		}
		m := set.evaluate(w)
		if set.margins || set.regression {
			m.Logloss = set.meanLoss(lossOf(p.Kind, p.Huber)) // what the stopping rules compare
		}
		if p.KeepBest && !math.IsNaN(m.Logloss) && (rs.Best == nil || m.Logloss < *rs.Best) {
			if err := ctl.putBest(ctx, w); err != nil {
				return evalPoint{}, fmt.Errorf("keep the best weights: %w", err)
			}
			l := m.Logloss
			rs.Best = &l
		}
		pt := evalPoint{Seconds: time.Since(p.Start).Seconds(), Logloss: m.Logloss, Accuracy: m.Accuracy, AUC: m.AUC, Rows: m.Rows}
		if st, err := ps.ModelStats(ctx, p.Model); err == nil {
			pt.Updates, pt.Pushes = st.Updates, st.Pushes
			if err := watch.observe(p.Model, st); err != nil { // modelcheck.go
				return pt, err
			}
		}
		rs.Evaluations++
		if err := ctl.putEval(ctx, pt); err != nil {
			return pt, fmt.Errorf("publish evaluation: %w", err)
		}
		return pt, nil
	}
	for {
		stop, err := ctl.stopped(ctx)
		if err != nil {
			return nil, fmt.Errorf("read stop signal: %w", err)
		}
		if stop {
			pt, err := evalOnce()
			if err != nil {
				return nil, err
			}
			out, _ := json.Marshal(jsonSafe(pt))
			return &operators.Result{Output: out}, nil
		}
		// Yield rather than start an evaluation that would run past the
		// deadline. Every generation evaluates when it has the time for one, so
		// a lifetime shorter than eval_interval still evaluates once per
		// generation (it used to yield at once, never evaluating again).
		if evaluated && time.Until(t.Deadline) < margin+lastEval {
			b, _ := json.Marshal(rs)
			return &operators.Result{Yield: true, Resume: b}, nil
		}
		if _, err := evalOnce(); err != nil {
			return nil, err
		}
		evaluated = true
		// Wait for the next evaluation (or the hand-over before the deadline, when
		// the lifetime is shorter than the interval), watching for the stop signal
		// meanwhile so the final evaluation follows it promptly.
		for next := time.Now().Add(p.Interval); time.Now().Before(next) && time.Until(t.Deadline) > margin; {
			select {
			case <-time.After(min(stopPoll, time.Until(next))):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if stop, err := ctl.stopped(ctx); err == nil && stop {
				break
			}
		}
	}
}

// stopPoll is how often a waiting evaluator looks for the stop signal.
const stopPoll = 50 * time.Millisecond

// evalSet is a test set held in memory.
type evalSet struct {
	parts []partition.Batch
	probs []float64
	ys    []float32
	// margins scores by the margin w·x (a linear SVM): accuracy at 0 and AUC, no
	// log loss.
	margins bool
	// regression scores the margin as a prediction (linear_regression).
	regression bool
	// classes > 0 scores a softmax model of that many classes.
	classes int
}

// loadEvalSet reads every unit of the test set.
func loadEvalSet(ctx context.Context, store blob.Store, units []prefetch.Unit, labels func([]float32)) (*evalSet, error) {
	return loadEvalSetWith(ctx, store, units, prefetch.Options{Minibatch: 1 << 30, Buffer: 2, Labels: labels})
}

// loadEvalSetWith is loadEvalSet with the iterator's options (a Read that
// shares partitions).
func loadEvalSetWith(ctx context.Context, store blob.Store, units []prefetch.Unit, opts prefetch.Options) (*evalSet, error) {
	it := prefetch.New(ctx, store, units, opts)
	defer it.Close()
	s := &evalSet{}
	for {
		b, err := it.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("read test data: %w", err)
		}
		s.parts = append(s.parts, b)
		s.ys = append(s.ys, b.Labels...)
	}
	s.probs = make([]float64, len(s.ys))
	return s, nil
}

// evaluate scores the set with weights w (intercept last) and returns its metrics.
func (s *evalSet) evaluate(w []float32) Metrics {
	if s.classes > 0 {
		return s.evaluateSoftmax(w, s.classes)
	}
	dim := uint32(len(w))
	bias := float64(w[dim-1])
	i := 0
	for _, b := range s.parts {
		base := b.Offsets[0]
		for r := 0; r < b.Len(); r++ {
			lo, hi := b.Offsets[r]-base, b.Offsets[r+1]-base
			z := bias
			for e := lo; e < hi; e++ {
				f := b.Indices[e]
				if f >= dim-1 {
					f %= dim - 1
				}
				if b.Values == nil {
					z += float64(w[f])
				} else {
					z += float64(w[f]) * float64(b.Values[e])
				}
			}
			s.probs[i] = sigmoid(z)
			if s.margins || s.regression {
				s.probs[i] = z
			}
			i++
		}
	}
	if s.margins {
		return evaluateMargins(s.probs, s.ys)
	}
	if s.regression {
		return evaluateRegression(s.probs, s.ys)
	}
	return evaluate(s.probs, s.ys)
}

// meanLoss is the mean loss fn of the margins the last evaluate computed (margins
// only).
func (s *evalSet) meanLoss(fn lossFunc) float64 {
	if len(s.probs) == 0 {
		return 0
	}
	var sum float64
	for i, z := range s.probs {
		l, _ := fn(z, float64(s.ys[i]))
		sum += l
	}
	return sum / float64(len(s.probs))
}
