package psstore

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	pb "github.com/stratus-ml/stratus/psstore/proto"
)

// Optimizer names accepted in ModelSpec.Optimizer.
const (
	OptimizerSGD      = "sgd"
	OptimizerMomentum = "momentum"
	OptimizerAdagrad  = "adagrad"
)

// Init names accepted in ModelSpec.Init.
const (
	InitZero   = "zero"
	InitNormal = "normal"
)

// Defaults filled in by ModelSpec normalisation.
const (
	DefaultMomentum = 0.9
	DefaultEpsilon  = 1e-8
	DefaultStddev   = 0.01
)

// ModelSpec describes a model: a dense float32 vector of Dim coordinates
// addressed by global keys 0..Dim-1, and how pushes update it (see the
// package documentation for the exact arithmetic).
type ModelSpec struct {
	// Name identifies the model on every shard: 1 to 256 bytes of UTF-8,
	// no NUL.
	Name string
	// Dim is the number of coordinates; keys must be < Dim.
	Dim uint64
	// Optimizer is "sgd" (the default when empty), "momentum" or "adagrad".
	Optimizer string
	// LearningRate (lr) must be positive and finite.
	LearningRate float32
	// L2 >= 0 adds l2*w to each pushed coordinate's gradient.
	L2 float32
	// Momentum is mu for the momentum optimizer, in [0, 1); 0 means 0.9.
	// It must be 0 for other optimizers.
	Momentum float32
	// Epsilon is adagrad's eps > 0; 0 means 1e-8. It must be 0 for other
	// optimizers.
	Epsilon float32
	// Init is "zero" (the default when empty) or "normal": w[k] drawn from
	// N(0, Stddev^2) by a generator keyed on (Seed, k), so the initial model
	// does not depend on the shard count.
	Init string
	// Seed and Stddev apply to Init "normal"; Stddev 0 means 0.01.
	Seed   uint64
	Stddev float32
}

// normalize fills defaults and validates the spec. Two specs describe the
// same model exactly when their normalised forms are equal.
func (s ModelSpec) normalize() (ModelSpec, error) {
	if err := validateModelName(s.Name); err != nil {
		return s, err
	}
	bad := func(format string, args ...any) (ModelSpec, error) {
		return s, fmt.Errorf("model %q: %s", s.Name, fmt.Sprintf(format, args...))
	}
	if s.Dim == 0 {
		return bad("dim must be at least 1")
	}
	s.Optimizer = strings.ToLower(s.Optimizer)
	if s.Optimizer == "" {
		s.Optimizer = OptimizerSGD
	}
	if !finite32(s.LearningRate) || s.LearningRate <= 0 {
		return bad("learning rate %v must be positive and finite", s.LearningRate)
	}
	if !finite32(s.L2) || s.L2 < 0 {
		return bad("l2 %v must be >= 0 and finite", s.L2)
	}
	switch s.Optimizer {
	case OptimizerSGD:
		if s.Momentum != 0 || s.Epsilon != 0 {
			return bad("momentum and epsilon apply only to the momentum and adagrad optimizers")
		}
	case OptimizerMomentum:
		if s.Epsilon != 0 {
			return bad("epsilon applies only to adagrad")
		}
		if s.Momentum == 0 {
			s.Momentum = DefaultMomentum
		}
		if !finite32(s.Momentum) || s.Momentum < 0 || s.Momentum >= 1 {
			return bad("momentum %v must be in [0, 1)", s.Momentum)
		}
	case OptimizerAdagrad:
		if s.Momentum != 0 {
			return bad("momentum applies only to the momentum optimizer")
		}
		if s.Epsilon == 0 {
			s.Epsilon = DefaultEpsilon
		}
		if !finite32(s.Epsilon) || s.Epsilon <= 0 {
			return bad("epsilon %v must be positive and finite", s.Epsilon)
		}
	default:
		return bad("unknown optimizer %q: use sgd, momentum or adagrad", s.Optimizer)
	}
	s.Init = strings.ToLower(s.Init)
	switch s.Init {
	case "", InitZero:
		s.Init = InitZero
		if s.Seed != 0 || s.Stddev != 0 {
			return bad("seed and stddev apply only to init \"normal\"")
		}
	case InitNormal:
		if s.Stddev == 0 {
			s.Stddev = DefaultStddev
		}
		if !finite32(s.Stddev) || s.Stddev < 0 {
			return bad("stddev %v must be >= 0 and finite", s.Stddev)
		}
	default:
		return bad("unknown init %q: use zero or normal", s.Init)
	}
	return s, nil
}

// hasState reports whether the optimizer keeps one float32 of state per
// coordinate (momentum's velocity, adagrad's sum of squared gradients).
func (s ModelSpec) hasState() bool { return s.Optimizer != OptimizerSGD }

func validateModelName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("model name is empty")
	case len(name) > 256:
		return fmt.Errorf("model name %.40q... is %d bytes long: at most 256", name, len(name))
	case !utf8.ValidString(name):
		return fmt.Errorf("model name %q is not valid UTF-8", name)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("model name %q contains a NUL byte", name)
	}
	return nil
}

func finite32(f float32) bool {
	return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0)
}

func (s ModelSpec) toProto() *pb.ModelSpec {
	p := &pb.ModelSpec{
		Name:         s.Name,
		Dim:          s.Dim,
		LearningRate: s.LearningRate,
		L2:           s.L2,
		Momentum:     s.Momentum,
		Epsilon:      s.Epsilon,
		Seed:         s.Seed,
		Stddev:       s.Stddev,
	}
	switch s.Optimizer {
	case OptimizerSGD, "":
		p.Optimizer = pb.Optimizer_OPTIMIZER_SGD
	case OptimizerMomentum:
		p.Optimizer = pb.Optimizer_OPTIMIZER_MOMENTUM
	case OptimizerAdagrad:
		p.Optimizer = pb.Optimizer_OPTIMIZER_ADAGRAD
	default:
		p.Optimizer = pb.Optimizer_OPTIMIZER_UNSPECIFIED
	}
	if s.Init == InitNormal {
		p.Init = pb.Init_INIT_NORMAL
	}
	return p
}

func specFromProto(p *pb.ModelSpec) (ModelSpec, error) {
	if p == nil {
		return ModelSpec{}, fmt.Errorf("missing model spec")
	}
	s := ModelSpec{
		Name:         p.Name,
		Dim:          p.Dim,
		LearningRate: p.LearningRate,
		L2:           p.L2,
		Momentum:     p.Momentum,
		Epsilon:      p.Epsilon,
		Seed:         p.Seed,
		Stddev:       p.Stddev,
	}
	switch p.Optimizer {
	case pb.Optimizer_OPTIMIZER_SGD:
		s.Optimizer = OptimizerSGD
	case pb.Optimizer_OPTIMIZER_MOMENTUM:
		s.Optimizer = OptimizerMomentum
	case pb.Optimizer_OPTIMIZER_ADAGRAD:
		s.Optimizer = OptimizerAdagrad
	default:
		return s, fmt.Errorf("model %q: unknown optimizer %v", p.Name, p.Optimizer)
	}
	switch p.Init {
	case pb.Init_INIT_ZERO:
		s.Init = InitZero
	case pb.Init_INIT_NORMAL:
		s.Init = InitNormal
	default:
		return s, fmt.Errorf("model %q: unknown init %v", p.Name, p.Init)
	}
	return s, nil
}

// diff names the first field in which two normalised specs differ.
func (s ModelSpec) diff(o ModelSpec) string {
	switch {
	case s.Dim != o.Dim:
		return fmt.Sprintf("dim %d vs %d", s.Dim, o.Dim)
	case s.Optimizer != o.Optimizer:
		return fmt.Sprintf("optimizer %s vs %s", s.Optimizer, o.Optimizer)
	case s.LearningRate != o.LearningRate:
		return fmt.Sprintf("learning rate %v vs %v", s.LearningRate, o.LearningRate)
	case s.L2 != o.L2:
		return fmt.Sprintf("l2 %v vs %v", s.L2, o.L2)
	case s.Momentum != o.Momentum:
		return fmt.Sprintf("momentum %v vs %v", s.Momentum, o.Momentum)
	case s.Epsilon != o.Epsilon:
		return fmt.Sprintf("epsilon %v vs %v", s.Epsilon, o.Epsilon)
	case s.Init != o.Init:
		return fmt.Sprintf("init %s vs %s", s.Init, o.Init)
	case s.Seed != o.Seed:
		return fmt.Sprintf("seed %d vs %d", s.Seed, o.Seed)
	case s.Stddev != o.Stddev:
		return fmt.Sprintf("stddev %v vs %v", s.Stddev, o.Stddev)
	}
	return ""
}

// applyUpdate applies one push's gradients to the coordinates keys (local,
// sorted) of a slice's data (weights, interleaved with the optimizer state
// for momentum and adagrad: see modelShard), following the arithmetic in the
// package documentation. The caller holds the locks covering keys.
func (s *ModelSpec) applyUpdate(data []float32, keys []uint64, grads []float32) {
	lr, l2 := s.LearningRate, s.L2
	switch s.Optimizer {
	case OptimizerSGD:
		for i, k := range keys {
			wk := data[k]
			g := grads[i] + l2*wk
			data[k] = wk - lr*g
		}
	case OptimizerMomentum:
		mu := s.Momentum
		for i, k := range keys {
			c := data[2*k : 2*k+2 : 2*k+2]
			wk := c[0]
			g := grads[i] + l2*wk
			v := mu*c[1] + g
			c[1] = v
			c[0] = wk - lr*v
		}
	case OptimizerAdagrad:
		eps := s.Epsilon
		for i, k := range keys {
			c := data[2*k : 2*k+2 : 2*k+2]
			wk := c[0]
			g := grads[i] + l2*wk
			h := c[1] + g*g
			c[1] = h
			c[0] = wk - lr*g/(float32(math.Sqrt(float64(h)))+eps)
		}
	}
}

// initValue is the initial weight of global key k: 0, or for init "normal"
// a N(0, stddev^2) draw from a counter-based generator keyed on (seed, k).
func (s *ModelSpec) initValue(k uint64) float32 {
	if s.Init != InitNormal {
		return 0
	}
	a := splitmix64(s.Seed ^ splitmix64(k))
	b := splitmix64(a)
	// Box-Muller with u1 in (0, 1].
	u1 := (float64(a>>11) + 1) / (1 << 53)
	u2 := float64(b>>11) / (1 << 53)
	z := math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
	return float32(z) * s.Stddev
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
