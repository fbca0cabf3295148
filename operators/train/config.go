package train

import (
	"fmt"
	"math"
	"time"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/gocty"

	"github.com/stratus-ml/stratus/operators"
)

// Config is a train stage's evaluated configuration.
type Config struct {
	Model string
	// Solver is the solver asked for: "auto", "sgd", "lbfgs", "newton" or, for
	// matrix factorization, "als" (see chooseSolver and chooseMFSolver).
	Solver       string
	Workers      int
	Minibatch    int
	LearningRate float64
	Optimizer    string
	Momentum     float64
	// L2 is the regularisation strength; L2Set says the pipeline gave it (the
	// full-batch solver's default is 1/rows, liblinear's C = 1).
	L2    float64
	L2Set bool
	// Epochs caps the passes over the training set; 0 means "until converged".
	Epochs int
	// SGDArgs says the pipeline gave an argument only SGD uses (optimizer,
	// learning_rate, minibatch): solver "auto" then chooses SGD.
	SGDArgs       bool
	Timeout       time.Duration
	TargetLogloss float64 // 0: none
	Epsilon       float64 // 0: none
	EvalInterval  time.Duration
	Lifetime      time.Duration // 0: the backend's
	Seed          int64
	KeepModel     bool // keep the model in psstore after exporting it
	// Rank is matrix_factorization's factor rank (0: DefaultRank); the Set
	// flags say the stage gave learning_rate and minibatch (mf.go's defaults).
	Rank                          int
	LearningRateSet, MinibatchSet bool
	// Loss is linear_regression's loss, "squared" or "huber", and HuberDelta the
	// Huber threshold.
	Loss       string
	HuberDelta float64
}

// huber is the Huber threshold the tasks apply: HuberDelta for loss = "huber",
// else 0 (the squared loss).
func (c Config) huber() float64 {
	if c.Model == "linear_regression" && c.Loss == "huber" {
		return c.HuberDelta
	}
	return 0
}

// SGD's defaults, for arguments a pipeline leaves out.
const (
	DefaultMinibatch    = 100
	DefaultLearningRate = 0.1
	DefaultOptimizer    = "adagrad"
	// DefaultWorkers is workers = "auto" in a configuration the planner did not size.
	DefaultWorkers = 4
)

// ParseConfig reads the schema's attributes (everything but input) from a stage's
// configuration object. grid_search uses it too, after overriding trial parameters.
func ParseConfig(v cty.Value) (Config, error) {
	var c Config
	str := func(name string) string {
		if !v.Type().HasAttribute(name) {
			return ""
		}
		a := v.GetAttr(name)
		if a.IsNull() {
			return ""
		}
		return a.AsString()
	}
	f := func(name string) float64 {
		if !v.Type().HasAttribute(name) {
			return 0
		}
		a := v.GetAttr(name)
		if a.IsNull() {
			return 0
		}
		var x float64
		_ = gocty.FromCtyValue(a, &x)
		return x
	}
	// whole reads an Integer argument; the schema refuses fractions in a train
	// block, and this refuses them in a configuration built another way (a trial).
	var bad error
	whole := func(name string) int {
		x := f(name)
		if x != math.Trunc(x) && bad == nil {
			bad = fmt.Errorf("%s must be a whole number; got %g", name, x)
		}
		return int(x)
	}
	d := func(name string) (time.Duration, error) {
		s := str(name)
		if s == "" {
			return 0, nil
		}
		x, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		return x, nil
	}
	set := func(name string) bool { return v.Type().HasAttribute(name) && !v.GetAttr(name).IsNull() }
	c.Model = str("model")
	c.Solver = str("solver")
	if c.Solver == "" {
		c.Solver = "auto"
	}
	c.SGDArgs = sgdArgs(v)
	if v.Type().HasAttribute("workers") && operators.IsAuto(v.GetAttr("workers")) {
		// The planner replaces "auto" with its choice before a coordinator sees
		// the configuration; a configuration built another way gets the default.
		c.Workers = DefaultWorkers
	} else {
		c.Workers = whole("workers")
	}
	c.Minibatch = whole("minibatch")
	c.LearningRate = f("learning_rate")
	c.Optimizer = str("optimizer")
	if c.Minibatch == 0 && !set("minibatch") {
		c.Minibatch = DefaultMinibatch
	}
	if c.LearningRate == 0 && !set("learning_rate") {
		c.LearningRate = DefaultLearningRate
	}
	if c.Optimizer == "" {
		c.Optimizer = DefaultOptimizer
	}
	c.Momentum = f("momentum")
	c.L2, c.L2Set = f("l2"), set("l2")
	c.Epochs = whole("epochs")
	c.TargetLogloss = f("target_logloss")
	c.Epsilon = f("epsilon")
	c.Seed = int64(whole("seed"))
	c.Rank, c.LearningRateSet, c.MinibatchSet = whole("rank"), set("learning_rate"), set("minibatch")
	c.KeepModel = keepModel(v)
	c.Loss = str("loss")
	if c.Loss == "" && c.Model == "linear_regression" {
		c.Loss = "squared"
	}
	c.HuberDelta = f("huber_delta")
	if !set("huber_delta") {
		c.HuberDelta = DefaultHuberDelta
	}
	if bad != nil {
		return c, bad
	}
	var err error
	if c.Timeout, err = d("timeout"); err != nil {
		return c, err
	}
	if c.EvalInterval, err = d("eval_interval"); err != nil {
		return c, err
	}
	if c.Lifetime, err = d("lifetime"); err != nil {
		return c, err
	}
	if c.Workers < 1 || c.Minibatch < 1 {
		return c, fmt.Errorf("workers and minibatch must be at least 1")
	}
	if c.Epochs < 1 && set("epochs") {
		return c, fmt.Errorf("epochs must be at least 1; got %d", c.Epochs)
	}
	if c.LearningRate <= 0 {
		return c, fmt.Errorf("learning_rate must be positive; got %g", c.LearningRate)
	}
	if c.EvalInterval <= 0 {
		// Training until converged waits a window of evaluations past the best:
		// evaluate more often, so the wait is short.
		c.EvalInterval = time.Second
		if c.Epochs == 0 {
			c.EvalInterval = 250 * time.Millisecond
		}
	}
	return c, nil
}
