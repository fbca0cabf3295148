package train

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/stratus-ml/stratus/psstore"
)

// The coordinator, the workers and the evaluator of one training run talk through
// psstore's key-value face under the prefix ctl/<model>/:
//
//	stop         set by the coordinator: a JSON stopSignal; workers and the evaluator stop
//	worker/<i>   each worker's progress (workerStats), rewritten about twice a second
//	eval         the evaluator's latest point (evalPoint)
//	series       every evaluation point, appended as JSON lines
//
// Nothing else is shared: workers are stateless functions.
type control struct {
	ps     *psstore.Client
	prefix string
}

func newControl(ps *psstore.Client, model string) control {
	return control{ps: ps, prefix: "ctl/" + model + "/"}
}

// stopSignal says why training stops.
type stopSignal struct {
	Reason string `json:"reason"`
}

func (c control) stop(ctx context.Context, reason string) error {
	b, _ := json.Marshal(stopSignal{Reason: reason})
	return c.ps.Put(ctx, c.prefix+"stop", b)
}

// stopped reports whether the coordinator asked to stop.
func (c control) stopped(ctx context.Context) (bool, error) {
	_, err := c.ps.Get(ctx, c.prefix+"stop")
	if errors.Is(err, psstore.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// rescale asks the workers of segments before segment to end theirs: the
// coordinator changes the worker count (coordinator_elastic.go).
func (c control) rescale(ctx context.Context, segment int) error {
	return c.ps.Put(ctx, c.prefix+"segment", []byte(strconv.Itoa(segment)))
}

// signals reports whether the coordinator asked to stop and, when elastic,
// the segment it asked for (0 when none).
func (c control) signals(ctx context.Context, elastic bool) (stop bool, segment int, err error) {
	if !elastic {
		stop, err = c.stopped(ctx)
		return stop, 0, err
	}
	vals, err := c.ps.MultiGet(ctx, []string{c.prefix + "stop", c.prefix + "segment"})
	if err != nil {
		return false, 0, err
	}
	if vals[1] != nil {
		segment, _ = strconv.Atoi(string(vals[1]))
	}
	return vals[0] != nil, segment, nil
}

// reset clears the control keys of a run, before it starts.
func (c control) reset(ctx context.Context) error {
	keys, err := c.ps.List(ctx, c.prefix)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := c.ps.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// workerStats is a worker's progress as it publishes it.
type workerStats struct {
	Worker     int       `json:"worker"`
	Generation int       `json:"generation"`
	Segment    int       `json:"segment,omitempty"`
	Position   position  `json:"position"`
	Iterations int64     `json:"iterations"`
	Examples   int64     `json:"examples"`
	Loss       float64   `json:"loss"` // mean training loss of recent minibatches
	Phases     phases    `json:"phases"`
	Hist       histogram `json:"hist"`
	Done       bool      `json:"done"`
	Updated    time.Time `json:"updated"`
}

// phases is cumulative time per step of an iteration.
type phases struct {
	Get     time.Duration `json:"get_ns"`
	Pull    time.Duration `json:"pull_ns"`
	Compute time.Duration `json:"compute_ns"`
	Push    time.Duration `json:"push_ns"`
}

func (p *phases) add(o phases) {
	p.Get += o.Get
	p.Pull += o.Pull
	p.Compute += o.Compute
	p.Push += o.Push
}

func (c control) putWorker(ctx context.Context, s workerStats) error {
	b, _ := json.Marshal(s)
	return c.ps.Put(ctx, c.prefix+"worker/"+strconv.Itoa(s.Worker), b)
}

// workers returns every worker's latest published stats.
func (c control) workers(ctx context.Context, n int) ([]workerStats, error) {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = c.prefix + "worker/" + strconv.Itoa(i)
	}
	vals, err := c.ps.MultiGet(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make([]workerStats, 0, n)
	for _, v := range vals {
		if v == nil {
			continue
		}
		var s workerStats
		if json.Unmarshal(v, &s) == nil {
			out = append(out, s)
		}
	}
	return out, nil
}

// evalPoint is one evaluation of the model on the test set.
type evalPoint struct {
	Seconds  float64 `json:"t"` // since training started
	Logloss  float64 `json:"test_logloss"`
	Accuracy float64 `json:"accuracy"`
	AUC      float64 `json:"auc"`
	Updates  uint64  `json:"updates"`
	Pushes   uint64  `json:"pushes,omitempty"` // gradient pushes applied: iterations
	Rows     int     `json:"rows"`
	// NonFinite holds "NaN", "+Inf" or "-Inf" when the log loss is not finite, which
	// JSON cannot carry as a number.
	NonFinite string `json:"non_finite,omitempty"`
	// NoAccuracy and NoAUC say Accuracy or AUC is NaN (a regression has
	// neither, softmax no AUC), which JSON cannot carry either.
	NoAccuracy bool `json:"no_accuracy,omitempty"`
	NoAUC      bool `json:"no_auc,omitempty"`
}

func jsonSafe(p evalPoint) evalPoint {
	if math.IsNaN(p.Logloss) || math.IsInf(p.Logloss, 0) {
		p.NonFinite = strconv.FormatFloat(p.Logloss, 'g', -1, 64)
		p.Logloss = 0
	}
	if math.IsNaN(p.Accuracy) {
		p.NoAccuracy, p.Accuracy = true, 0
	}
	if math.IsNaN(p.AUC) {
		p.NoAUC, p.AUC = true, 0
	}
	return p
}

func fromJSONSafe(p evalPoint) *evalPoint {
	if p.NonFinite != "" {
		p.Logloss, _ = strconv.ParseFloat(p.NonFinite, 64)
	}
	if p.NoAccuracy {
		p.Accuracy = math.NaN()
	}
	if p.NoAUC {
		p.AUC = math.NaN()
	}
	return &p
}

func (c control) putEval(ctx context.Context, p evalPoint) error {
	b, err := json.Marshal(jsonSafe(p))
	if err != nil {
		return err
	}
	if err := c.ps.Put(ctx, c.prefix+"eval", b); err != nil {
		return err
	}
	return c.ps.Append(ctx, c.prefix+"series", append(b, '\n'))
}

// putBest stores the weights of the best evaluation so far.
func (c control) putBest(ctx context.Context, w []float32) error {
	b := make([]byte, 4*len(w))
	for i, x := range w {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return c.ps.Put(ctx, c.prefix+"best", b)
}

// best returns the weights putBest stored, or nil.
func (c control) best(ctx context.Context, dim uint64) ([]float32, error) {
	b, err := c.ps.Get(ctx, c.prefix+"best")
	if errors.Is(err, psstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeF32(b, dim)
}

func (c control) latestEval(ctx context.Context) (*evalPoint, error) {
	b, err := c.ps.Get(ctx, c.prefix+"eval")
	if errors.Is(err, psstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p evalPoint
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	return fromJSONSafe(p), nil
}
