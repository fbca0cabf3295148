package gridsearch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/internal/canon"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/train"
)

// The trial cache.
//
// The planner caches stages, and a grid_search stage's key changes whenever its grid
// does; rerunning every trial then would make growing a grid cost the whole grid.
// So each finished trial is also recorded on its own, in the run's blob store, under
// a key derived from what determines its result and nothing else: the train
// operator's version and the trial's complete train configuration — the base
// stage's evaluated configuration with the trial's parameters applied, including
// its input datasets (whose manifest URIs are content-addressed by their stages'
// keys). Neither the grid_search stage's key nor the base stage's key is part of it:
// a grid that grows, a reordered grid, a changed max_parallel, or a base stage whose
// own learning rate changed while the grid overrides it, all find the trials
// already run. Before a trial is started, its record is looked up; a hit is
// reported as DONE (or STOPPED) with Labels cached = "true" and never trains.
//
// What is recorded, and reused:
//   - DONE trials (training ended by itself: epochs, target, convergence, timeout).
//   - STOPPED trials. A trial that train stopped as diverged is reused whatever the
//     early_stop block; one stopped by a rule (threshold, median, asha) only under
//     the same early_stop block and metric, since another rule might have let it
//     finish.
//   - KILLED and FAILED trials are not recorded: a kill is a decision about one run,
//     and a failure may be transient, so the next run trains them again.
//
// Records live under gridsearch/trials/<sha256>.json; a record whose model artifact
// is gone is ignored.

// recordFormat versions the record layout.
const recordFormat = "stratus-trial/1"

// record is a finished trial as stored in the trial cache.
type record struct {
	Format     string                `json:"format"`
	Trial      string                `json:"trial"`
	Params     json.RawMessage       `json:"params"`
	Status     operators.TrialStatus `json:"status"`
	Reason     string                `json:"reason"`
	Detail     string                `json:"detail,omitempty"`
	Policy     string                `json:"policy,omitempty"` // early_stop policy when a rule stopped it
	Metrics    metricsJSON           `json:"metrics"`
	Validation *metricsJSON          `json:"validation_metrics,omitempty"`
	Iterations int64                 `json:"iterations"`
	Examples   jnum                  `json:"examples_per_second"`
	Model      string                `json:"model,omitempty"`
	Seconds    float64               `json:"seconds"` // wall time of the trial
	Workers    int                   `json:"workers"`
	Series     []pointJSON           `json:"series"`
	Stage      string                `json:"stage"`
	StageKey   string                `json:"stage_key"`
	Finished   time.Time             `json:"finished"`
}

type metricsJSON struct {
	Logloss  jnum `json:"test_logloss"`
	Accuracy jnum `json:"accuracy"`
	AUC      jnum `json:"auc"`
	// A regression's and a factorization's figures; absent (NaN) in records
	// of classifiers, and in records written before they were ranked.
	RMSE *jnum `json:"test_rmse,omitempty"`
	MAE  *jnum `json:"test_mae,omitempty"`
	R2   *jnum `json:"r2,omitempty"`
}

func toMetricsJSON(m train.Metrics) metricsJSON {
	opt := func(x float64) *jnum {
		if math.IsNaN(x) {
			return nil
		}
		j := jnum(x)
		return &j
	}
	return metricsJSON{Logloss: jnum(m.Logloss), Accuracy: jnum(m.Accuracy), AUC: jnum(m.AUC), RMSE: opt(m.RMSE), MAE: opt(m.MAE), R2: opt(m.R2)}
}

func (j metricsJSON) metrics() train.Metrics {
	val := func(x *jnum) float64 {
		if x == nil {
			return math.NaN()
		}
		return float64(*x)
	}
	return train.Metrics{Logloss: float64(j.Logloss), Accuracy: float64(j.Accuracy), AUC: float64(j.AUC), RMSE: val(j.RMSE), MAE: val(j.MAE), R2: val(j.R2)}
}

type pointJSON struct {
	T        float64 `json:"t"`
	Logloss  jnum    `json:"test_logloss"`
	Accuracy jnum    `json:"accuracy"`
	AUC      jnum    `json:"auc"`
	Updates  uint64  `json:"updates"`
}

// jnum is a float64 that survives JSON when it is NaN or infinite (as a string).
type jnum float64

func (x jnum) MarshalJSON() ([]byte, error) {
	f := float64(x)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte(strconv.Quote(strconv.FormatFloat(f, 'g', -1, 64))), nil
	}
	return []byte(strconv.FormatFloat(f, 'g', -1, 64)), nil
}

func (x *jnum) UnmarshalJSON(b []byte) error {
	s := string(b)
	if strings.HasPrefix(s, `"`) {
		u, err := strconv.Unquote(s)
		if err != nil {
			return err
		}
		s = u
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return err
	}
	*x = jnum(f)
	return nil
}

// trialKey is the cache key of a trial whose complete train configuration is cfg.
func trialKey(cfg cty.Value) string {
	h := sha256.New()
	fmt.Fprintf(h, "stratus grid_search trial\x00train v%d\x00%s", train.Schema.Version, canon.Encode(cfg))
	return hex.EncodeToString(h.Sum(nil))
}

func recordKey(key string) string { return "gridsearch/trials/" + key + ".json" }

// lookup returns the reusable record of a trial with cache key key, or nil.
// policy is the current early_stop policy ("" without early_stop).
func lookup(ctx context.Context, st blob.Store, key, policy string) (*record, error) {
	rc, err := st.Get(ctx, recordKey(key))
	if errors.Is(err, blob.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read trial record: %w", err)
	}
	defer rc.Close()
	var r record
	if err := json.NewDecoder(rc).Decode(&r); err != nil || r.Format != recordFormat {
		return nil, nil // unreadable or older: train again, and overwrite it
	}
	switch {
	case r.Status == operators.TrialDone:
	case r.Status == operators.TrialStopped && r.Policy == "":
	case r.Status == operators.TrialStopped && r.Policy == policy:
	default:
		return nil, nil
	}
	if r.Model != "" {
		k, err := keyOf(st, r.Model)
		if err != nil {
			return nil, nil
		}
		if _, err := st.Stat(ctx, k); err != nil {
			return nil, nil // the model is gone: train again
		}
	}
	return &r, nil
}

// save stores r under key.
func save(ctx context.Context, st blob.Store, key string, r *record) error {
	r.Format = recordFormat
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode trial record: %w", err)
	}
	if err := st.Put(ctx, recordKey(key), bytes.NewReader(b)); err != nil {
		return fmt.Errorf("write trial record: %w", err)
	}
	return nil
}

// keyOf returns the key of uri in st.
func keyOf(st blob.Store, uri string) (string, error) {
	root := strings.TrimSuffix(st.URI(""), "/") + "/"
	if key, ok := strings.CutPrefix(uri, root); ok && key != "" {
		return key, nil
	}
	return "", fmt.Errorf("%s is not in this run's blob store (%s)", uri, root)
}

func toPoints(ps []train.EvalPoint) []pointJSON {
	out := make([]pointJSON, len(ps))
	for i, p := range ps {
		out[i] = pointJSON{T: p.Seconds, Logloss: jnum(p.Logloss), Accuracy: jnum(p.Accuracy), AUC: jnum(p.AUC), Updates: p.Updates}
	}
	return out
}

func fromPoints(ps []pointJSON) []train.EvalPoint {
	out := make([]train.EvalPoint, len(ps))
	for i, p := range ps {
		out[i] = train.EvalPoint{Seconds: p.T, Logloss: float64(p.Logloss), Accuracy: float64(p.Accuracy), AUC: float64(p.AUC), Updates: p.Updates}
	}
	return out
}
