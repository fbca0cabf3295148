// Package train is the `train` operator: asynchronous SGD on stateless workers with
// the model held in psstore.
package train

import (
	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/operators"
)

// Schema is the `train` block.
var Schema = &operators.Schema{
	Name:        "train",
	Version:     1,
	UsesPSStore: true,
	Doc:         "Trains a model with asynchronous minibatch SGD on a wave of worker functions and a parameter server.",
	Attrs: []operators.Attr{
		{Name: "input", Type: cty.DynamicPseudoType, Required: true,
			Doc: "A stage with train and test datasets, such as normalize.adult."},
		{Name: "model", Type: cty.String, Default: cty.StringVal("logistic_regression"), Enum: []string{"logistic_regression"},
			Doc: "The model to train."},
		{Name: "workers", Type: cty.Number, Default: cty.NumberIntVal(4), Min: operators.Float(1), Max: operators.Float(1000),
			Doc: "Number of concurrent worker functions."},
		{Name: "minibatch", Type: cty.Number, Default: cty.NumberIntVal(100), Min: operators.Float(1), Max: operators.Float(1e6),
			Doc: "Rows per minibatch."},
		{Name: "learning_rate", Type: cty.Number, Default: cty.NumberFloatVal(0.1), Min: operators.Float(0),
			Doc: "Step size."},
		{Name: "optimizer", Type: cty.String, Default: cty.StringVal("adagrad"), Enum: []string{"sgd", "momentum", "adagrad"},
			Doc: "Update rule applied per coordinate on the parameter server."},
		{Name: "momentum", Type: cty.Number, Default: cty.NumberFloatVal(0.9), Min: operators.Float(0), Max: operators.Float(1),
			Doc: "momentum only: the decay of the velocity."},
		{Name: "l2", Type: cty.Number, Default: cty.NumberIntVal(0), Min: operators.Float(0),
			Doc: "L2 regularisation strength."},
		{Name: "epochs", Type: cty.Number, Default: cty.NumberIntVal(5), Min: operators.Float(0), Max: operators.Float(1e6),
			Doc: "Passes over the training set."},
		{Name: "timeout", Type: cty.String, Default: cty.StringVal("30m"), Duration: true,
			Doc: "Stop training after this long, keeping the model so far."},
		{Name: "target_logloss", Type: cty.Number, Min: operators.Float(0),
			Doc: "Stop once the test logloss reaches this value."},
		{Name: "epsilon", Type: cty.Number, Min: operators.Float(0),
			Doc: "Stop once the test loss improves by less than this fraction over the convergence window."},
		{Name: "eval_interval", Type: cty.String, Default: cty.StringVal("1s"), Duration: true,
			Doc: "How often the evaluator measures the test loss."},
		{Name: "lifetime", Type: cty.String, Duration: true,
			Doc: "Worker function lifetime before it is relaunched as a new generation; defaults to the backend's."},
		{Name: "seed", Type: cty.Number, Default: cty.NumberIntVal(1),
			Doc: "Seed for initialisation and the per-epoch shuffle."},
		{Name: "keep_model", Type: cty.Bool, Default: cty.False,
			Doc: "Keep the model in psstore after it is exported (it is deleted by default; `stratus psstore rm` or `gc` removes a kept one)."},
	},
	Outputs: map[string]cty.Type{
		"model":   cty.String,
		"metrics": operators.MetricsType,
	},
}
