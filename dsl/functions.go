package dsl

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// maxFileFunc bounds what file() reads into a configuration value.
const maxFileFunc = 4 << 20

// Functions returns the functions available to expressions of the module in dir: the
// go-cty standard library, type conversions, try and can, file() relative to dir,
// and the search-space constructors used by grid_search's random block. Their work is
// bounded (see budget.go), on a budget of their own.
func Functions(dir string) map[string]function.Function {
	return boundFuncs(stdFunctions(dir), &budget{})
}

func stdFunctions(dir string) map[string]function.Function {
	return map[string]function.Function{
		"abs":          stdlib.AbsoluteFunc,
		"ceil":         stdlib.CeilFunc,
		"floor":        stdlib.FloorFunc,
		"log":          stdlib.LogFunc,
		"pow":          stdlib.PowFunc,
		"max":          stdlib.MaxFunc,
		"min":          stdlib.MinFunc,
		"signum":       stdlib.SignumFunc,
		"parseint":     stdlib.ParseIntFunc,
		"concat":       stdlib.ConcatFunc,
		"length":       stdlib.LengthFunc,
		"range":        stdlib.RangeFunc,
		"setproduct":   stdlib.SetProductFunc,
		"format":       stdlib.FormatFunc,
		"formatlist":   stdlib.FormatListFunc,
		"join":         stdlib.JoinFunc,
		"split":        stdlib.SplitFunc,
		"lower":        stdlib.LowerFunc,
		"upper":        stdlib.UpperFunc,
		"title":        stdlib.TitleFunc,
		"trimspace":    stdlib.TrimSpaceFunc,
		"replace":      stdlib.ReplaceFunc,
		"substr":       stdlib.SubstrFunc,
		"jsonencode":   stdlib.JSONEncodeFunc,
		"jsondecode":   stdlib.JSONDecodeFunc,
		"merge":        stdlib.MergeFunc,
		"lookup":       stdlib.LookupFunc,
		"element":      stdlib.ElementFunc,
		"contains":     stdlib.ContainsFunc,
		"coalesce":     stdlib.CoalesceFunc,
		"coalescelist": stdlib.CoalesceListFunc,
		"keys":         stdlib.KeysFunc,
		"values":       stdlib.ValuesFunc,
		"flatten":      stdlib.FlattenFunc,
		"distinct":     stdlib.DistinctFunc,
		"reverse":      stdlib.ReverseListFunc,
		"slice":        stdlib.SliceFunc,
		"sort":         stdlib.SortFunc,
		"zipmap":       stdlib.ZipmapFunc,
		"index":        stdlib.IndexFunc,
		"compact":      stdlib.CompactFunc,
		"tostring":     stdlib.MakeToFunc(cty.String),
		"tonumber":     stdlib.MakeToFunc(cty.Number),
		"tobool":       stdlib.MakeToFunc(cty.Bool),
		"tolist":       stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"tomap":        stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		"toset":        stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"try":          tryfunc.TryFunc,
		"can":          tryfunc.CanFunc,
		"trimprefix":   stdlib.TrimPrefixFunc,
		"trimsuffix":   stdlib.TrimSuffixFunc,
		"regex":        stdlib.RegexFunc,
		"startswith":   stringPredicate(strings.HasPrefix),
		"endswith":     stringPredicate(strings.HasSuffix),
		"abspath":      pathFunc(func(p string) string { a, _ := filepath.Abs(p); return a }),
		"basename":     pathFunc(filepath.Base),
		"dirname":      pathFunc(filepath.Dir),
		"file":         fileFunc(dir),
		"loguniform":   distFunc("loguniform"),
		"uniform":      distFunc("uniform"),
		"choice":       choiceFunc,
	}
}

// stringPredicate wraps a func(s, affix) bool, such as strings.HasPrefix.
func stringPredicate(f func(string, string) bool) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "str", Type: cty.String}, {Name: "affix", Type: cty.String}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.BoolVal(f(args[0].AsString(), args[1].AsString())), nil
		},
	})
}

// pathFunc wraps a path transformation.
func pathFunc(f func(string) string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.StringVal(f(args[0].AsString())), nil
		},
	})
}

// fileFunc reads a UTF-8 text file relative to the module directory.
func fileFunc(dir string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := args[0].AsString()
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			st, err := os.Stat(p)
			if err != nil {
				return cty.NilVal, fmt.Errorf("cannot read %s: %w", p, underlyingErr(err))
			}
			if !st.Mode().IsRegular() {
				// A device or pipe (/dev/zero, /dev/stdin) would never end or block.
				return cty.NilVal, fmt.Errorf("%s is not a regular file", p)
			}
			if st.Size() > maxFileFunc {
				return cty.NilVal, fmt.Errorf("%s is %d bytes; file() reads at most %d — point a load stage at large data instead", p, st.Size(), maxFileFunc)
			}
			b, err := readAtMost(p, maxFileFunc)
			if err != nil {
				return cty.NilVal, err
			}
			if !utf8.Valid(b) {
				return cty.NilVal, fmt.Errorf("%s is not UTF-8 text", p)
			}
			return cty.StringVal(string(b)), nil
		},
	})
}

// readAtMost reads the file at p, failing if it holds more than limit bytes (it may
// have grown since it was checked).
func readAtMost(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", p, underlyingErr(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", p, underlyingErr(err))
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is over %d bytes; file() reads at most %d", p, limit, limit)
	}
	return b, nil
}

func underlyingErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// DistributionType is the value of loguniform(a, b), uniform(a, b) and choice(list):
// a description of a search dimension that grid_search samples from.
var DistributionType = cty.Object(map[string]cty.Type{
	"distribution": cty.String,
	"low":          cty.Number,
	"high":         cty.Number,
	"values":       cty.List(cty.DynamicPseudoType),
})

func distFunc(kind string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "low", Type: cty.Number}, {Name: "high", Type: cty.Number}},
		Type:   function.StaticReturnType(cty.DynamicPseudoType),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			lo, _ := args[0].AsBigFloat().Float64()
			hi, _ := args[1].AsBigFloat().Float64()
			if !(lo < hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
				return cty.NilVal, function.NewArgErrorf(1, "%s needs low < high, both finite; got %g and %g", kind, lo, hi)
			}
			if kind == "loguniform" && lo <= 0 {
				return cty.NilVal, function.NewArgErrorf(0, "loguniform needs low > 0; got %g", lo)
			}
			return cty.ObjectVal(map[string]cty.Value{
				"distribution": cty.StringVal(kind),
				"low":          args[0],
				"high":         args[1],
			}), nil
		},
	})
}

var choiceFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "values", Type: cty.DynamicPseudoType}},
	Type:   function.StaticReturnType(cty.DynamicPseudoType),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		v := args[0]
		t := v.Type()
		if !t.IsListType() && !t.IsTupleType() && !t.IsSetType() {
			return cty.NilVal, function.NewArgErrorf(0, "choice takes a list, such as choice([20, 100, 1000])")
		}
		if v.LengthInt() == 0 {
			return cty.NilVal, function.NewArgErrorf(0, "choice needs at least one value")
		}
		return cty.ObjectVal(map[string]cty.Value{
			"distribution": cty.StringVal("choice"),
			"values":       v,
		}), nil
	},
})
