// Package train is the `train` operator. It has three solvers, chosen per stage by
// solver = "auto" (see chooseSolver) and named in the stage's notes, the model
// artifact (solver) and the summary:
//
//   - lbfgs: full-batch L-BFGS on the regularised mean loss (λ = l2, by default
//     1/rows: liblinear's C = 1). Every gradient pass is a wave of "train.grad"
//     tasks over shares of the training set, which functions keep in memory
//     between passes; the coordinator sums their gradients and runs the line
//     search. It stops when the objective converges (its fall over 5 iterations
//     under 1e-5 of its value, or ‖∇f‖ under 1e-3 of its first value), when the
//     validation loss stops improving (a validation set only: by less than 1e-4
//     over 5 iterations; the best weights are kept), at target_logloss, at epochs
//     passes (1000 without epochs) or at timeout.
//   - newton: liblinear's trust-region Newton (TRON) on the same objective, with
//     the same passes and stopping rules (newton.go); auto's choice for
//     logistic_regression, linear_svm and linear_regression of at most 256
//     coordinates, whose passes return the Hessian.
//   - sgd: asynchronous minibatch SGD on stateless workers with the model in
//     psstore and an evaluator beside them. Without epochs it runs until the
//     held-out loss converges: the best of the last 5 evaluations improves on the
//     best before them by less than epsilon (default 1e-3), at most 100 epochs.
//
// The held-out set that stopping rules and target_logloss use is the validation
// set when the input has one; else, for SGD without epochs, a holdout of a tenth
// of the training set; else the test set (and the stage says which). Final
// metrics are on the test set.
//
// # Models
//
// Labels are stored as the input spelled them; each model reads them through its
// label function (labels.go), and Run refuses a set whose labels the model cannot
// learn before anything runs (checkData), naming the file and line of the first
// label that is not binary and the model to use:
//
//   - logistic_regression and linear_svm: binary labels (−1, 0 or 1; above 0 is
//     positive). One weight per feature and an intercept (the last coordinate).
//   - softmax (softmax.go): K ≥ 2 integer classes, the training set's distinct
//     labels in increasing order; K × (F+1) weights, feature-major in psstore;
//     multinomial cross-entropy; test_logloss, accuracy, per_class_accuracy.
//   - linear_regression (regression.go): real labels; squared or Huber loss;
//     test_rmse, test_mae, r2 (its held-out loss for the stopping rules is the
//     mean training loss, named "loss").
//   - matrix_factorization (mf.go) trains on a ratings dataset: mean + user
//     and item biases + rank-k factors, k+1 coordinates per user and item, by
//     alternating least squares (mf_als.go: waves of train.mf_als tasks, auto's
//     choice when the factors fit) or by asynchronous SGD workers
//     (train.mf_worker) on the model in psstore beside an RMSE evaluator
//     (train.mf_eval), each stopping on the held-out RMSE (validation set, else a
//     holdout of a tenth of the training set when epochs is not given or there is
//     no test set); the exported model is scored on the test set
//     (train.mf_score). Its metrics are test_rmse and test_mae (validation_* with a
//     validation set), lower is better.
//
// Metric names each model's ranking figure and its direction.
package train

import (
	"fmt"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/operators"
)

// Schema is the `train` block.
var Schema = &operators.Schema{
	Name:        "train",
	Version:     2,
	UsesPSStore: true,
	Doc:         "Trains a model with asynchronous minibatch SGD on a wave of worker functions and a parameter server.",
	Attrs: []operators.Attr{
		{Name: "input", Type: cty.DynamicPseudoType, Required: true,
			Doc: "A stage with train and test datasets, such as normalize.adult."},
		{Name: "model", Type: cty.String, Default: cty.StringVal("logistic_regression"), Enum: []string{"logistic_regression", "linear_svm", "softmax", "linear_regression", "matrix_factorization"},
			Doc: "The model to train: logistic_regression (log loss; test_logloss, accuracy, auc) or linear_svm (squared hinge loss, liblinear -s 2's primal; accuracy, auc), whose labels are binary (-1/+1 or 0/1); softmax (multiclass logistic regression over the training set's K distinct labels, in increasing order; test_logloss, accuracy, per_class_accuracy); linear_regression (squared or Huber loss on real labels; test_rmse, test_mae, r2); or matrix_factorization (collaborative filtering on a load with format = \"ratings\": mean + user and item biases + rank-k factors; test_rmse, test_mae)."},
		{Name: "loss", Type: cty.String, Enum: []string{"squared", "huber"},
			Doc: "linear_regression: squared (½(prediction − label)², the default) or huber (quadratic within huber_delta of the label, linear beyond: robust to outliers)."},
		{Name: "huber_delta", Type: cty.Number, Min: operators.Float(0),
			Doc: "linear_regression with loss = \"huber\": the threshold δ, in the label's units (default 1)."},
		{Name: "rank", Type: cty.Number, Integer: true, Min: operators.Float(1), Max: operators.Float(1000),
			Doc: "matrix_factorization: the rank of the user and item factors (default 10)."},
		{Name: "workers", Type: cty.Number, Integer: true, Auto: true, Default: operators.AutoValue, Min: operators.Float(1), Max: operators.Float(1000),
			Doc: "Number of concurrent worker functions, or \"auto\" (the default): the planner chooses from the data size and the backend's concurrency, within the stage's budget and deadline, and says why in the plan."},
		{Name: "solver", Type: cty.String, Default: cty.StringVal("auto"), Enum: []string{"auto", "sgd", "lbfgs", "newton", "als"},
			Doc: "auto: a full-batch solver over the whole training set when it fits in memory and no SGD argument (optimizer, learning_rate, minibatch) is given — trust-region Newton (liblinear's TRON) for a model of at most 256 coordinates other than softmax, else L-BFGS —, otherwise asynchronous SGD; for matrix_factorization, alternating least squares (als) when the factors fit, else SGD. newton: trust-region Newton for logistic_regression, linear_svm and linear_regression. The choice is shown and recorded in the model."},
		{Name: "minibatch", Type: cty.Number, Integer: true, Min: operators.Float(1), Max: operators.Float(1e6),
			Doc: "SGD: rows per minibatch (default 100; matrix_factorization: twice its users and items, 1000 to 50000 ratings)."},
		{Name: "learning_rate", Type: cty.Number, Min: operators.Float(0),
			Doc: "SGD: step size (default 0.1; matrix_factorization 0.2)."},
		{Name: "optimizer", Type: cty.String, Enum: []string{"sgd", "momentum", "adagrad"},
			Doc: "SGD: update rule applied per coordinate on the parameter server (default adagrad)."},
		{Name: "momentum", Type: cty.Number, Default: cty.NumberFloatVal(0.9), Min: operators.Float(0), Max: operators.Float(1),
			Doc: "momentum only: the decay of the velocity."},
		{Name: "l2", Type: cty.Number, Min: operators.Float(0),
			Doc: "L2 regularisation strength λ of mean loss + λ/2·‖w‖² (the intercept is not regularised). Default: 1/rows for L-BFGS (liblinear's C = 1), 0 for SGD. matrix_factorization: λ/2 of each rating's user and item parameters' squared norm (default 0.05)."},
		{Name: "epochs", Type: cty.Number, Integer: true, Max: operators.Float(1e6), Check: checkEpochs,
			Doc: "At most this many passes over the training set. Without it, training runs until it converges (see the package documentation)."},
		{Name: "timeout", Type: cty.String, Default: cty.StringVal("30m"), Duration: true,
			Doc: "Stop training after this long, keeping the model so far."},
		{Name: "target_logloss", Type: cty.Number, Min: operators.Float(0),
			Doc: "Stop once the test logloss reaches this value."},
		{Name: "epsilon", Type: cty.Number, Min: operators.Float(0),
			Doc: "Stop once the test loss improves by less than this fraction over the convergence window."},
		{Name: "eval_interval", Type: cty.String, Duration: true,
			Doc: "SGD: how often the evaluator measures the held-out loss (default 1s; 250ms when training until converged)."},
		{Name: "lifetime", Type: cty.String, Duration: true,
			Doc: "Worker function lifetime before it is relaunched as a new generation; defaults to the backend's."},
		{Name: "seed", Type: cty.Number, Integer: true, Default: cty.NumberIntVal(1),
			Doc: "Seed for initialisation and the per-epoch shuffle."},
		{Name: "keep_model", Type: cty.Bool, Default: cty.False,
			Doc: "Keep the model in psstore after it is exported (it is deleted by default; `stratus psstore rm` or `gc` removes a kept one)."},
	},
	Check: func(cfg cty.Value) []operators.Problem {
		return append(checkModelArgs(cfg), checkMF(cfg)...)
	},
	Outputs: map[string]cty.Type{
		"model":   cty.String,
		"metrics": operators.MetricsType,
	},
}

// checkModelArgs refuses arguments that do not apply to the model.
func checkModelArgs(cfg cty.Value) []operators.Problem {
	m := cfg.GetAttr("model")
	if !m.IsKnown() || m.IsNull() {
		return nil
	}
	model := m.AsString()
	set := func(name string) bool { return cfg.Type().HasAttribute(name) && !cfg.GetAttr(name).IsNull() }
	var ps []operators.Problem
	switch model {
	case "linear_svm":
		if set("target_logloss") {
			ps = append(ps, operators.Problem{Attr: "target_logloss", Summary: "Argument does not apply to linear_svm",
				Detail: "A linear SVM scores by its margin and has no log loss: remove target_logloss, or train logistic_regression."})
		}
	case "linear_regression":
		if set("target_logloss") {
			ps = append(ps, operators.Problem{Attr: "target_logloss", Summary: "Argument does not apply to linear_regression",
				Detail: "A regression has no log loss (its figures are test_rmse, test_mae and r2): remove target_logloss."})
		}
		if set("huber_delta") {
			if l := cfg.GetAttr("loss"); l.IsKnown() && (l.IsNull() || l.AsString() != "huber") {
				ps = append(ps, operators.Problem{Attr: "huber_delta", Summary: "Argument applies to loss = \"huber\" only",
					Detail: "huber_delta is the Huber loss's threshold: set loss = \"huber\", or remove huber_delta."})
			}
		}
		if f := cfg.GetAttr("huber_delta"); set("huber_delta") && f.IsKnown() {
			if d, _ := f.AsBigFloat().Float64(); d <= 0 {
				ps = append(ps, operators.Problem{Attr: "huber_delta", Summary: "huber_delta must be positive",
					Detail: fmt.Sprintf("got %g: the Huber loss is quadratic within δ of the label, so δ > 0.", d)})
			}
		}
	}
	if sv := cfg.GetAttr("solver"); sv.IsKnown() && !sv.IsNull() && sv.AsString() == "newton" && !newtonModel(model) {
		ps = append(ps, operators.Problem{Attr: "solver", Summary: "Solver newton does not apply to " + model,
			Detail: "Trust-region Newton trains logistic_regression, linear_svm and linear_regression: use solver = \"auto\" or \"lbfgs\"" +
				map[bool]string{true: " (matrix_factorization: \"auto\" or \"sgd\").", false: "."}[model == "matrix_factorization"]})
	}
	if model != "linear_regression" {
		for _, a := range []string{"loss", "huber_delta"} {
			if set(a) {
				ps = append(ps, operators.Problem{Attr: a, Summary: "Argument does not apply to " + model,
					Detail: a + " chooses linear_regression's loss: remove it, or train model = \"linear_regression\"."})
			}
		}
	}
	return ps
}

func checkEpochs(v cty.Value) error {
	if f, _ := v.AsBigFloat().Float64(); f < 1 {
		return fmt.Errorf("epochs must be at least 1; got %g. Leave epochs out to train until the loss converges", f)
	}
	return nil
}
