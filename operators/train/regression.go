package train

import "math"

// linear_regression: the margin z = w·x + b is the prediction; the loss is the
// squared error ½(z − y)² (scikit-learn's LinearRegression and Ridge with l2, and
// SGDRegressor's squared_error), or with loss = "huber" the Huber loss with
// threshold δ (huber_delta): ½r² for |r| ≤ δ, δ(|r| − ½δ) beyond, which is
// quadratic near the target and linear for outliers. Metrics are test_rmse,
// test_mae and r2 (1 − SSE/SST on the test set's own mean); the held-out loss
// the stopping rules compare is the mean squared error (named mse), whatever the
// training loss.

// sqLossFunc is the squared error ½(z−y)².
func sqLossFunc(z, y float64) (float64, float64) {
	r := z - y
	return 0.5 * r * r, r
}

// huberLossFunc returns the Huber loss with threshold delta.
func huberLossFunc(delta float64) lossFunc {
	return func(z, y float64) (float64, float64) {
		r := z - y
		if a := math.Abs(r); a > delta {
			return delta * (a - 0.5*delta), math.Copysign(delta, r)
		}
		return 0.5 * r * r, r
	}
}

// DefaultHuberDelta is huber_delta's default: scikit-learn's HuberRegressor
// epsilon and SGDRegressor's epsilon are 1.35 and 0.1 on standardised targets;
// this is in the units of the label, and 1 suits labels of unit scale.
const DefaultHuberDelta = 1.0

// evaluateRegression computes the regression figures of predictions z against
// targets y. Logloss holds the mean squared error (the held-out loss); Accuracy
// and AUC are NaN.
func evaluateRegression(z []float64, y []float32) Metrics {
	n := len(z)
	m := nanMetrics()
	m.Rows = n
	if n == 0 {
		return m
	}
	var sse, sae, sum float64
	for i, zi := range z {
		r := zi - float64(y[i])
		sse += r * r
		sae += math.Abs(r)
		sum += float64(y[i])
	}
	mean := sum / float64(n)
	var sst float64
	for _, yi := range y {
		d := float64(yi) - mean
		sst += d * d
	}
	m.Logloss = sse / float64(n)
	m.RMSE = math.Sqrt(m.Logloss)
	m.MAE = sae / float64(n)
	if sst > 0 {
		m.R2 = 1 - sse/sst
	}
	return m
}
