package dsl

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Backend is the pipeline's `backend "TYPE" { … }` block. The dsl owns only its
// place in the language — one per pipeline, root module only, arguments that refer
// to input variables and nothing else; what the arguments mean belongs to the
// backend (executor/local, executor/lambda), which decodes Body through a
// BackendDecoder (see LoadOptions.Backends).
type Backend struct {
	Type      string
	TypeRange hcl.Range
	DeclRange hcl.Range
	Body      hcl.Body
	// Decoded is what LoadOptions.Backends returned for this block; nil when Load
	// had no decoder (or for the implicit local default, which has no block).
	Decoded any
	// Implicit is set when the pipeline declares no backend block and Type is
	// "local" by default.
	Implicit bool
}

// BackendDecoder decodes backend blocks for Load, so `validate` reports a bad
// backend argument with every other problem while the dsl stays ignorant of what
// backends exist. executor/runtime implements it.
type BackendDecoder interface {
	// DecodeBackend decodes the body of a backend block of type typ (reporting an
	// unknown type at typeRange) with ctx — input variables and functions — in scope.
	DecodeBackend(typ string, typeRange, declRange hcl.Range, body hcl.Body, ctx *hcl.EvalContext) (any, hcl.Diagnostics)
}

func newBackend(b *hcl.Block) *Backend {
	return &Backend{Type: b.Labels[0], TypeRange: b.LabelRanges[0], DeclRange: b.DefRange, Body: b.Body}
}

// decodeBackend checks the root backend block's references and hands it to dec, or
// sets the implicit local default when there is none.
func (c *Config) decodeBackend(dec BackendDecoder) hcl.Diagnostics {
	bk := c.Root.Backend
	if bk == nil {
		bk = &Backend{Type: "local", Implicit: true, Body: hcl.EmptyBody()}
	}
	c.Backend = bk
	ctx, diags := c.BackendContext()
	if diags.HasErrors() || dec == nil {
		return diags
	}
	var ds hcl.Diagnostics
	bk.Decoded, ds = dec.DecodeBackend(bk.Type, bk.TypeRange, bk.DeclRange, bk.Body, ctx)
	return append(diags, ds...)
}

// BackendContext is the evaluation context of the backend block's arguments — the
// root input variables and the functions — after checking that the block refers to
// nothing else: the backend is set up before any stage runs.
func (c *Config) BackendContext() (*hcl.EvalContext, hcl.Diagnostics) {
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(c.rootVarsOrEmpty())},
		Functions: Functions(c.Dir),
	}
	var diags hcl.Diagnostics
	if c.Backend == nil || c.Backend.Body == nil {
		return ctx, nil
	}
	for _, tr := range hclBodyVars(c.Backend.Body) {
		if tr.RootName() != "var" {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid reference in backend",
				Detail:   "Backend arguments may refer only to input variables (var.NAME): the backend is set up before any stage runs.",
				Subject:  tr.SourceRange().Ptr(),
			})
		}
	}
	return ctx, diags
}

func (c *Config) rootVarsOrEmpty() map[string]cty.Value {
	if c.rootVars == nil {
		return map[string]cty.Value{}
	}
	return c.rootVars
}

// AttrDiag is an error diagnostic about argument attr of body, pointing at the
// argument's value when the body has it and at fallback (the block) otherwise.
// Blocks whose meaning lives outside the dsl (backends) report with it.
func AttrDiag(body hcl.Body, fallback hcl.Range, attr, summary, detail string) *hcl.Diagnostic {
	subject := fallback.Ptr()
	if body != nil {
		if attrs, _ := body.JustAttributes(); attrs != nil {
			if a, ok := attrs[attr]; ok {
				subject = a.Expr.Range().Ptr()
			}
		}
	}
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: subject}
}

// AtLeast reports argument name = v of body when v is below min.
func AtLeast(body hcl.Body, fallback hcl.Range, name string, v, min int) hcl.Diagnostics {
	if v < min {
		return hcl.Diagnostics{AttrDiag(body, fallback, name, "Invalid "+name, fmt.Sprintf("%s must be at least %d; got %d.", name, min, v))}
	}
	return nil
}

// ParseDuration parses argument name = s of body into *dst when s is set,
// reporting a value that is not a positive Go duration.
func ParseDuration(body hcl.Body, fallback hcl.Range, name, s string, dst *time.Duration) hcl.Diagnostics {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return hcl.Diagnostics{AttrDiag(body, fallback, name, "Invalid duration",
			fmt.Sprintf("%s = %q is not a positive duration such as \"90s\" or \"14m\".", name, s))}
	}
	*dst = d
	return nil
}

// hclBodyVars returns the variables of every attribute of a body.
func hclBodyVars(b hcl.Body) []hcl.Traversal {
	attrs, _ := b.JustAttributes()
	var out []hcl.Traversal
	for _, a := range sortedAttrs(attrs) {
		out = append(out, a.Expr.Variables()...)
	}
	return out
}
