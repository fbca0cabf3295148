package dsl

import (
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// EnvVarPrefix prefixes environment variables that set root variables:
// STRATUS_VAR_learning_rate=0.05 sets var.learning_rate.
const EnvVarPrefix = "STRATUS_VAR_"

// setRootVars computes the root module's variable values. Precedence, lowest first:
// default, environment, -var-file files in order, -var arguments in order — as
// Terraform does.
func (c *Config) setRootVars(p *hclparse.Parser, opts LoadOptions) hcl.Diagnostics {
	var diags hcl.Diagnostics
	vars := c.Root.Variables
	raw := map[string]cty.Value{}
	src := map[string]string{}
	set := func(name string, v cty.Value, from string, rng *hcl.Range) {
		decl := vars[name]
		if decl.Defaults != nil {
			v = decl.Defaults.Apply(v)
		}
		cv, err := convertValue(v, decl.Type)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid value for variable",
				Detail:   fmt.Sprintf("The value of var.%s from %s does not fit its type %s: %s.", name, from, typeexpr.TypeString(decl.Type), err),
				Subject:  rng,
			})
			return
		}
		raw[name], src[name] = cv, from
	}
	for _, kv := range opts.Environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, EnvVarPrefix) {
			continue
		}
		name := strings.TrimPrefix(k, EnvVarPrefix)
		if _, declared := vars[name]; !declared {
			continue // the environment is shared; ignore what is not ours
		}
		val, ds := parseRawVar(p, name, v, vars[name].Type, "environment variable "+k)
		diags = append(diags, ds...)
		if !ds.HasErrors() {
			set(name, val, "environment variable "+k, nil)
		}
	}
	for _, fn := range opts.VarFiles {
		diags = append(diags, c.readVarFile(p, fn, set)...)
	}
	for _, kv := range opts.Vars {
		name, v, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid -var option",
				Detail:   fmt.Sprintf("The option -var %q is not of the form NAME=VALUE, such as -var learning_rate=0.05.", kv),
			})
			continue
		}
		if _, declared := vars[name]; !declared {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Value for undeclared variable",
				Detail:   fmt.Sprintf("-var sets %q, but the pipeline declares no such variable.%s Declare it with a variable %q block, or drop the option.", name, suggest(name, keys(vars)), name),
			})
			continue
		}
		val, ds := parseRawVar(p, name, v, vars[name].Type, "-var "+name)
		diags = append(diags, ds...)
		if !ds.HasErrors() {
			set(name, val, "-var "+name, nil)
		}
	}
	c.rootVars = map[string]cty.Value{}
	c.varSources = map[string]string{}
	for _, name := range keys(vars) {
		decl := vars[name]
		v, ok := raw[name]
		switch {
		case ok:
			c.varSources[name] = src[name]
		case decl.Default != cty.NilVal:
			v = decl.Default
			c.varSources[name] = "its default"
		case opts.AllowMissingVars:
			v = cty.UnknownVal(decl.Type)
		default:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "No value for required variable",
				Detail:   fmt.Sprintf("var.%s has no default. Set it with -var %s=VALUE, in a -var-file, or with the environment variable %s%s.", name, name, EnvVarPrefix, name),
				Subject:  decl.DeclRange.Ptr(),
			})
			v = cty.UnknownVal(decl.Type)
		}
		c.rootVars[name] = v
	}
	return diags
}

// readVarFile reads NAME = VALUE assignments from an HCL (or .json) file.
func (c *Config) readVarFile(p *hclparse.Parser, fn string, set func(string, cty.Value, string, *hcl.Range)) hcl.Diagnostics {
	src, err := os.ReadFile(fn)
	if err != nil {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read variables file",
			Detail:   fmt.Sprintf("-var-file %s: %s.", fn, underlying(err)),
		}}
	}
	var f *hcl.File
	var diags hcl.Diagnostics
	if strings.HasSuffix(fn, ".json") {
		f, diags = p.ParseJSON(src, fn)
	} else {
		f, diags = p.ParseHCL(src, fn)
	}
	if diags.HasErrors() {
		return diags
	}
	attrs, ds := f.Body.JustAttributes()
	diags = append(diags, ds...)
	for _, a := range sortedAttrs(attrs) {
		if _, declared := c.Root.Variables[a.Name]; !declared {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Value for undeclared variable",
				Detail:   fmt.Sprintf("%s sets %q, but the pipeline declares no such variable; the value is ignored.%s", fn, a.Name, suggest(a.Name, keys(c.Root.Variables))),
				Subject:  a.NameRange.Ptr(),
			})
			continue
		}
		v, ds := constValue(a.Expr)
		diags = append(diags, ds...)
		if !ds.HasErrors() {
			set(a.Name, v, fn, a.Expr.Range().Ptr())
		}
	}
	return diags
}

// parseRawVar interprets a value given on the command line or in the environment: a
// literal string for primitive (and unconstrained) types, which conversion then
// checks, or an HCL expression for collections and objects, as Terraform does.
func parseRawVar(p *hclparse.Parser, name, raw string, ty cty.Type, from string) (cty.Value, hcl.Diagnostics) {
	if ty.IsPrimitiveType() || ty == cty.DynamicPseudoType {
		return cty.StringVal(raw), nil
	}
	fn := fmt.Sprintf("<value for var.%s>", name)
	expr, diags := hclsyntax.ParseExpression([]byte(raw), fn, hcl.Pos{Line: 1, Column: 1})
	// Register the source so diagnostics can show a snippet of it.
	p.AddFile(fn, &hcl.File{Bytes: []byte(raw)})
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	v, ds := constValue(expr)
	if ds.HasErrors() {
		for _, d := range ds {
			d.Detail += fmt.Sprintf(" The value of var.%s from %s must be a constant.", name, from)
		}
	}
	return v, ds
}

// VarSource says where a root variable's value came from ("-var lr", "its default").
func (c *Config) VarSource(name string) string { return c.varSources[name] }

// RootVars returns the root module's variable values.
func (c *Config) RootVars() map[string]cty.Value { return c.rootVars }
