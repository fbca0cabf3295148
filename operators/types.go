package operators

import "github.com/zclconf/go-cty/cty"

// DatasetType is the value of a dataset output (load.x.train, normalize.x.test): the
// blob URI of its manifest and the figures a downstream stage or output most often
// needs without reading the manifest.
var DatasetType = cty.Object(map[string]cty.Type{
	"manifest":   cty.String,
	"rows":       cty.Number,
	"features":   cty.Number,
	"partitions": cty.Number,
})

// MetricsType is the value of a trained model's metrics.
var MetricsType = cty.Object(map[string]cty.Type{
	"test_logloss": cty.Number,
	"accuracy":     cty.Number,
	"auc":          cty.Number,
	// The same figures on the validation set; null without one.
	"validation_logloss":  cty.Number,
	"validation_accuracy": cty.Number,
	"validation_auc":      cty.Number,
	// linear_regression's figures (null for classifiers), and on the validation set.
	"test_rmse":       cty.Number,
	"test_mae":        cty.Number,
	"r2":              cty.Number,
	"validation_rmse": cty.Number,
	"validation_mae":  cty.Number,
	"validation_r2":   cty.Number,
	// softmax: the accuracy on each class's test rows, in class order (null for
	// other models).
	"per_class_accuracy":  cty.List(cty.Number),
	"iterations":          cty.Number,
	"examples_per_second": cty.Number,
})

// CurveLossNames are the metric names a training curve's loss is reported under,
// by preference: on the test set, on the validation set, on a holdout of the
// training set (what a run without a validation set stops on).
// linear_regression's loss is named "loss" (test_loss, …).
var CurveLossNames = []string{"test_logloss", "validation_logloss", "holdout_logloss", "test_loss", "validation_loss", "holdout_loss"}

// CurveLoss returns the loss of a metric event for a training curve, the first of
// CurveLossNames it carries.
func CurveLoss(m map[string]float64) (float64, bool) {
	for _, n := range CurveLossNames {
		if v, ok := m[n]; ok {
			return v, true
		}
	}
	return 0, false
}
