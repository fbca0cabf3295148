package gridsearch

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/train"
)

// The search space: which train arguments a trial overrides, and with what.
//
// A trial's parameters are a cty object of train arguments, each converted to the
// argument's type and checked against the train schema's constraints, so that a
// trial's configuration is one a train block could have been written with.

// integerArgs are the train arguments whose values are whole numbers: those the
// train schema marks Integer.
var integerArgs = func() map[string]bool {
	m := map[string]bool{}
	for _, a := range train.Schema.Attrs {
		if a.Integer {
			m[a.Name] = true
		}
	}
	return m
}()

// notSearchable are train arguments a trial cannot override.
var notSearchable = map[string]string{
	"input": "every trial trains on the base stage's input",
}

// searchable returns the train arguments a grid or random block may name.
func searchable() []string {
	var out []string
	for _, a := range train.Schema.Attrs {
		if _, no := notSearchable[a.Name]; !no {
			out = append(out, a.Name)
		}
	}
	sort.Strings(out)
	return out
}

// trainAttr returns the train argument name, or an error naming what can be
// searched.
func trainAttr(where, name string) (*operators.Attr, error) {
	if why, no := notSearchable[name]; no {
		return nil, fmt.Errorf("%s: %s cannot be searched: %s", where, name, why)
	}
	a := train.Schema.Attr(name)
	if a == nil {
		hint := ""
		if s := closest(name, searchable()); s != "" {
			hint = fmt.Sprintf(" Did you mean %q?", s)
		}
		return nil, fmt.Errorf("%s: %q is not an argument of train.%s Searchable arguments: %s", where, name, hint, strings.Join(searchable(), ", "))
	}
	return a, nil
}

// checkValue converts v to the type of train argument a and checks it against the
// argument's constraints (enum, bounds, duration, whole numbers). where names the
// value in messages, such as grid.learning_rate[2].
func checkValue(where string, a *operators.Attr, v cty.Value) (cty.Value, error) {
	if v.IsNull() {
		return cty.NilVal, fmt.Errorf("%s is null; give a value", where)
	}
	if !v.IsWhollyKnown() {
		return v, nil // known at apply time; checked then
	}
	cv, err := convert.Convert(v, a.Type)
	if err != nil {
		return cty.NilVal, fmt.Errorf("%s: %s must be %s: %s", where, a.Name, typeName(a.Type), err)
	}
	switch {
	case cv.Type() == cty.String && len(a.Enum) > 0:
		s := cv.AsString()
		ok := false
		for _, e := range a.Enum {
			ok = ok || s == e
		}
		if !ok {
			return cty.NilVal, fmt.Errorf("%s: %q is not one of %s", where, s, strings.Join(quoted(a.Enum), ", "))
		}
	case cv.Type() == cty.Number:
		f, _ := cv.AsBigFloat().Float64()
		if a.Min != nil && f < *a.Min {
			return cty.NilVal, fmt.Errorf("%s: %s must be at least %g; got %g", where, a.Name, *a.Min, f)
		}
		if a.Max != nil && f > *a.Max {
			return cty.NilVal, fmt.Errorf("%s: %s must be at most %g; got %g", where, a.Name, *a.Max, f)
		}
		if integerArgs[a.Name] && !cv.AsBigFloat().IsInt() {
			return cty.NilVal, fmt.Errorf("%s: %s must be a whole number; got %g", where, a.Name, f)
		}
		if a.Name == "learning_rate" && f <= 0 {
			return cty.NilVal, fmt.Errorf("%s: learning_rate must be positive; got %g", where, f)
		}
	}
	if a.Duration && cv.Type() == cty.String {
		if d, err := time.ParseDuration(cv.AsString()); err != nil || d <= 0 {
			return cty.NilVal, fmt.Errorf("%s: %q is not a positive duration such as \"90s\" or \"10m\"", where, cv.AsString())
		}
	}
	if a.Check != nil {
		if err := a.Check(cv); err != nil {
			return cty.NilVal, fmt.Errorf("%s: %w", where, err)
		}
	}
	return cv, nil
}

// gridDims reads a grid value: the searched arguments in sorted order, each with
// its checked values.
func gridDims(grid cty.Value) ([]dim, error) {
	if grid.IsNull() {
		return nil, nil
	}
	t := grid.Type()
	if !t.IsObjectType() && !t.IsMapType() {
		return nil, fmt.Errorf("grid must be an object of lists, such as { learning_rate = [0.01, 0.1] }")
	}
	var dims []dim
	for it := grid.ElementIterator(); it.Next(); {
		k, l := it.Element()
		name := k.AsString()
		a, err := trainAttr("grid", name)
		if err != nil {
			return nil, err
		}
		if !l.IsKnown() {
			dims = append(dims, dim{name: name, attr: a})
			continue
		}
		lt := l.Type()
		if l.IsNull() || !lt.IsListType() && !lt.IsTupleType() && !lt.IsSetType() {
			return nil, fmt.Errorf("grid.%s must be a list of values, such as [0.01, 0.1]", name)
		}
		if l.LengthInt() == 0 {
			return nil, fmt.Errorf("grid.%s is empty: give at least one value", name)
		}
		d := dim{name: name, attr: a}
		i := 0
		for it := l.ElementIterator(); it.Next(); i++ {
			_, e := it.Element()
			cv, err := checkValue(fmt.Sprintf("grid.%s[%d]", name, i), a, e)
			if err != nil {
				return nil, err
			}
			d.values = append(d.values, cv)
		}
		dims = append(dims, d)
	}
	sort.Slice(dims, func(i, j int) bool { return dims[i].name < dims[j].name })
	return dims, nil
}

// dim is one searched argument of a grid.
type dim struct {
	name   string
	attr   *operators.Attr
	values []cty.Value
}

// product returns the Cartesian product of dims, the last dimension varying
// fastest. An empty dims gives one empty combination.
func product(dims []dim) []map[string]cty.Value {
	out := []map[string]cty.Value{{}}
	for _, d := range dims {
		var next []map[string]cty.Value
		for _, p := range out {
			for _, v := range d.values {
				q := make(map[string]cty.Value, len(p)+1)
				for k, x := range p {
					q[k] = x
				}
				q[d.name] = v
				next = append(next, q)
			}
		}
		out = next
	}
	return out
}

// distribution is one dimension of a random search.
type distribution struct {
	name   string
	attr   *operators.Attr
	kind   string // loguniform | uniform | choice
	lo, hi float64
	values []cty.Value // choice
}

// randomDims reads a random block's params: distributions from loguniform(a, b),
// uniform(a, b) and choice([...]) (a plain list is short for choice).
func randomDims(params cty.Value) ([]distribution, error) {
	if params.IsNull() {
		return nil, fmt.Errorf("random.params is required: { learning_rate = loguniform(1e-4, 1), … }")
	}
	t := params.Type()
	if !t.IsObjectType() && !t.IsMapType() {
		return nil, fmt.Errorf("random.params must be an object, such as { learning_rate = loguniform(1e-4, 1) }")
	}
	var out []distribution
	for it := params.ElementIterator(); it.Next(); {
		k, v := it.Element()
		name := k.AsString()
		where := "random.params." + name
		a, err := trainAttr("random.params", name)
		if err != nil {
			return nil, err
		}
		d := distribution{name: name, attr: a}
		if !v.IsWhollyKnown() {
			out = append(out, d)
			continue
		}
		vt := v.Type()
		switch {
		case v.IsNull():
			return nil, fmt.Errorf("%s is null; give loguniform(a, b), uniform(a, b) or choice([...])", where)
		case vt.IsListType() || vt.IsTupleType() || vt.IsSetType():
			d.kind = "choice"
			if v.LengthInt() == 0 {
				return nil, fmt.Errorf("%s is an empty list", where)
			}
			if err := d.choices(where, v); err != nil {
				return nil, err
			}
		case vt.IsObjectType() && vt.HasAttribute("distribution"):
			d.kind = v.GetAttr("distribution").AsString()
			switch d.kind {
			case "choice":
				if err := d.choices(where, v.GetAttr("values")); err != nil {
					return nil, err
				}
			case "loguniform", "uniform":
				if a.Type != cty.Number {
					return nil, fmt.Errorf("%s: %s(…) samples numbers, but %s is %s: use choice([...])", where, d.kind, name, typeName(a.Type))
				}
				d.lo, _ = v.GetAttr("low").AsBigFloat().Float64()
				d.hi, _ = v.GetAttr("high").AsBigFloat().Float64()
				lo, hi := d.lo, d.hi
				if integerArgs[name] {
					lo, hi = math.Ceil(lo), math.Floor(hi)
					if hi < lo {
						return nil, fmt.Errorf("%s: %s takes whole numbers, and there is none in [%g, %g]", where, name, d.lo, d.hi)
					}
				}
				for _, b := range []float64{lo, hi} {
					if _, err := checkValue(where, a, cty.NumberFloatVal(b)); err != nil {
						return nil, err
					}
				}
			default:
				return nil, fmt.Errorf("%s: unknown distribution %q", where, d.kind)
			}
		default:
			return nil, fmt.Errorf("%s must be loguniform(a, b), uniform(a, b) or choice([...]), not a single value (a fixed value belongs in the base train stage)", where)
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func (d *distribution) choices(where string, l cty.Value) error {
	i := 0
	for it := l.ElementIterator(); it.Next(); i++ {
		_, e := it.Element()
		cv, err := checkValue(fmt.Sprintf("%s[%d]", where, i), d.attr, e)
		if err != nil {
			return err
		}
		d.values = append(d.values, cv)
	}
	if len(d.values) == 0 {
		return fmt.Errorf("%s: choice needs at least one value", where)
	}
	return nil
}

// sample draws n parameter sets from dists with a generator seeded by seed: the
// same seed and space always give the same samples. Numbers are rounded to six
// significant digits (whole numbers for integer arguments), so trials display and
// identify cleanly.
func sample(dists []distribution, n int, seed int64) []map[string]cty.Value {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed_9a1d_5ea2c4))
	out := make([]map[string]cty.Value, n)
	for i := range out {
		p := make(map[string]cty.Value, len(dists))
		for _, d := range dists { // sorted by name: a stable draw order
			var x float64
			switch d.kind {
			case "choice":
				p[d.name] = d.values[rng.IntN(len(d.values))]
				continue
			case "loguniform":
				x = math.Exp(math.Log(d.lo) + rng.Float64()*(math.Log(d.hi)-math.Log(d.lo)))
			case "uniform":
				x = d.lo + rng.Float64()*(d.hi-d.lo)
			}
			if integerArgs[d.name] {
				x = math.Min(math.Max(math.Round(x), math.Ceil(d.lo)), math.Floor(d.hi))
				p[d.name] = cty.NumberIntVal(int64(x))
				continue
			}
			p[d.name] = cty.MustParseNumberVal(strconv.FormatFloat(x, 'g', 6, 64))
		}
		out[i] = p
	}
	return out
}

// paramsJSON renders parameters as a compact JSON object, keys sorted.
func paramsJSON(params cty.Value) string {
	b, err := ctyjson.Marshal(params, params.Type())
	if err != nil {
		return "{}"
	}
	return string(b)
}

// paramsText renders parameters briefly for tables: learning_rate=0.1 minibatch=20.
func paramsText(params cty.Value) string {
	var parts []string
	for it := params.ElementIterator(); it.Next(); {
		k, v := it.Element()
		parts = append(parts, k.AsString()+"="+valueText(v))
	}
	return strings.Join(parts, " ")
}

func valueText(v cty.Value) string {
	switch {
	case v.IsNull() || !v.IsKnown():
		return ""
	case v.Type() == cty.String:
		return v.AsString()
	case v.Type() == cty.Number:
		return numberText(v.AsBigFloat())
	}
	return string(ctyJSON(v))
}

func numberText(f *big.Float) string {
	if f.IsInt() {
		i, _ := f.Int(nil)
		return i.String()
	}
	x, _ := f.Float64()
	return strconv.FormatFloat(x, 'g', -1, 64)
}

func typeName(t cty.Type) string {
	switch t {
	case cty.String:
		return "a string"
	case cty.Number:
		return "a number"
	case cty.Bool:
		return "true or false"
	}
	return t.FriendlyName()
}

func quoted(ss []string) []string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return q
}

// closest returns the candidate nearest to s by edit distance, if it is close.
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// ctyJSON is v as JSON, for values a table shows whole.
func ctyJSON(v cty.Value) []byte {
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		return []byte(v.GoString())
	}
	return b
}
