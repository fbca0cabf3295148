package dsl

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/operators"
)

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "type"}, {Name: "default"}, {Name: "description"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "validation"}},
}

var validationSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "condition", Required: true}, {Name: "error_message", Required: true}},
}

func decodeVariable(b *hcl.Block) (*Variable, hcl.Diagnostics) {
	content, diags := b.Body.Content(variableSchema)
	v := &Variable{Name: b.Labels[0], Type: cty.DynamicPseudoType, DeclRange: b.DefRange}
	if a, ok := content.Attributes["type"]; ok {
		ty, defaults, ds := typeexpr.TypeConstraintWithDefaults(a.Expr)
		diags = append(diags, ds...)
		if !ds.HasErrors() {
			v.Type, v.Defaults = ty, defaults
		}
	}
	if a, ok := content.Attributes["description"]; ok {
		diags = append(diags, decodeLiteralString(a, &v.Description)...)
	}
	if a, ok := content.Attributes["default"]; ok {
		val, ds := constValue(a.Expr)
		diags = append(diags, ds...)
		if !ds.HasErrors() {
			if v.Defaults != nil {
				val = v.Defaults.Apply(val)
			}
			cv, err := convertValue(val, v.Type)
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid default value for variable",
					Detail:   fmt.Sprintf("The default of variable %q does not fit its type %s: %s.", v.Name, typeexpr.TypeString(v.Type), err),
					Subject:  a.Expr.Range().Ptr(),
				})
				v.Default = cty.UnknownVal(v.Type) // reported; do not also call it missing
			} else {
				v.Default = cv
			}
		}
	}
	for _, vb := range content.Blocks {
		vc, ds := vb.Body.Content(validationSchema)
		diags = append(diags, ds...)
		if ds.HasErrors() {
			continue
		}
		val := &Validation{Condition: vc.Attributes["condition"].Expr, ErrorMessage: vc.Attributes["error_message"].Expr, DeclRange: vb.DefRange}
		badRef := false
		for _, tr := range val.Condition.Variables() {
			if tr.RootName() != "var" || len(tr) < 2 || traverseName(tr[1]) != v.Name {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid reference in variable validation",
					Detail:   fmt.Sprintf("A validation condition may refer only to the variable it validates, var.%s.", v.Name),
					Subject:  tr.SourceRange().Ptr(),
				})
				badRef = true
			}
		}
		if badRef {
			continue // reported; evaluating it would only report it again
		}
		v.Validations = append(v.Validations, val)
	}
	return v, diags
}

var outputSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "value", Required: true}, {Name: "description"}, {Name: "depends_on"}},
}

func decodeOutput(b *hcl.Block) (*Output, hcl.Diagnostics) {
	content, diags := b.Body.Content(outputSchema)
	o := &Output{Name: b.Labels[0], DeclRange: b.DefRange}
	if a, ok := content.Attributes["value"]; ok {
		o.Expr = a.Expr
	} else {
		return nil, diags
	}
	if a, ok := content.Attributes["description"]; ok {
		diags = append(diags, decodeLiteralString(a, &o.Description)...)
	}
	if a, ok := content.Attributes["depends_on"]; ok {
		trs, ds := decodeDependsOn(a)
		diags = append(diags, ds...)
		o.DependsOn = trs
	}
	return o, diags
}

var moduleCallSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "source", Required: true}, {Name: "depends_on"}},
}

func decodeModuleCall(b *hcl.Block) (*ModuleCall, hcl.Diagnostics) {
	content, remain, diags := b.Body.PartialContent(moduleCallSchema)
	c := &ModuleCall{Name: b.Labels[0], DeclRange: b.DefRange}
	a, ok := content.Attributes["source"]
	if !ok {
		return nil, diags
	}
	c.SourceRange = a.Expr.Range()
	diags = append(diags, decodeLiteralString(a, &c.Source)...)
	if diags.HasErrors() {
		return nil, diags
	}
	if a, ok := content.Attributes["depends_on"]; ok {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "depends_on is not supported on modules",
			Detail:   "Reference what the module needs through its inputs instead.",
			Subject:  a.NameRange.Ptr(),
		})
	}
	inputs, ds := remain.JustAttributes()
	diags = append(diags, ds...)
	c.Inputs = inputs
	return c, diags
}

// Meta-arguments accepted by every operator block.
var stageMeta = []hcl.AttributeSchema{{Name: "depends_on"}, {Name: "retries"}, {Name: "task_timeout"}, {Name: "budget"}, {Name: "deadline"}}

func stageSchema(s *operators.Schema) *hcl.BodySchema {
	bs := &hcl.BodySchema{}
	for _, a := range s.Attrs {
		bs.Attributes = append(bs.Attributes, hcl.AttributeSchema{Name: a.Name, Required: a.Required})
	}
	bs.Attributes = append(bs.Attributes, stageMeta...)
	for _, b := range s.Blocks {
		bs.Blocks = append(bs.Blocks, hcl.BlockHeaderSchema{Type: b.Name})
	}
	return bs
}

func blockSchema(b *operators.Block) *hcl.BodySchema {
	bs := &hcl.BodySchema{}
	for _, a := range b.Attrs {
		bs.Attributes = append(bs.Attributes, hcl.AttributeSchema{Name: a.Name, Required: a.Required})
	}
	return bs
}

func decodeStage(s *operators.Schema, b *hcl.Block) (*Stage, hcl.Diagnostics) {
	content, diags := b.Body.Content(stageSchema(s))
	st := &Stage{Schema: s, Name: b.Labels[0], Attrs: hcl.Attributes{}, Blocks: map[string]*hcl.Block{}, DeclRange: b.DefRange, Body: b.Body}
	for name, a := range content.Attributes {
		switch name {
		case "depends_on":
			trs, ds := decodeDependsOn(a)
			diags = append(diags, ds...)
			st.DependsOn = trs
		case "retries":
			st.Retries = a.Expr
		case "task_timeout":
			st.TaskTimeout = a.Expr
		case "budget":
			st.Budget = a.Expr
		case "deadline":
			st.Deadline = a.Expr
		default:
			st.Attrs[name] = a
		}
	}
	for _, nb := range content.Blocks {
		if prev, dup := st.Blocks[nb.Type]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Duplicate %s block", nb.Type),
				Detail:   fmt.Sprintf("A %s stage takes at most one %s block; another was declared at %s.", s.Name, nb.Type, prev.DefRange),
				Subject:  nb.DefRange.Ptr(),
			})
			continue
		}
		var bs *operators.Block
		for i := range s.Blocks {
			if s.Blocks[i].Name == nb.Type {
				bs = &s.Blocks[i]
			}
		}
		_, ds := nb.Body.Content(blockSchema(bs))
		diags = append(diags, ds...)
		st.Blocks[nb.Type] = nb
	}
	return st, diags
}

func decodeDependsOn(a *hcl.Attribute) ([]hcl.Traversal, hcl.Diagnostics) {
	exprs, diags := hcl.ExprList(a.Expr)
	var out []hcl.Traversal
	for _, e := range exprs {
		tr, ds := hcl.AbsTraversalForExpr(e)
		if ds.HasErrors() {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid depends_on entry",
				Detail:   "depends_on takes a list of stage references, such as [load.adult].",
				Subject:  e.Range().Ptr(),
			})
			continue
		}
		out = append(out, tr)
	}
	return out, diags
}

func decodeLiteralString(a *hcl.Attribute, dst *string) hcl.Diagnostics {
	v, diags := constValue(a.Expr)
	if diags.HasErrors() {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid %s", a.Name),
			Detail:   fmt.Sprintf("%s must be a literal string; it cannot refer to other values.", a.Name),
			Subject:  a.Expr.Range().Ptr(),
		}}
	}
	v, err := convertValue(v, cty.String)
	// An expression that failed to parse evaluates to an unknown value, already
	// reported with the syntax error.
	if err != nil || v.IsNull() || !v.IsKnown() {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid %s", a.Name),
			Detail:   fmt.Sprintf("%s must be a string.", a.Name),
			Subject:  a.Expr.Range().Ptr(),
		}}
	}
	*dst = v.AsString()
	return nil
}

// traverseName returns the attribute name of an attribute step, or "".
func traverseName(t hcl.Traverser) string {
	if a, ok := t.(hcl.TraverseAttr); ok {
		return a.Name
	}
	return ""
}
