package train

import (
	"fmt"
	"time"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/gocty"
)

// Config is a train stage's evaluated configuration.
type Config struct {
	Model         string
	Workers       int
	Minibatch     int
	LearningRate  float64
	Optimizer     string
	Momentum      float64
	L2            float64
	Epochs        int
	Timeout       time.Duration
	TargetLogloss float64 // 0: none
	Epsilon       float64 // 0: none
	EvalInterval  time.Duration
	Lifetime      time.Duration // 0: the backend's
	Seed          int64
	KeepModel     bool // keep the model in psstore after exporting it
}

// ParseConfig reads the schema's attributes (everything but input) from a stage's
// configuration object. grid_search uses it too, after overriding trial parameters.
func ParseConfig(v cty.Value) (Config, error) {
	var c Config
	str := func(name string) string {
		a := v.GetAttr(name)
		if a.IsNull() {
			return ""
		}
		return a.AsString()
	}
	f := func(name string) float64 {
		a := v.GetAttr(name)
		if a.IsNull() {
			return 0
		}
		var x float64
		_ = gocty.FromCtyValue(a, &x)
		return x
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
	c.Model = str("model")
	c.Workers = int(f("workers"))
	c.Minibatch = int(f("minibatch"))
	c.LearningRate = f("learning_rate")
	c.Optimizer = str("optimizer")
	c.Momentum = f("momentum")
	c.L2 = f("l2")
	c.Epochs = int(f("epochs"))
	c.TargetLogloss = f("target_logloss")
	c.Epsilon = f("epsilon")
	c.Seed = int64(f("seed"))
	c.KeepModel = keepModel(v)
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
	if c.LearningRate <= 0 {
		return c, fmt.Errorf("learning_rate must be positive; got %g", c.LearningRate)
	}
	if c.EvalInterval <= 0 {
		c.EvalInterval = time.Second
	}
	return c, nil
}
