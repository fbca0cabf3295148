package dsl

import (
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
)

// Evaluation is bounded, so that validate and plan finish promptly and in bounded
// memory on any input. HCL has no loops beyond for-expressions and no recursion, but
// nested for-expressions, template repetition and a few functions (setproduct,
// format widths, replace, distinct) multiply sizes: three nested
// `[for a in range(1000) : …]` are a billion iterations in 90 bytes of source.
//
// Every for-expression's collection, every element it produces, every non-literal
// piece of a template and every function's arguments and result are charged to a
// work budget, in units of one element or 16 bytes of text. A request to the
// Evaluator (one Value, StageConfig or EvalAll call), or one constant expression,
// may spend maxWork units; the charge is made before the expensive step where it
// can be computed beforehand (setproduct, format, replace, distinct), else right
// after the step, which is then itself bounded by the budget already charged.
const (
	// maxWork is a fraction of a second of evaluation on one core.
	maxWork = 1 << 19
	// maxValueSize bounds any one value a pipeline computes (16 MiB of text, or a
	// million elements).
	maxValueSize = 1 << 20
	// maxFormatWidth bounds the width and precision of a format() verb.
	maxFormatWidth = 4096
)

// Names of the internal functions the loader wraps expressions in. "::" keeps them
// apart from every function a user can mean.
const (
	iterateFunc = "stratus::iterate" // a for-expression's collection
	chargeFunc  = "stratus::charge"  // an element a for-expression produces; a template piece
)

// errTooCostly is wrapped by every budget error.
var errTooCostly = errors.New("too costly")

// budget counts the work of one evaluation request.
type budget struct{ used int64 }

func (b *budget) reset() { b.used = 0 }

// spent reports whether the budget ran out: the expression that exhausted it has
// been reported, and evaluating more would only report each later one too.
func (b *budget) spent() bool { return b.used > maxWork }

// charge spends n units, failing once the budget is exhausted.
func (b *budget) charge(n int64) error {
	b.used += n
	if b.used > maxWork || n > maxWork {
		b.used = maxWork + 1
		return errSpent
	}
	return nil
}

var errSpent = fmt.Errorf("%w: evaluating it takes more than %d units of work (for-expression iterations, elements and 16-byte pieces of text), the limit for one evaluation", errTooCostly, maxWork)

// chargeValue spends v's size.
func (b *budget) chargeValue(v cty.Value) error {
	return b.charge(valueCost(v, maxWork-b.used+1))
}

// valueCost returns v's size in work units — one per element or primitive plus one
// per 16 bytes of text (a number counts the digits of its decimal form) — walking at
// most limit units, so a value whose elements share structure cannot make the walk
// itself unbounded.
func valueCost(v cty.Value, limit int64) int64 {
	var n int64
	var walk func(v cty.Value)
	walk = func(v cty.Value) {
		n++
		if n > limit {
			return
		}
		if v.IsMarked() {
			v, _ = v.Unmark()
		}
		if !v.IsKnown() || v.IsNull() {
			return
		}
		ty := v.Type()
		switch {
		case ty == cty.String:
			n += int64(len(v.AsString())) / 16
		case ty == cty.Number:
			n += numberDigits(v.AsBigFloat()) / 16
		case ty.IsListType() || ty.IsSetType() || ty.IsTupleType() || ty.IsMapType() || ty.IsObjectType():
			for it := v.ElementIterator(); it.Next() && n <= limit; {
				k, e := it.Element()
				if k.Type() == cty.String {
					n += int64(len(k.AsString())) / 16
				}
				walk(e)
			}
		}
	}
	walk(v)
	return n
}

// numberDigits estimates the length of f's decimal form, which converting it to a
// string produces: 10^600000000 is a short literal but a 600 MB string.
func numberDigits(f *big.Float) int64 {
	if f.IsInf() {
		return 3
	}
	exp := f.MantExp(nil)
	if exp < 0 {
		exp = -exp
	}
	return 1 + int64(exp)*30103/100000 + int64(f.Prec())*30103/100000
}

// checkValueSize reports a value too large to be a configuration value.
func checkValueSize(v cty.Value) error {
	if n := valueCost(v, maxValueSize); n > maxValueSize {
		return fmt.Errorf("%w: the value is larger than %d units (elements or 16-byte pieces of text), the limit for one value; large data belongs in a load stage, not in an expression", errTooCostly, maxValueSize)
	}
	return nil
}

// convertValue is convert.Convert for configuration values: it refuses a value too
// large to convert (a number's string form can be far larger than the number).
func convertValue(v cty.Value, ty cty.Type) (cty.Value, error) {
	if err := checkValueSize(v); err != nil {
		return cty.NilVal, err
	}
	return convert.Convert(v, ty)
}

// boundExprs wraps, in place, every for-expression's collection and produced
// elements and every non-literal template piece in body in calls to the internal
// charging functions. Only native syntax has for-expressions and templates.
func boundExprs(body hcl.Body) {
	if b, ok := body.(*hclsyntax.Body); ok {
		hclsyntax.VisitAll(b, boundNode)
	}
}

// boundExpr is boundExprs for one expression.
func boundExpr(x hcl.Expression) {
	if n, ok := x.(hclsyntax.Node); ok {
		hclsyntax.VisitAll(n, boundNode)
	}
}

func boundNode(n hclsyntax.Node) hcl.Diagnostics {
	switch n := n.(type) {
	case *hclsyntax.ForExpr:
		n.CollExpr = wrapCall(iterateFunc, n.CollExpr)
		n.ValExpr = wrapCall(chargeFunc, n.ValExpr)
		if n.KeyExpr != nil {
			n.KeyExpr = wrapCall(chargeFunc, n.KeyExpr)
		}
	case *hclsyntax.TemplateExpr:
		if len(n.Parts) > 1 {
			for i, p := range n.Parts {
				// Literal text is bounded by the source; a literal number is not:
				// "${1e600000000}" is 600 MB of digits.
				if l, lit := p.(*hclsyntax.LiteralValueExpr); !lit || l.Val.Type() != cty.String {
					n.Parts[i] = wrapCall(chargeFunc, p)
				}
			}
		}
	}
	return nil
}

func wrapCall(name string, x hclsyntax.Expression) hclsyntax.Expression {
	if c, ok := x.(*hclsyntax.FunctionCallExpr); ok && c.Name == name {
		return x // already wrapped: a file is bounded once however often it is loaded
	}
	r := x.Range()
	return &hclsyntax.FunctionCallExpr{
		Name: name, Args: []hclsyntax.Expression{x},
		NameRange: r, OpenParenRange: r, CloseParenRange: r,
	}
}

// chargingFuncs are the internal functions, charging b.
func chargingFuncs(b *budget, into map[string]function.Function) {
	pass := func(charge func(v cty.Value) error) function.Function {
		return function.New(&function.Spec{
			Params: []function.Parameter{{
				Name: "value", Type: cty.DynamicPseudoType,
				AllowUnknown: true, AllowNull: true, AllowDynamicType: true, AllowMarked: true,
			}},
			Type: func(args []cty.Value) (cty.Type, error) { return args[0].Type(), nil },
			Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
				return args[0], charge(args[0])
			},
		})
	}
	into[iterateFunc] = pass(func(v cty.Value) error {
		if v.IsMarked() {
			v, _ = v.Unmark()
		}
		n := int64(1)
		if v.IsKnown() && !v.IsNull() && v.CanIterateElements() {
			n += int64(v.LengthInt())
		}
		return b.charge(n)
	})
	into[chargeFunc] = pass(b.chargeValue)
}

// boundFuncs wraps every function of fns so that its arguments and result are
// charged to b, with the functions whose work can outgrow both checked beforehand.
func boundFuncs(fns map[string]function.Function, b *budget) map[string]function.Function {
	out := make(map[string]function.Function, len(fns)+2)
	for name, f := range fns {
		out[name] = boundFunc(name, f, b)
	}
	chargingFuncs(b, out)
	return out
}

// uncharged are functions whose work does not grow with their arguments' size.
var uncharged = map[string]bool{"length": true, "element": true, "lookup": true, "try": true, "can": true}

func boundFunc(name string, f function.Function, b *budget) function.Function {
	pre := precheck[name]
	return function.New(&function.Spec{
		Description: f.Description(),
		Params:      f.Params(),
		VarParam:    f.VarParam(),
		Type:        f.ReturnTypeForValues,
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if !uncharged[name] {
				for _, a := range args {
					if err := b.chargeValue(a); err != nil {
						return cty.NilVal, err
					}
				}
			}
			if pre != nil {
				n, err := pre(args)
				if err == nil {
					err = b.charge(n)
				}
				if err != nil {
					return cty.NilVal, err
				}
			}
			v, err := f.Call(args)
			if err != nil {
				return v, err
			}
			// Charging the result also fails once the budget is spent, so try()
			// and can(), which turn errors into values, cannot hide the budget's
			// (the rest would evaluate to unknowns with nothing reported).
			return v, b.chargeValue(v)
		},
	})
}

// precheck estimates, before a call, the work of functions whose result or running
// time can be far larger than their arguments.
var precheck = map[string]func(args []cty.Value) (int64, error){
	"setproduct": func(args []cty.Value) (int64, error) {
		n := int64(1)
		for _, a := range args {
			l, ok := knownLen(a)
			if !ok {
				return 0, nil
			}
			n *= max(l, 1) // ≤ maxWork·maxWork after the check below: no overflow
			if n > maxWork {
				return 0, fmt.Errorf("%w: the product would have more than %d elements", errTooCostly, maxWork)
			}
		}
		return n, nil
	},
	"format":     formatCost,
	"formatlist": formatCost,
	"replace": func(args []cty.Value) (int64, error) {
		s, sub, repl, ok := knownStrings3(args)
		if !ok {
			return 0, nil
		}
		var count int
		if len(sub) > 1 && strings.HasPrefix(sub, "/") && strings.HasSuffix(sub, "/") {
			re, err := regexp.Compile(sub[1 : len(sub)-1])
			if err != nil {
				return 0, nil // the function reports it
			}
			count = len(re.FindAllStringIndex(s, -1))
		} else if sub == "" {
			count = len(s) + 1
		} else {
			count = strings.Count(s, sub)
		}
		return int64(count) * (int64(len(repl))/16 + 1), nil
	},
	"distinct": func(args []cty.Value) (int64, error) {
		// Each element is compared with every element kept so far.
		l, _ := knownLen(args[0])
		if l > maxWork {
			return 0, fmt.Errorf("%w: distinct of %d elements", errTooCostly, l)
		}
		return l * l / 16, nil
	},
}

// verbWidth finds the width and precision of format verbs such as %-10.3f.
var verbWidth = regexp.MustCompile(`%[-+ #0]*(\d*)(?:\.(\d*))?`)

// formatCost refuses a verb width or precision over maxFormatWidth (each would be
// padding or digits built before the result could be charged) and estimates the
// result: its width per verb, per element for formatlist.
func formatCost(args []cty.Value) (int64, error) {
	if len(args) == 0 || !args[0].IsKnown() || args[0].IsNull() || args[0].Type() != cty.String {
		return 0, nil
	}
	spec := args[0].AsString()
	total := int64(len(spec))
	for _, m := range verbWidth.FindAllStringSubmatch(spec, -1) {
		for _, d := range m[1:] {
			if d == "" {
				continue
			}
			w, err := strconv.Atoi(d)
			if err != nil || w > maxFormatWidth {
				return 0, fmt.Errorf("%w: a format width or precision of %s is over the limit of %d", errTooCostly, d, maxFormatWidth)
			}
			total += int64(w)
		}
	}
	rows := int64(1)
	for _, a := range args[1:] {
		if l, ok := knownLen(a); ok && l > rows {
			rows = l
		}
	}
	return rows * (total/16 + 1), nil
}

func knownLen(v cty.Value) (int64, bool) {
	if v.IsMarked() {
		v, _ = v.Unmark()
	}
	if !v.IsKnown() || v.IsNull() || !v.CanIterateElements() {
		return 0, false
	}
	return int64(v.LengthInt()), true
}

func knownStrings3(args []cty.Value) (a, b, c string, ok bool) {
	if len(args) != 3 {
		return
	}
	for _, v := range args {
		if v.IsMarked() || !v.IsKnown() || v.IsNull() || v.Type() != cty.String {
			return
		}
	}
	return args[0].AsString(), args[1].AsString(), args[2].AsString(), true
}

// tidyDiags rewrites, in place, the diagnostics of the internal charging functions
// and of budget errors so they read as what they are, and returns diags.
func tidyDiags(diags hcl.Diagnostics) hcl.Diagnostics {
	for _, d := range diags {
		extra, ok := d.Extra.(hclsyntax.FunctionCallDiagExtra)
		if !ok {
			continue
		}
		err := extra.FunctionCallError()
		if err == nil || !errors.Is(err, errTooCostly) {
			continue
		}
		d.Summary = "Expression too costly"
		// The values in scope can be huge; printing them is what this prevents.
		d.Expression, d.EvalContext = nil, nil
		what := "This expression"
		if fn := extra.CalledFunctionName(); fn != iterateFunc && fn != chargeFunc {
			what = fmt.Sprintf("This call to %s()", fn)
		}
		msg := errDetail(err)
		d.Detail = fmt.Sprintf("%s is too costly to evaluate: %s. Make nested for-expressions, range(), setproduct() or format widths smaller; large data belongs in a load stage.", what, msg)
	}
	return diags
}

// constValue evaluates an expression that may use no variables or functions (a
// variable's default, a -var-file value), bounded like every other expression.
func constValue(x hcl.Expression) (cty.Value, hcl.Diagnostics) {
	boundExpr(x)
	fns := map[string]function.Function{}
	chargingFuncs(&budget{}, fns)
	v, diags := x.Value(&hcl.EvalContext{Functions: fns})
	for _, d := range diags {
		if d.Summary == "Call to unknown function" {
			d.Summary, d.Detail = "Function calls not allowed", "Functions may not be called here."
		}
	}
	return v, tidyDiags(diags)
}

// errDetail is a budget error's message without its marker.
func errDetail(err error) string {
	return strings.TrimPrefix(err.Error(), errTooCostly.Error()+": ")
}
