package train

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset/partition"
	"github.com/stratus-ml/stratus/dataset/prefetch"
	"github.com/stratus-ml/stratus/operators"
)

// Task kinds of matrix factorization.
const (
	// KindMFWorker runs asynchronous SGD on ratings over a share of the
	// training set (the matrix factorization's train.worker).
	KindMFWorker = "train.mf_worker"
	// KindMFEval measures the RMSE of the model in psstore on the held-out
	// ratings, periodically.
	KindMFEval = "train.mf_eval"
	// KindMFScore scores an exported matrix factorization on a ratings set.
	KindMFScore = "train.mf_score"
)

// mfWorkerParams are an MF worker's parameters.
type mfWorkerParams struct {
	Model     string  `json:"model"`
	Rank      int     `json:"rank"`
	Mean      float64 `json:"mean"`
	L2        float64 `json:"l2"`
	UnitsKey  string  `json:"units"`
	Worker    int     `json:"worker"`
	Workers   int     `json:"workers"`
	Minibatch int     `json:"minibatch"`
	Epochs    int     `json:"epochs"`
	Seed      int64   `json:"seed"`
	Prefetch  int     `json:"prefetch"`
}

// runMFWorker is the "train.mf_worker" task: per minibatch of ratings, pull
// the blocks of its users and items, compute the summed gradient, push it
// without waiting; it stops, yields at the end of its lifetime and resumes
// from its published position exactly as the linear models' worker does.
func runMFWorker(ctx context.Context, env operators.Env, t *operators.Task) (*operators.Result, error) {
	var p mfWorkerParams
	if err := t.DecodeParams(&p); err != nil {
		return nil, err
	}
	sh, err := setupTask(ctx, env, p.Model, p.UnitsKey)
	if err != nil {
		return nil, err
	}
	store, ps, ctl, units := sh.store, sh.ps, sh.ctl, sh.units
	var rs workerResume
	if len(t.Resume) > 0 {
		if err := json.Unmarshal(t.Resume, &rs); err != nil {
			return nil, fmt.Errorf("task %s: bad resume position: %w", t.Name(), err)
		}
	}
	if pub, err := ctl.workers(ctx, p.Workers); err == nil {
		for _, s := range pub {
			if s.Worker == p.Worker && rs.Position.before(s.Position) && !s.Done {
				rs.Position, rs.Iterations, rs.Examples, rs.Phases = s.Position, s.Iterations, s.Examples, s.Phases
			}
		}
	}
	mb := newMFBatch(p.Rank)
	hist := newHistogram()
	pos := rs.Position
	var lossSum float64
	var lossN int
	lastStopCheck, lastPublish := time.Now(), time.Now()
	publish := func(done bool) {
		s := workerStats{Worker: p.Worker, Generation: t.Generation, Position: pos, Iterations: rs.Iterations,
			Examples: rs.Examples, Phases: rs.Phases, Hist: hist, Done: done, Updated: time.Now()}
		if lossN > 0 {
			s.Loss = lossSum / float64(lossN)
		}
		_ = ctl.putWorker(ctx, s) // best effort
		lossSum, lossN = 0, 0
	}
	margin := handover(time.Until(t.Deadline))
	finish := func(stopped bool) (*operators.Result, error) {
		if err := ps.Flush(ctx); err != nil {
			return nil, fmt.Errorf("push gradients: %w", err)
		}
		publish(true)
		out, _ := json.Marshal(workerResult{Iterations: rs.Iterations, Examples: rs.Examples, Phases: rs.Phases, Hist: hist, Stopped: stopped})
		return &operators.Result{Output: out}, nil
	}
	for ; pos.Epoch < p.Epochs; pos.Epoch, pos.Unit, pos.Row = pos.Epoch+1, 0, 0 {
		rs.Position = pos
		mine := deal(units, p.Seed, pos.Epoch, p.Worker, p.Workers)
		it := prefetch.New(ctx, store, mine, prefetch.Options{Minibatch: p.Minibatch, Buffer: p.Prefetch, StartUnit: pos.Unit, StartRow: pos.Row})
		for {
			now := time.Now()
			if now.Sub(lastStopCheck) >= stopCheckEvery {
				lastStopCheck = now
				if stop, err := ctl.stopped(ctx); err == nil && stop {
					it.Close()
					return finish(true)
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
			mb.build(&b)
			if p.Workers == 1 {
				if err := ps.Flush(ctx); err != nil { // read your own writes: reproducible
					it.Close()
					return nil, fmt.Errorf("push gradients: %w", err)
				}
			}
			if err := ps.PullSparse(ctx, p.Model, mb.keys, mb.w); err != nil {
				it.Close()
				return nil, fmt.Errorf("pull factors: %w", err)
			}
			t2 := time.Now()
			loss := mb.gradient(&b, p.Mean, p.L2)
			t3 := time.Now()
			if err := ps.PushSparse(ctx, p.Model, mb.keys, mb.g); err != nil {
				it.Close()
				return nil, fmt.Errorf("push gradients: %w", err)
			}
			t4 := time.Now()
			rs.Phases.add(phases{Get: t1.Sub(t0), Pull: t2.Sub(t1), Compute: t3.Sub(t2), Push: t4.Sub(t3)})
			hist.add(t4.Sub(t0))
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
	return finish(false)
}

// mfEvalParams are the MF evaluator's parameters.
type mfEvalParams struct {
	Model    string        `json:"model"`
	Rank     int           `json:"rank"`
	Mean     float64       `json:"mean"`
	UnitsKey string        `json:"units"`
	SeenKey  string        `json:"seen"` // blob key of the training set's slots (mfSeen)
	Interval time.Duration `json:"interval"`
	Start    time.Time     `json:"start"`
	// KeepBest evaluates the whole model, pulled dense, and stores the weights
	// of each new best evaluation under the control key "best" (a held-out set
	// the run stops on; models up to mfKeepBestBytes).
	KeepBest bool `json:"keep_best,omitempty"`
}

// mfKeepBestBytes bounds the models whose best weights the evaluator keeps:
// each new best is one KV value of the whole model.
const mfKeepBestBytes = 16 << 20

// ratingSet is a held-out ratings set in memory, with the distinct slots it
// touches.
type ratingSet struct {
	users, items []int // each rating's blocks in slots
	ratings      []float32
	slots        []uint32
}

func loadRatingSet(ctx context.Context, store blob.Store, units []prefetch.Unit) (*ratingSet, error) {
	it := prefetch.New(ctx, store, units, prefetch.Options{Minibatch: 1 << 30, Buffer: 2})
	defer it.Close()
	s := &ratingSet{}
	pos := map[uint32]int{}
	block := func(x uint32) int {
		if k, ok := pos[x]; ok {
			return k
		}
		pos[x] = len(s.slots)
		s.slots = append(s.slots, x)
		return len(s.slots) - 1
	}
	for {
		b, err := it.Next()
		if errors.Is(err, io.EOF) {
			return s, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read ratings: %w", err)
		}
		for r := 0; r < b.Len(); r++ {
			u, i, ok := mfSlots(&b, r)
			if !ok {
				continue
			}
			s.users, s.items, s.ratings = append(s.users, block(u)), append(s.items, block(i)), append(s.ratings, b.Labels[r])
		}
	}
}

// evaluate scores blocks w (rank+1 values per slot of s.slots).
func (s *ratingSet) evaluate(mean float64, rank int, w []float32) RatingMetrics {
	k := rank + 1
	var e ratingErrors
	for n, r := range s.ratings {
		u, i := s.users[n], s.items[n]
		e.add(mfPredict(mean, w[u*k:(u+1)*k], w[i*k:(i+1)*k]), r)
	}
	return e.metrics()
}

// writeSeen stores the training set's slots, sorted, as little-endian uint32s.
func writeSeen(ctx context.Context, st blob.Store, key string, slots []uint32) error {
	b := make([]byte, 4*len(slots))
	for i, s := range slots {
		binary.LittleEndian.PutUint32(b[4*i:], s)
	}
	return st.Put(ctx, key, bytes.NewReader(b))
}

func readSeen(ctx context.Context, st blob.Store, key string) (map[uint32]bool, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read the training set's users and items: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	seen := make(map[uint32]bool, len(b)/4)
	for i := 0; i+4 <= len(b); i += 4 {
		seen[binary.LittleEndian.Uint32(b[i:])] = true
	}
	return seen, nil
}

// runMFEval is the "train.mf_eval" task: it loads the held-out ratings once,
// then every interval pulls their users' and items' blocks (zero for a slot
// the training set does not rate, as in the exported model) and publishes
// the RMSE (as the evaluation point's loss) and the MAE (as its accuracy
// field); on the stop signal it evaluates once more and returns that point.
func runMFEval(ctx context.Context, env operators.Env, t *operators.Task) (*operators.Result, error) {
	var p mfEvalParams
	if err := t.DecodeParams(&p); err != nil {
		return nil, err
	}
	sh, err := setupTask(ctx, env, p.Model, p.UnitsKey)
	if err != nil {
		return nil, err
	}
	ps, ctl := sh.ps, sh.ctl
	set, err := loadRatingSet(ctx, sh.store, sh.units)
	if err != nil {
		return nil, err
	}
	seen, err := readSeen(ctx, sh.store, p.SeenKey)
	if err != nil {
		return nil, err
	}
	k := p.Rank + 1
	keys := make([]uint64, 0, len(set.slots)*k)
	for _, s := range set.slots {
		for j := 0; j < k; j++ {
			keys = append(keys, mfKey(s, j, p.Rank))
		}
	}
	w := make([]float32, len(keys))
	var rs evalResume
	if len(t.Resume) > 0 {
		_ = json.Unmarshal(t.Resume, &rs)
	}
	margin := handover(time.Until(t.Deadline))
	evaluated := rs.Evaluations > 0
	var lastEval time.Duration
	var watch counterWatch
	evalOnce := func() (evalPoint, error) {
		began := time.Now()
		defer func() { lastEval = time.Since(began) }()
		var dense []float32
		if p.KeepBest {
			// Evaluate exactly the weights that may be kept.
			if dense, err = ps.PullDense(ctx, p.Model); err != nil {
				return evalPoint{}, fmt.Errorf("pull model: %w", err)
			}
			for n, s := range set.slots {
				copy(w[n*k:(n+1)*k], dense[int(s)*k:(int(s)+1)*k])
			}
		} else if err := ps.PullSparse(ctx, p.Model, keys, w); err != nil {
			return evalPoint{}, fmt.Errorf("pull factors: %w", err)
		}
		for n, s := range set.slots {
			if !seen[s] {
				clear(w[n*k : (n+1)*k])
			}
		}
		m := set.evaluate(p.Mean, p.Rank, w)
		if p.KeepBest && m.Rows > 0 && (rs.Best == nil || m.RMSE < *rs.Best) {
			if err := ctl.putBest(ctx, dense); err != nil {
				return evalPoint{}, fmt.Errorf("keep the best weights: %w", err)
			}
			l := m.RMSE
			rs.Best = &l
		}
		pt := evalPoint{Seconds: time.Since(p.Start).Seconds(), Logloss: m.RMSE, Accuracy: m.MAE, Rows: m.Rows}
		if st, err := ps.ModelStats(ctx, p.Model); err == nil {
			pt.Updates, pt.Pushes = st.Updates, st.Pushes
			if err := watch.observe(p.Model, st); err != nil {
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
		// deadline (the first generation evaluates at least once).
		if evaluated && time.Until(t.Deadline) < margin+lastEval {
			b, _ := json.Marshal(rs)
			return &operators.Result{Yield: true, Resume: b}, nil
		}
		if _, err := evalOnce(); err != nil {
			return nil, err
		}
		evaluated = true
		// Wait for the next evaluation (or the hand-over before the deadline,
		// when the lifetime is shorter than the interval), watching for the
		// stop signal meanwhile.
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

// mfScoreParams are an MF score task's parameters.
type mfScoreParams struct {
	ModelKey string `json:"model"` // blob key of the artifact's model.json
	UnitsKey string `json:"units"`
}

// runMFScore is the "train.mf_score" task: the exported model's RMSE and MAE
// on a ratings set, computed as stratus predict computes ratings.
func runMFScore(ctx context.Context, env operators.Env, t *operators.Task) (*operators.Result, error) {
	var p mfScoreParams
	if err := t.DecodeParams(&p); err != nil {
		return nil, err
	}
	st, err := env.Blob(ctx)
	if err != nil {
		return nil, err
	}
	art, w, err := ReadArtifact(ctx, st, p.ModelKey)
	if err != nil {
		return nil, err
	}
	if art.MF == nil {
		return nil, fmt.Errorf("model %s is not a matrix factorization", st.URI(p.ModelKey))
	}
	units, err := loadUnits(ctx, st, p.UnitsKey)
	if err != nil {
		return nil, err
	}
	it := prefetch.New(ctx, st, units, prefetch.Options{Minibatch: 1 << 16, Buffer: 2})
	defer it.Close()
	var e ratingErrors
	for {
		b, err := it.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read ratings: %w", err)
		}
		scoreRatings(art.MF, w, &b, &e)
	}
	out, _ := json.Marshal(e.metrics())
	return &operators.Result{Output: out}, nil
}

func scoreRatings(m *MFModel, w []float32, b *partition.Batch, e *ratingErrors) {
	for r := 0; r < b.Len(); r++ {
		if u, i, ok := mfSlots(b, r); ok {
			e.add(m.predict(w, u, i), b.Labels[r])
		}
	}
}
