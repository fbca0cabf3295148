package gridsearch

import (
	"math"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/operators"
)

func nums(xs ...float64) cty.Value {
	vs := make([]cty.Value, len(xs))
	for i, x := range xs {
		vs[i] = cty.NumberFloatVal(x)
	}
	return cty.TupleVal(vs)
}

func ids(t *testing.T, grid cty.Value) map[string]string {
	t.Helper()
	dims, err := gridDims(grid)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range product(dims) {
		v := cty.ObjectVal(p)
		out[operators.TrialID(v)] = paramsJSON(v)
	}
	return out
}

func TestTrialIDsStableUnderReordering(t *testing.T) {
	a := ids(t, cty.ObjectVal(map[string]cty.Value{
		"learning_rate": nums(0.01, 0.1, 1),
		"minibatch":     nums(20, 100),
	}))
	// The same grid written the other way round, with 0.10 for 0.1 and as a map.
	b := ids(t, cty.MapVal(map[string]cty.Value{
		"minibatch":     cty.ListVal([]cty.Value{cty.NumberIntVal(100), cty.NumberIntVal(20)}),
		"learning_rate": cty.ListVal([]cty.Value{cty.NumberFloatVal(1), cty.MustParseNumberVal("0.10"), cty.NumberFloatVal(0.01)}),
	}))
	if len(a) != 6 {
		t.Fatalf("3 × 2 grid gave %d trials", len(a))
	}
	for id, p := range a {
		if b[id] != p {
			t.Errorf("trial %s %s: reordered grid has %q", id, p, b[id])
		}
		if !strings.HasPrefix(id, "t-") || len(id) != 10 {
			t.Errorf("trial ID %q is not t- and 8 hex digits", id)
		}
	}
	// Growing the grid keeps the old IDs and adds new ones.
	c := ids(t, cty.ObjectVal(map[string]cty.Value{
		"learning_rate": nums(0.01, 0.1, 1, 0.5),
		"minibatch":     nums(20, 100),
	}))
	for id := range a {
		if _, ok := c[id]; !ok {
			t.Errorf("grown grid lost trial %s", id)
		}
	}
	if len(c) != 8 {
		t.Errorf("grown grid has %d trials, want 8", len(c))
	}
}

func randomParams() cty.Value {
	return cty.ObjectVal(map[string]cty.Value{
		"learning_rate": cty.ObjectVal(map[string]cty.Value{"distribution": cty.StringVal("loguniform"), "low": cty.NumberFloatVal(1e-4), "high": cty.NumberFloatVal(1)}),
		"momentum":      cty.ObjectVal(map[string]cty.Value{"distribution": cty.StringVal("uniform"), "low": cty.NumberFloatVal(0.5), "high": cty.NumberFloatVal(0.99)}),
		"minibatch":     cty.ObjectVal(map[string]cty.Value{"distribution": cty.StringVal("choice"), "values": nums(20, 100, 1000)}),
		"epochs":        cty.ObjectVal(map[string]cty.Value{"distribution": cty.StringVal("uniform"), "low": cty.NumberIntVal(2), "high": cty.NumberIntVal(9)}),
		"optimizer":     cty.TupleVal([]cty.Value{cty.StringVal("sgd"), cty.StringVal("adagrad")}),
	})
}

func TestRandomSearchDeterministic(t *testing.T) {
	dists, err := randomDims(randomParams())
	if err != nil {
		t.Fatal(err)
	}
	draw := func(seed int64) []string {
		var out []string
		for _, p := range sample(dists, 40, seed) {
			out = append(out, paramsJSON(cty.ObjectVal(p)))
		}
		return out
	}
	a, b, c := draw(7), draw(7), draw(8)
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("seed 7 drew differently twice:\n%v\n%v", a[:3], b[:3])
	}
	if strings.Join(a, "\n") == strings.Join(c, "\n") {
		t.Error("seeds 7 and 8 drew the same trials")
	}
	seenOpt, seenMB := map[string]bool{}, map[int64]bool{}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range sample(dists, 400, 3) {
		lr, _ := p["learning_rate"].AsBigFloat().Float64()
		if lr < 1e-4 || lr > 1 {
			t.Fatalf("learning_rate %g outside [1e-4, 1]", lr)
		}
		lo, hi = math.Min(lo, lr), math.Max(hi, lr)
		if m, _ := p["momentum"].AsBigFloat().Float64(); m < 0.5 || m > 0.99 {
			t.Fatalf("momentum %g outside [0.5, 0.99]", m)
		}
		e := p["epochs"].AsBigFloat()
		if ei, _ := e.Int64(); !e.IsInt() || ei < 2 || ei > 9 {
			t.Fatalf("epochs %v is not a whole number in [2, 9]", e)
		}
		mb, _ := p["minibatch"].AsBigFloat().Int64()
		seenMB[mb] = true
		seenOpt[p["optimizer"].AsString()] = true
	}
	// loguniform spreads over the decades: 400 draws reach both ends' decades.
	if lo > 1e-3 || hi < 0.1 {
		t.Errorf("loguniform(1e-4, 1) drew only within [%g, %g]", lo, hi)
	}
	if len(seenMB) != 3 || len(seenOpt) != 2 {
		t.Errorf("choices drawn: minibatch %v, optimizer %v", seenMB, seenOpt)
	}
}

func TestCombosGridTimesRandom(t *testing.T) {
	dists, err := randomDims(cty.ObjectVal(map[string]cty.Value{
		"learning_rate": cty.ObjectVal(map[string]cty.Value{"distribution": cty.StringVal("loguniform"), "low": cty.NumberFloatVal(1e-3), "high": cty.NumberFloatVal(1)}),
		"optimizer":     cty.TupleVal([]cty.Value{cty.StringVal("sgd")}),
	}))
	if err != nil {
		t.Fatal(err)
	}
	dims, err := gridDims(cty.ObjectVal(map[string]cty.Value{"minibatch": nums(20, 100)}))
	if err != nil {
		t.Fatal(err)
	}
	sp := &spec{grid: dims, random: &randomSpec{samples: 3, seed: 1, dists: dists}}
	combos, dropped := sp.combos()
	if len(combos)+dropped != 6 {
		t.Fatalf("2 grid points × 3 samples gave %d trials (+%d duplicates)", len(combos), dropped)
	}
	for _, c := range combos {
		if !c.Type().HasAttribute("minibatch") || !c.Type().HasAttribute("learning_rate") || c.GetAttr("optimizer").AsString() != "sgd" {
			t.Errorf("combination %s lacks an argument", paramsJSON(c))
		}
	}
	// choice([x]) with one value and nothing else duplicates every draw.
	one, _ := randomDims(cty.ObjectVal(map[string]cty.Value{"optimizer": cty.TupleVal([]cty.Value{cty.StringVal("sgd")})}))
	combos, dropped = (&spec{random: &randomSpec{samples: 4, seed: 1, dists: one}}).combos()
	if len(combos) != 1 || dropped != 3 {
		t.Errorf("4 identical draws gave %d trials, %d dropped; want 1 and 3", len(combos), dropped)
	}
}

func TestBadSearchSpaces(t *testing.T) {
	dist := func(kind string, lo, hi float64) cty.Value {
		return cty.ObjectVal(map[string]cty.Value{"distribution": cty.StringVal(kind), "low": cty.NumberFloatVal(lo), "high": cty.NumberFloatVal(hi)})
	}
	for _, c := range []struct {
		name   string
		grid   cty.Value
		random cty.Value
		want   string
	}{
		{name: "unknown key", grid: cty.ObjectVal(map[string]cty.Value{"learnin_rate": nums(0.1)}),
			want: `grid: "learnin_rate" is not an argument of train. Did you mean "learning_rate"?`},
		{name: "input", grid: cty.ObjectVal(map[string]cty.Value{"input": nums(1)}), want: "input cannot be searched"},
		{name: "empty list", grid: cty.ObjectVal(map[string]cty.Value{"learning_rate": cty.EmptyTupleVal}), want: "grid.learning_rate is empty"},
		{name: "not a list", grid: cty.ObjectVal(map[string]cty.Value{"learning_rate": cty.NumberFloatVal(0.1)}), want: "grid.learning_rate must be a list"},
		{name: "not an object", grid: nums(0.1), want: "grid must be an object of lists"},
		{name: "wrong type", grid: cty.ObjectVal(map[string]cty.Value{"learning_rate": cty.TupleVal([]cty.Value{cty.NumberFloatVal(0.1), cty.StringVal("fast")})}),
			want: "grid.learning_rate[1]: learning_rate must be a number"},
		{name: "enum", grid: cty.ObjectVal(map[string]cty.Value{"optimizer": cty.TupleVal([]cty.Value{cty.StringVal("adam")})}),
			want: `grid.optimizer[0]: "adam" is not one of "sgd", "momentum", "adagrad"`},
		{name: "below minimum", grid: cty.ObjectVal(map[string]cty.Value{"workers": nums(0, 2)}), want: "grid.workers[0]: workers must be at least 1; got 0"},
		{name: "above maximum", grid: cty.ObjectVal(map[string]cty.Value{"momentum": nums(0.5, 1.5)}), want: "grid.momentum[1]: momentum must be at most 1; got 1.5"},
		{name: "not whole", grid: cty.ObjectVal(map[string]cty.Value{"minibatch": nums(20.5)}), want: "minibatch must be a whole number; got 20.5"},
		{name: "zero learning rate", grid: cty.ObjectVal(map[string]cty.Value{"learning_rate": nums(0)}), want: "learning_rate must be positive"},
		{name: "bad duration", grid: cty.ObjectVal(map[string]cty.Value{"timeout": cty.TupleVal([]cty.Value{cty.StringVal("soon")})}), want: `"soon" is not a positive duration`},
		{name: "null", grid: cty.ObjectVal(map[string]cty.Value{"epochs": cty.TupleVal([]cty.Value{cty.NullVal(cty.Number)})}), want: "grid.epochs[0] is null"},
		{name: "random unknown key", random: cty.ObjectVal(map[string]cty.Value{"rate": dist("uniform", 0, 1)}), want: `random.params: "rate" is not an argument of train`},
		{name: "random uniform on a string", random: cty.ObjectVal(map[string]cty.Value{"optimizer": dist("uniform", 0, 1)}),
			want: "uniform(…) samples numbers, but optimizer is a string"},
		{name: "random out of bounds", random: cty.ObjectVal(map[string]cty.Value{"momentum": dist("uniform", 0.5, 2)}), want: "momentum must be at most 1; got 2"},
		{name: "random no whole number", random: cty.ObjectVal(map[string]cty.Value{"epochs": dist("uniform", 2.2, 2.8)}), want: "takes whole numbers, and there is none in [2.2, 2.8]"},
		{name: "random single value", random: cty.ObjectVal(map[string]cty.Value{"learning_rate": cty.NumberFloatVal(0.1)}), want: "not a single value"},
		{name: "random bad choice", random: cty.ObjectVal(map[string]cty.Value{"minibatch": cty.ObjectVal(map[string]cty.Value{"distribution": cty.StringVal("choice"), "values": nums(20, -1)})}),
			want: "random.params.minibatch[1]: minibatch must be at least 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if c.grid != cty.NilVal {
				_, err = gridDims(c.grid)
			} else {
				_, err = randomDims(c.random)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}
