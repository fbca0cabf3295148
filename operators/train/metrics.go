package train

import (
	"encoding/json"
	"math"
	"sort"
)

// Metrics are a model's figures on a labelled set.
type Metrics struct {
	Logloss  float64 `json:"test_logloss"`
	Accuracy float64 `json:"accuracy"`
	AUC      float64 `json:"auc"`
	Rows     int     `json:"rows"`
	// RMSE, MAE and R2 are linear_regression's figures (NaN for classifiers),
	// whose Logloss is then the mean squared error.
	RMSE, MAE, R2 float64
	// PerClass is softmax's accuracy on the rows of each class (recall), in
	// class order (NaN for a class without rows).
	PerClass []float64
}

// metricsWire is Metrics in JSON: a figure that is NaN (no test set, or a model
// without a log loss) is null; an infinite log loss (diverged) is null with
// NonFinite saying which.
type metricsWire struct {
	Logloss   *float64 `json:"test_logloss"`
	NonFinite string   `json:"non_finite,omitempty"`
	Accuracy  *float64 `json:"accuracy"`
	AUC       *float64 `json:"auc"`
	Rows      int      `json:"rows"`
	RMSE      *float64 `json:"test_rmse,omitempty"`
	MAE       *float64 `json:"test_mae,omitempty"`
	R2        *float64 `json:"r2,omitempty"`
	// PerClass holds null for a class without rows.
	PerClass []*float64 `json:"per_class_accuracy,omitempty"`
}

func finitePtr(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// MarshalJSON writes m, with a non-finite log loss as null (see metricsWire).
func (m Metrics) MarshalJSON() ([]byte, error) {
	w := metricsWire{Accuracy: finitePtr(m.Accuracy), AUC: finitePtr(m.AUC), Rows: m.Rows,
		RMSE: finitePtr(m.RMSE), MAE: finitePtr(m.MAE), R2: finitePtr(m.R2)}
	for _, a := range m.PerClass {
		w.PerClass = append(w.PerClass, finitePtr(a))
	}
	switch {
	case math.IsInf(m.Logloss, 1):
		w.NonFinite = "+Inf"
	case math.IsInf(m.Logloss, -1):
		w.NonFinite = "-Inf"
	case !math.IsNaN(m.Logloss):
		w.Logloss = &m.Logloss
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (m *Metrics) UnmarshalJSON(b []byte) error {
	var w metricsWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*m = Metrics{Logloss: math.NaN(), Accuracy: orNaN(w.Accuracy), AUC: orNaN(w.AUC), Rows: w.Rows,
		RMSE: orNaN(w.RMSE), MAE: orNaN(w.MAE), R2: orNaN(w.R2)}
	for _, a := range w.PerClass {
		m.PerClass = append(m.PerClass, orNaN(a))
	}
	switch {
	case w.Logloss != nil:
		m.Logloss = *w.Logloss
	case w.NonFinite == "+Inf":
		m.Logloss = math.Inf(1)
	case w.NonFinite == "-Inf":
		m.Logloss = math.Inf(-1)
	}
	return nil
}

// nanMetrics is Metrics without any figure: every one NaN.
func nanMetrics() Metrics {
	n := math.NaN()
	return Metrics{Logloss: n, Accuracy: n, AUC: n, RMSE: n, MAE: n, R2: n}
}

// clip bounds probabilities away from 0 and 1 for the log loss, as scikit-learn does.
const clip = 1e-15

// evaluate computes log loss, accuracy (threshold 0.5) and ROC AUC of probabilities p
// against labels y ∈ {0, 1}. AUC is the Mann–Whitney statistic with average ranks for
// ties; it is 0.5 when one class is absent. O(n log n).
func evaluate(p []float64, y []float32) Metrics {
	n := len(p)
	m := nanMetrics()
	m.Rows = n
	if n == 0 {
		return m
	}
	var loss float64
	correct := 0
	for i, pi := range p {
		q := math.Min(math.Max(pi, clip), 1-clip)
		if y[i] > 0.5 {
			loss -= math.Log(q)
			if pi >= 0.5 {
				correct++
			}
		} else {
			loss -= math.Log(1 - q)
			if pi < 0.5 {
				correct++
			}
		}
	}
	if math.IsNaN(loss) {
		m.Logloss = math.NaN()
	} else {
		m.Logloss = loss / float64(n)
	}
	m.Accuracy = float64(correct) / float64(n)
	m.AUC = auc(p, y)
	return m
}

func auc(p []float64, y []float32) float64 {
	n := len(p)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return p[idx[a]] < p[idx[b]] })
	var rankSum float64
	pos := 0
	for i := 0; i < n; {
		j := i
		for j < n && p[idx[j]] == p[idx[i]] {
			j++
		}
		avg := float64(i+j+1) / 2 // ranks i+1..j, averaged
		for k := i; k < j; k++ {
			if y[idx[k]] > 0.5 {
				rankSum += avg
				pos++
			}
		}
		i = j
	}
	neg := n - pos
	if pos == 0 || neg == 0 {
		return 0.5
	}
	return (rankSum - float64(pos)*float64(pos+1)/2) / (float64(pos) * float64(neg))
}

// evaluateMargins computes accuracy (positive at margin ≥ 0) and ROC AUC of
// margins z against labels y ∈ {0, 1}; a margin has no log loss, which is NaN.
func evaluateMargins(z []float64, y []float32) Metrics {
	m := nanMetrics()
	m.Rows = len(z)
	if len(z) == 0 {
		return m
	}
	correct := 0
	for i, zi := range z {
		if (zi >= 0) == (y[i] > 0.5) {
			correct++
		}
	}
	m.Accuracy = float64(correct) / float64(len(z))
	m.AUC = auc(z, y)
	return m
}
