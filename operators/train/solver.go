package train

import "fmt"

// fullBatchBytes bounds the training set the full-batch solver holds in memory,
// across all its gradient tasks: 8 bytes per stored entry (index and value) and 8
// per row. Larger sets train with SGD, which streams them.
const fullBatchBytes = 2 << 30

// fullBatchDim bounds the model the full-batch solver trains by default: every
// pass moves and combines dense vectors of the model's size, which for a large
// hashed model (2^20 coordinates) costs more than streaming minibatches.
const fullBatchDim = 1 << 16

// chooseSolver resolves cfg.Solver against the data and says why:
//
//   - "sgd", "lbfgs" and "newton" are taken as given;
//   - "auto" is "sgd" when the pipeline gave an SGD argument (optimizer,
//     learning_rate or minibatch) — it asked for SGD —, when the training set
//     needs more than fullBatchBytes in memory, or when the model has more than
//     fullBatchDim coordinates;
//     otherwise "newton" for a model Newton trains (newtonModel) of at most
//     hessianDim coordinates, whose passes return the whole Hessian, so an
//     iteration is one wave (a9a: 6 passes against L-BFGS's 17);
//     otherwise "lbfgs". Both converge without a step size to tune.
//
// The rule itself is solverRule (solverplan.go), which plan evaluates on what
// it knows of the data before they are read (PlanSolver); here every figure is
// exact, so it names one solver.
func chooseSolver(cfg Config, d *Data) (solver, why string) {
	k := Known{Rows: Exact(d.TrainRows), NNZ: Exact(d.TrainNNZ), Features: Exact(int64(d.Features)), Classes: Exact(int64(len(d.Classes)))}
	p := solverRule(cfg, k)
	return p.Solver, p.Why
}

// fullBatch reports whether solver trains on the whole training set each pass.
func fullBatch(solver string) bool { return solver == "lbfgs" || solver == "newton" }

func mib(b int64) string {
	if b < 1<<20 {
		return fmt.Sprintf("%d KiB", (b+1023)>>10)
	}
	return fmt.Sprintf("%d MiB", b>>20)
}

// Metric is the figure a model is ranked by and its direction: logistic_regression
// and softmax by test_logloss, lower is better; linear_svm, which has no log loss,
// by accuracy, higher is better; linear_regression by test_rmse, lower is better.
func Metric(model string) (name string, lower bool) {
	switch model {
	case "linear_svm":
		return "accuracy", false
	case "linear_regression":
		return "test_rmse", true
	}
	if model == "matrix_factorization" {
		return "test_rmse", true
	}
	return "test_logloss", true
}
