package train

import "fmt"

// fullBatchBytes bounds the training set the full-batch solver holds in memory,
// across all its gradient tasks: 8 bytes per stored entry (index and value) and 8
// per row. Larger sets train with SGD, which streams them.
const fullBatchBytes = 2 << 30

// chooseSolver resolves cfg.Solver against the data and says why:
//
//   - "sgd" and "lbfgs" are taken as given;
//   - "auto" is "sgd" when the pipeline gave an SGD argument (optimizer,
//     learning_rate or minibatch) — it asked for SGD — or when the training set
//     needs more than fullBatchBytes in memory; otherwise "lbfgs", which converges
//     without a step size to tune.
func chooseSolver(cfg Config, d *Data) (solver, why string) {
	bytes := 8*d.TrainNNZ + 8*d.TrainRows
	switch {
	case cfg.Solver == "sgd" || cfg.Solver == "lbfgs":
		return cfg.Solver, "asked for"
	case cfg.SGDArgs:
		return "sgd", "auto: the stage sets SGD arguments"
	case bytes > fullBatchBytes:
		return "sgd", fmt.Sprintf("auto: the training set needs %s in memory, over the full-batch limit of %s", mib(bytes), mib(fullBatchBytes))
	default:
		return "lbfgs", fmt.Sprintf("auto: the training set fits in memory (%s)", mib(bytes))
	}
}

func mib(b int64) string {
	if b < 1<<20 {
		return fmt.Sprintf("%d KiB", (b+1023)>>10)
	}
	return fmt.Sprintf("%d MiB", b>>20)
}
