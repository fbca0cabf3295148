package train

import (
	"strings"
	"testing"
)

func TestChooseSolver(t *testing.T) {
	small := &Data{Features: 123, TrainRows: 32561, TrainNNZ: 451592}
	hashed := &Data{Features: 1 << 20, TrainRows: 200000, TrainNNZ: 6900000}
	huge := &Data{Features: 123, TrainRows: 1 << 30, TrainNNZ: 1 << 31}
	for _, c := range []struct {
		cfg  Config
		data *Data
		want string
		why  string
	}{
		{Config{Solver: "auto"}, small, "newton", "Hessian of 124 coordinates"},
		{Config{Solver: "auto", Model: "linear_svm"}, small, "newton", "fits in memory"},
		{Config{Solver: "auto", Model: "softmax"}, &Data{Features: 123, TrainRows: 32561, TrainNNZ: 451592, Classes: []float64{0, 1, 2}}, "lbfgs", "fits in memory"},
		{Config{Solver: "auto"}, &Data{Features: 1000, TrainRows: 32561, TrainNNZ: 451592}, "lbfgs", "fits in memory"},
		{Config{Solver: "newton"}, &Data{Features: 1000, TrainRows: 32561, TrainNNZ: 451592}, "newton", "asked for"},
		{Config{Solver: "auto", SGDArgs: true}, small, "sgd", "SGD arguments"},
		{Config{Solver: "auto"}, hashed, "sgd", "coordinates"},
		{Config{Solver: "auto", Model: "linear_svm"}, hashed, "sgd", "coordinates"},
		{Config{Solver: "auto"}, huge, "sgd", "in memory"},
		{Config{Solver: "lbfgs", SGDArgs: true}, huge, "lbfgs", "asked for"},
		{Config{Solver: "sgd"}, small, "sgd", "asked for"},
	} {
		got, why := chooseSolver(c.cfg, c.data)
		if got != c.want || !strings.Contains(why, c.why) {
			t.Errorf("chooseSolver(%+v, %d features, %d nnz) = %s (%s); want %s (…%s…)", c.cfg, c.data.Features, c.data.TrainNNZ, got, why, c.want, c.why)
		}
	}
}
