package train

import (
	"fmt"
	"slices"

	"github.com/stratus-ml/stratus/dataset/manifest"
)

// Labels are stored as the input spelled them (see manifest.Labels); a model reads
// them through its label function, applied once to each partition as it is fetched:
//
//   - binary models (logistic_regression, linear_svm): a label above 0 is
//     positive (1), any other negative (0) — LIBSVM's −1/+1 and 0/1 alike;
//   - linear_regression: the value itself;
//   - softmax: the index of the value among the training set's distinct labels
//     in increasing order (Config.Classes), so labels 0..K−1 are their own
//     indices and 1..K are one less; a value that is not a class is −1.
func labelFunc(kind string, classes []float64) func([]float32) {
	switch kind {
	case "linear_regression":
		return nil
	case "softmax":
		return func(ys []float32) {
			for i, y := range ys {
				k, ok := slices.BinarySearch(classes, float64(y))
				if !ok {
					k = -1
				}
				ys[i] = float32(k)
			}
		}
	}
	return func(ys []float32) {
		for i, y := range ys {
			if y > 0 {
				ys[i] = 1
			} else {
				ys[i] = 0
			}
		}
	}
}

// binaryModel reports whether a model predicts one of two classes.
func binaryModel(kind string) bool {
	return kind == "" || kind == "logistic_regression" || kind == "linear_svm"
}

// checkData checks the labels of d's sets against the model (checkLabels) and
// sets d.Classes. The held-out sets of a softmax model may hold only classes of
// the training set.
func checkData(model string, d *Data) error {
	cs, err := checkLabels(model, "training", d.Labels)
	if err != nil {
		return err
	}
	for _, h := range []struct {
		name string
		l    *manifest.Labels
		rows int64
	}{{"test", d.TestLabels, d.TestRows}, {"validation", d.ValidationLabels, int64(len(d.Validation))}} {
		if h.l == nil || h.rows == 0 {
			continue
		}
		if model != "softmax" {
			if _, err := checkLabels(model, h.name, h.l); err != nil {
				return err
			}
		} else {
			if h.l.Many {
				return fmt.Errorf("softmax: the %s set's labels take more than %d values, not the %d classes of the training set", h.name, manifest.MaxDistinctLabels, len(cs))
			}
			for _, v := range h.l.Distinct {
				if _, ok := slices.BinarySearch(cs, v.Value); !ok {
					return fmt.Errorf("softmax: the %s set has label %g (%d rows), which the training set does not (its classes: %v)", h.name, v.Value, v.Count, cs)
				}
			}
		}
	}
	d.Classes = cs
	return nil
}

// checkLabels refuses a training set whose labels the model cannot learn: a
// multiclass or real-valued set for a binary model (naming the first line whose
// label is not binary, and the model to use), fewer than two classes for softmax.
// It returns softmax's classes.
func checkLabels(model string, name string, l *manifest.Labels) ([]float64, error) {
	switch {
	case binaryModel(model):
		if l.Binary() {
			return nil, nil
		}
		use := `model = "softmax" (multiclass logistic regression)`
		if _, err := l.Classes(); err != nil {
			use = `model = "linear_regression"`
		}
		return nil, fmt.Errorf("%s is a binary model, but the labels of the %s set are not binary (-1, 0 or 1): %s, first at %s; use %s", model, name, l.Describe(), l.First, use)
	case model == "softmax":
		cs, err := l.Classes()
		if err != nil {
			return nil, fmt.Errorf("softmax needs classes, but of the %s set: %w; use model = \"linear_regression\"", name, err)
		}
		if len(cs) < 2 {
			return nil, fmt.Errorf("softmax needs at least two classes; the labels of the %s set are all %g", name, cs[0])
		}
		return cs, nil
	}
	return nil, nil
}
