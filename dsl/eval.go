package dsl

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/stratus-ml/stratus/operators"
)

// Evaluator evaluates a Config's nodes lazily, each after the nodes it references,
// memoising values. Stage outputs are supplied with SetStageOutput; a stage without
// one evaluates to an unknown value of its output type, which is how plan-time
// evaluation sees stages that have not run. It is safe for concurrent use.
//
// The caller must have rejected cycles (the planner does); the evaluator still
// reports one instead of recursing forever.
type Evaluator struct {
	cfg *Config

	mu         sync.Mutex
	values     map[string]cty.Value
	inProgress map[string]bool
	stageOut   map[string]cty.Value
	dependents map[string][]string
	funcs      map[string]map[string]function.Function // by module dir
	skip       map[string]bool
	// budget bounds the work of each request (see budget.go).
	budget budget
}

// Skip makes the nodes at addrs evaluate to unknown values without evaluating them —
// for nodes on a cycle, already reported, so the rest can still be checked.
func (e *Evaluator) Skip(addrs ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.skip == nil {
		e.skip = map[string]bool{}
	}
	for _, a := range addrs {
		e.skip[a] = true
	}
}

// NewEvaluator returns an evaluator with no stage outputs set.
func (c *Config) NewEvaluator() *Evaluator {
	e := &Evaluator{
		cfg:        c,
		values:     map[string]cty.Value{},
		inProgress: map[string]bool{},
		stageOut:   map[string]cty.Value{},
		dependents: map[string][]string{},
		funcs:      map[string]map[string]function.Function{},
	}
	for _, a := range c.Order {
		for _, t := range c.Nodes[a].DependsOn() {
			e.dependents[t] = append(e.dependents[t], a)
		}
	}
	return e
}

// SetStageOutput records a stage's output and forgets every memoised value that
// depends on it, so later evaluations see the real value.
func (e *Evaluator) SetStageOutput(addr string, v cty.Value) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stageOut[addr] = v
	e.invalidate(addr, map[string]bool{})
}

func (e *Evaluator) invalidate(addr string, seen map[string]bool) {
	for _, d := range e.dependents[addr] {
		if seen[d] {
			continue
		}
		seen[d] = true
		delete(e.values, d)
		e.invalidate(d, seen)
	}
}

// Value returns the value of the node at addr: a variable, local or output's value,
// or a stage's output.
func (e *Evaluator) Value(addr string) (cty.Value, hcl.Diagnostics) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.budget.reset()
	v, diags := e.value(addr)
	return v, tidyDiags(diags)
}

// EvalAll evaluates every node, including every stage's configuration, and returns
// all problems found, each once.
func (e *Evaluator) EvalAll() hcl.Diagnostics {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.budget.reset()
	var diags hcl.Diagnostics
	defer func() { tidyDiags(diags) }()
	for _, a := range e.cfg.Order {
		if e.skip[a] {
			continue
		}
		_, ds := e.value(a)
		diags = append(diags, ds...)
		if n := e.cfg.Nodes[a]; n.Kind == KindStage {
			_, ds := e.stageConfig(n)
			diags = append(diags, ds...)
			_, ds = e.stageMeta(n)
			diags = append(diags, ds...)
		}
	}
	return diags
}

// StageConfig evaluates a stage's configuration: an object with every argument and
// nested block of its schema, defaults applied, converted and validated.
func (e *Evaluator) StageConfig(addr string) (cty.Value, hcl.Diagnostics) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n, ok := e.cfg.Nodes[addr]
	if !ok || n.Kind != KindStage {
		return cty.NilVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "No such stage", Detail: fmt.Sprintf("There is no stage %s.", addr)}}
	}
	e.budget.reset()
	v, diags := e.stageConfig(n)
	return v, tidyDiags(diags)
}

// StageMeta are a stage's meta-arguments.
type StageMeta struct {
	Retries     int           // -1 when not set
	TaskTimeout time.Duration // 0 when not set
	// Budget (USD) and Deadline are the stage's own limits, 0 when not set;
	// StageLimits adds its modules' stratus blocks.
	Budget   float64
	Deadline time.Duration
}

// StageMeta evaluates a stage's retries and task_timeout.
func (e *Evaluator) StageMeta(addr string) (StageMeta, hcl.Diagnostics) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n, ok := e.cfg.Nodes[addr]
	if !ok || n.Kind != KindStage {
		return StageMeta{Retries: -1}, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "No such stage", Detail: fmt.Sprintf("There is no stage %s.", addr)}}
	}
	e.budget.reset()
	m, diags := e.stageMeta(n)
	return m, tidyDiags(diags)
}

// Outputs evaluates the root module's outputs.
func (e *Evaluator) Outputs() (map[string]cty.Value, hcl.Diagnostics) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.budget.reset()
	out := map[string]cty.Value{}
	var diags hcl.Diagnostics
	defer func() { tidyDiags(diags) }()
	for _, name := range e.cfg.RootOutputs() {
		v, ds := e.value(outputAddr(nil, name))
		diags = append(diags, ds...)
		out[name] = v
	}
	return out, diags
}

func (e *Evaluator) value(addr string) (cty.Value, hcl.Diagnostics) {
	if v, ok := e.values[addr]; ok {
		return v, nil
	}
	n, ok := e.cfg.Nodes[addr]
	if !ok || e.skip[addr] || e.budget.spent() {
		return cty.DynamicVal, nil // a spent budget has been reported; not memoised
	}
	if n.Kind == KindStage {
		if v, ok := e.stageOut[addr]; ok {
			return v, nil
		}
		return cty.UnknownVal(n.Stage.Schema.OutputType()), nil
	}
	if e.inProgress[addr] {
		return cty.DynamicVal, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cycle",
			Detail:   fmt.Sprintf("%s depends on itself.", addr),
			Subject:  n.DeclRange.Ptr(),
		}}
	}
	e.inProgress[addr] = true
	defer delete(e.inProgress, addr)

	var v cty.Value
	var diags hcl.Diagnostics
	switch n.Kind {
	case KindVariable:
		v, diags = e.variable(n)
	case KindLocal:
		v, diags = e.expr(n, n.Local.Expr)
	case KindOutput:
		v, diags = e.expr(n, n.Output.Expr)
	}
	if !diags.HasErrors() {
		if err := checkValueSize(v); err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Value too large", Detail: sentence(fmt.Sprintf("The value of %s is too large: %s", addr, errDetail(err))), Subject: n.DeclRange.Ptr()})
		}
	}
	if diags.HasErrors() {
		v = cty.DynamicVal
	}
	e.values[addr] = v
	return v, diags
}

func (e *Evaluator) variable(n *Node) (cty.Value, hcl.Diagnostics) {
	decl := n.Variable
	var v cty.Value
	var diags hcl.Diagnostics
	switch {
	case len(n.Module.Path) == 0:
		v = e.cfg.rootVars[decl.Name]
	case n.Input != nil:
		v, diags = e.expr(n, n.Input.Expr)
		if diags.HasErrors() {
			return cty.DynamicVal, diags
		}
		if decl.Defaults != nil {
			v = decl.Defaults.Apply(v)
		}
		cv, err := convertValue(v, decl.Type)
		if err != nil {
			return cty.DynamicVal, append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid value for module input",
				Detail:   fmt.Sprintf("Input %q of module %s must be %s: %s.", decl.Name, n.Module.Path, typeexpr.TypeString(decl.Type), err),
				Subject:  n.Input.Expr.Range().Ptr(),
			})
		}
		v = cv
	default:
		v = decl.Default
	}
	if v == cty.NilVal {
		v = cty.UnknownVal(decl.Type)
	}
	for _, val := range decl.Validations {
		diags = append(diags, e.validate(n, v, val)...)
	}
	return v, diags
}

func (e *Evaluator) validate(n *Node, v cty.Value, val *Validation) hcl.Diagnostics {
	if !v.IsWhollyKnown() {
		return nil
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{n.Name: v})},
		Functions: e.functions(n.Module.Dir),
	}
	cond, diags := val.Condition.Value(ctx)
	if diags.HasErrors() {
		return diags
	}
	cond, err := convert.Convert(cond, cty.Bool)
	if err != nil || cond.IsNull() {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid validation condition",
			Detail:   "The condition must be true or false.",
			Subject:  val.Condition.Range().Ptr(),
		}}
	}
	if !cond.IsKnown() || cond.True() {
		return nil
	}
	msg := "The value is not valid."
	if m, ds := val.ErrorMessage.Value(ctx); !ds.HasErrors() && m.Type() == cty.String && m.IsKnown() && !m.IsNull() {
		msg = m.AsString()
	}
	subject := n.DeclRange.Ptr()
	from := "the module call"
	if n.Input != nil {
		subject = n.Input.Expr.Range().Ptr()
	} else if len(n.Module.Path) == 0 {
		from = e.cfg.varSources[n.Name]
	}
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Invalid value for variable",
		Detail:   fmt.Sprintf("%s\n\nThe value of var.%s (from %s) failed the validation at %s.", msg, n.Name, from, val.DeclRange),
		Subject:  subject,
	}}
}

// expr evaluates an expression of node n in n's scope.
func (e *Evaluator) expr(n *Node, x hcl.Expression) (cty.Value, hcl.Diagnostics) {
	if n.isBroken(x) {
		return cty.DynamicVal, nil
	}
	// Problems of dependencies are passed up, reported where they arise; their
	// values are unknown here, which keeps this expression's checks going.
	ctx, diags := e.context(n)
	v, ds := x.Value(ctx)
	return v, append(diags, ds...)
}

// context builds the evaluation context of node n: only the values n references.
func (e *Evaluator) context(n *Node) (*hcl.EvalContext, hcl.Diagnostics) {
	m := n.Scope
	vars := map[string]cty.Value{}
	locals := map[string]cty.Value{}
	mods := map[string]map[string]cty.Value{}
	stages := map[string]map[string]cty.Value{}
	var diags hcl.Diagnostics
	for _, r := range n.Refs {
		t := e.cfg.Nodes[r.Target]
		v, ds := e.value(r.Target)
		diags = append(diags, ds...)
		switch {
		case t.Kind == KindVariable:
			vars[t.Name] = v
		case t.Kind == KindLocal:
			locals[t.Name] = v
		case t.Kind == KindStage:
			op := t.Stage.Schema.Name
			if stages[op] == nil {
				stages[op] = map[string]cty.Value{}
			}
			stages[op][t.Name] = v
		case t.Kind == KindOutput && t.Module != m:
			call := t.Module.Path[len(t.Module.Path)-1]
			if mods[call] == nil {
				mods[call] = map[string]cty.Value{}
			}
			mods[call][t.Name] = v
		}
	}
	root, _ := filepath.Abs(e.cfg.Dir)
	modDir, _ := filepath.Abs(m.Dir)
	cwd, _ := os.Getwd()
	variables := map[string]cty.Value{
		"var":   cty.ObjectVal(vars),
		"local": cty.ObjectVal(locals),
		"path": cty.ObjectVal(map[string]cty.Value{
			"module": cty.StringVal(modDir), "root": cty.StringVal(root), "cwd": cty.StringVal(cwd),
		}),
	}
	modVals := map[string]cty.Value{}
	for k, outs := range mods {
		modVals[k] = cty.ObjectVal(outs)
	}
	variables["module"] = cty.ObjectVal(modVals)
	variables[stratusRoot] = e.cfg.stratusValue()
	for op, byName := range stages {
		variables[op] = cty.ObjectVal(byName)
	}
	return &hcl.EvalContext{Variables: variables, Functions: e.functions(m.Dir)}, diags
}

func (e *Evaluator) functions(dir string) map[string]function.Function {
	f, ok := e.funcs[dir]
	if !ok {
		f = boundFuncs(stdFunctions(dir), &e.budget)
		e.funcs[dir] = f
	}
	return f
}

func (e *Evaluator) stageConfig(n *Node) (cty.Value, hcl.Diagnostics) {
	if e.budget.spent() {
		return cty.DynamicVal, nil // reported where it ran out
	}
	st := n.Stage
	s := st.Schema
	ctx, diags := e.context(n)
	obj := map[string]cty.Value{}
	ranges := map[string]hcl.Range{}
	for i := range s.Attrs {
		a := &s.Attrs[i]
		v, rng, ds := decodeAttr(ctx, a, n.usable(st.Attrs[a.Name]), st.DeclRange)
		diags = append(diags, ds...)
		obj[a.Name] = v
		ranges[a.Name] = rng
	}
	for i := range s.Blocks {
		b := &s.Blocks[i]
		ty := blockType(b)
		hb, ok := st.Blocks[b.Name]
		if !ok {
			obj[b.Name] = cty.NullVal(ty)
			continue
		}
		ranges[b.Name] = hb.DefRange
		attrs, _ := hb.Body.JustAttributes()
		inner := map[string]cty.Value{}
		for j := range b.Attrs {
			a := &b.Attrs[j]
			v, _, ds := decodeAttr(ctx, a, n.usable(attrs[a.Name]), hb.DefRange)
			diags = append(diags, ds...)
			inner[a.Name] = v
		}
		obj[b.Name] = cty.ObjectVal(inner)
	}
	cfg := cty.ObjectVal(obj)
	if diags.HasErrors() {
		return cfg, diags
	}
	if s.Check != nil {
		for _, p := range s.Check(cfg) {
			rng, ok := ranges[p.Attr]
			if !ok {
				rng = st.DeclRange
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: p.Summary, Detail: p.Detail, Subject: rng.Ptr()})
		}
	}
	return cfg, diags
}

// usable returns a for evaluation, or an attribute that evaluates to an unknown value
// when a holds a reference that failed to resolve.
func (n *Node) usable(a *hcl.Attribute) *hcl.Attribute {
	if a == nil || !n.isBroken(a.Expr) {
		return a
	}
	return &hcl.Attribute{Name: a.Name, Expr: hcl.StaticExpr(cty.DynamicVal, a.Expr.Range()), Range: a.Range, NameRange: a.NameRange}
}

// blockType is the object type of a nested block's value.
func blockType(b *operators.Block) cty.Type {
	m := map[string]cty.Type{}
	for _, a := range b.Attrs {
		m[a.Name] = a.Type
	}
	return cty.Object(m)
}

// decodeAttr evaluates, converts and validates one argument, applying its default
// when it is absent.
func decodeAttr(ctx *hcl.EvalContext, a *operators.Attr, ha *hcl.Attribute, block hcl.Range) (cty.Value, hcl.Range, hcl.Diagnostics) {
	if ha == nil {
		if a.Default != cty.NilVal {
			return a.Default, block, nil
		}
		return cty.NullVal(a.Type), block, nil
	}
	rng := ha.Expr.Range()
	v, diags := ha.Expr.Value(ctx)
	if diags.HasErrors() {
		return cty.UnknownVal(a.Type), rng, diags
	}
	if err := checkValueSize(v); err != nil {
		return cty.UnknownVal(a.Type), rng, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Value too large",
			Detail: sentence(fmt.Sprintf("The argument %q is too large: %s", a.Name, errDetail(err))), Subject: rng.Ptr()}}
	}
	if a.Auto && operators.IsAuto(v) {
		return operators.AutoValue, rng, nil
	}
	cv, err := convert.Convert(v, a.Type)
	if err != nil {
		want := typeName(a.Type)
		if a.Auto {
			want += ` or "auto"`
		}
		return cty.UnknownVal(a.Type), rng, hcl.Diagnostics{{
			Severity:    hcl.DiagError,
			Summary:     "Invalid value for argument",
			Detail:      fmt.Sprintf("The argument %q must be %s: %s.", a.Name, want, err),
			Subject:     rng.Ptr(),
			Expression:  ha.Expr,
			EvalContext: ctx,
		}}
	}
	if cv.IsNull() {
		if a.Required {
			return cv, rng, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Null value for required argument",
				Detail:   fmt.Sprintf("The argument %q is required; it cannot be null.", a.Name),
				Subject:  rng.Ptr(),
			}}
		}
		if a.Default != cty.NilVal {
			return a.Default, rng, nil
		}
		return cv, rng, nil
	}
	if err := checkAttr(a, cv); err != nil {
		return cv, rng, hcl.Diagnostics{{
			Severity:    hcl.DiagError,
			Summary:     fmt.Sprintf("Invalid value for %s", a.Name),
			Detail:      sentence(err.Error()),
			Subject:     rng.Ptr(),
			Expression:  ha.Expr,
			EvalContext: ctx,
		}}
	}
	return cv, rng, nil
}

// checkAttr applies an argument's declared constraints to a known value.
func checkAttr(a *operators.Attr, v cty.Value) error {
	if !v.IsKnown() {
		return nil
	}
	if len(a.Enum) > 0 && v.Type() == cty.String {
		s := v.AsString()
		for _, ok := range a.Enum {
			if s == ok {
				goto enumOK
			}
		}
		return fmt.Errorf("%q is not one of %s.%s", s, quoteList(a.Enum), suggest(s, a.Enum))
	}
enumOK:
	if v.Type() == cty.Number {
		f, _ := v.AsBigFloat().Float64()
		if a.Min != nil && f < *a.Min {
			return fmt.Errorf("%s must be at least %g; got %g.", a.Name, *a.Min, f)
		}
		if a.Max != nil && f > *a.Max {
			return fmt.Errorf("%s must be at most %g; got %g.", a.Name, *a.Max, f)
		}
		if a.Integer && !v.AsBigFloat().IsInt() {
			return fmt.Errorf("%s must be a whole number; got %s. Round it: fractions are not truncated", a.Name, v.AsBigFloat().Text('g', -1))
		}
	}
	if a.Duration && v.Type() == cty.String {
		if d, err := time.ParseDuration(v.AsString()); err != nil || d <= 0 {
			return fmt.Errorf("%q is not a positive duration such as \"90s\", \"10m\" or \"1h30m\".", v.AsString())
		}
	}
	if a.Path && v.Type() == cty.String && strings.TrimSpace(v.AsString()) == "" {
		return fmt.Errorf("%s must name a file, a glob or an s3:// URI; it is empty.", a.Name)
	}
	if a.Check != nil {
		if err := a.Check(v); err != nil {
			return err
		}
	}
	return nil
}

func (e *Evaluator) stageMeta(n *Node) (StageMeta, hcl.Diagnostics) {
	meta := StageMeta{Retries: -1}
	st := n.Stage
	if st.Retries == nil && st.TaskTimeout == nil && st.Budget == nil && st.Deadline == nil {
		return meta, nil
	}
	ctx, diags := e.context(n)
	if st.Budget != nil {
		v, ds := e.stageLimit(ctx, st.Budget, "budget", ParseBudget)
		diags, meta.Budget = append(diags, ds...), v
	}
	if st.Deadline != nil {
		v, ds := e.stageLimit(ctx, st.Deadline, "deadline", func(s string) (float64, error) {
			d, err := ParseDeadline(s)
			return float64(d), err
		})
		diags, meta.Deadline = append(diags, ds...), time.Duration(v)
	}
	if st.Retries != nil {
		v, ds := st.Retries.Value(ctx)
		diags = append(diags, ds...)
		if !ds.HasErrors() {
			var r int
			cv, err := convert.Convert(v, cty.Number)
			if err == nil && cv.IsKnown() && !cv.IsNull() {
				f, _ := cv.AsBigFloat().Float64()
				r = int(f)
				if float64(r) != f || r < 0 || r > 100 {
					err = fmt.Errorf("must be a whole number from 0 to 100")
				}
			} else if err == nil {
				err = fmt.Errorf("must be a known number")
			}
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid retries", Detail: "retries " + err.Error() + ".", Subject: st.Retries.Range().Ptr()})
			} else {
				meta.Retries = r
			}
		}
	}
	if st.TaskTimeout != nil {
		v, ds := st.TaskTimeout.Value(ctx)
		diags = append(diags, ds...)
		if !ds.HasErrors() {
			d, err := time.Duration(0), error(nil)
			if v.Type() != cty.String || !v.IsKnown() || v.IsNull() {
				err = fmt.Errorf("not a string")
			} else {
				d, err = time.ParseDuration(v.AsString())
			}
			if err != nil || d <= 0 {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid task_timeout",
					Detail: "task_timeout must be a positive duration such as \"5m\".", Subject: st.TaskTimeout.Range().Ptr()})
			} else {
				meta.TaskTimeout = d
			}
		}
	}
	return meta, diags
}

// sentence ends s with a full stop unless it already ends a sentence: operator
// checks return error strings, which by Go convention have none.
func sentence(s string) string {
	if s == "" || strings.HasSuffix(s, ".") || strings.HasSuffix(s, "?") || strings.HasSuffix(s, "!") {
		return s
	}
	return s + "."
}

func typeName(t cty.Type) string {
	switch {
	case t == cty.DynamicPseudoType:
		return "a value"
	case t == cty.String:
		return "a string"
	case t == cty.Number:
		return "a number"
	case t == cty.Bool:
		return "true or false"
	}
	return typeexpr.TypeString(t)
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	if len(q) > 1 {
		return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
	}
	return strings.Join(q, "")
}
