package dsl

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// buildNodes creates a node for every variable, local, stage and output of m and its
// children, depth first in declaration order.
func (c *Config) buildNodes(m *Module) hcl.Diagnostics {
	var diags hcl.Diagnostics
	add := func(n *Node) {
		c.Nodes[n.Addr] = n
		c.Order = append(c.Order, n.Addr)
	}
	type item struct {
		r hcl.Range
		n *Node
	}
	var items []item
	for _, v := range m.Variables {
		n := &Node{Addr: varAddr(m.Path, v.Name), Kind: KindVariable, Name: v.Name, Module: m, Scope: m, DeclRange: v.DeclRange, Variable: v}
		items = append(items, item{v.DeclRange, n})
	}
	for _, l := range m.Locals {
		items = append(items, item{l.DeclRange, &Node{Addr: localAddr(m.Path, l.Name), Kind: KindLocal, Name: l.Name, Module: m, Scope: m, DeclRange: l.DeclRange, Local: l}})
	}
	for _, s := range m.Stages {
		items = append(items, item{s.DeclRange, &Node{Addr: stageAddr(m.Path, s.Schema.Name, s.Name), Kind: KindStage, Name: s.Name, Module: m, Scope: m, DeclRange: s.DeclRange, Stage: s}})
	}
	for _, o := range m.Outputs {
		items = append(items, item{o.DeclRange, &Node{Addr: outputAddr(m.Path, o.Name), Kind: KindOutput, Name: o.Name, Module: m, Scope: m, DeclRange: o.DeclRange, Output: o}})
	}
	sort.Slice(items, func(i, j int) bool { return rangeLess(items[i].r, items[j].r) })
	for _, it := range items {
		add(it.n)
	}
	calls := make([]string, 0, len(m.Calls))
	for n := range m.Calls {
		calls = append(calls, n)
	}
	sort.Strings(calls)
	for _, name := range calls {
		call := m.Calls[name]
		if call.Child == nil {
			continue
		}
		diags = append(diags, c.buildNodes(call.Child)...)
		diags = append(diags, bindInputs(c, m, call)...)
	}
	return diags
}

// bindInputs points each of a called module's variables at the call's argument that
// sets it, evaluated in the caller's scope, and reports missing and unknown inputs.
func bindInputs(c *Config, m *Module, call *ModuleCall) hcl.Diagnostics {
	var diags hcl.Diagnostics
	child := call.Child
	for _, a := range sortedAttrs(call.Inputs) {
		v, ok := child.Variables[a.Name]
		if !ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unsupported argument",
				Detail:   fmt.Sprintf("Module %q (%s) has no variable named %q.%s", call.Name, child.Dir, a.Name, suggest(a.Name, keys(child.Variables))),
				Subject:  a.NameRange.Ptr(),
			})
			continue
		}
		n := c.Nodes[varAddr(child.Path, v.Name)]
		n.Input = a
		n.Scope = m
	}
	names := keys(child.Variables)
	for _, name := range names {
		v := child.Variables[name]
		if _, set := call.Inputs[name]; !set && v.Default == cty.NilVal {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing required argument",
				Detail:   fmt.Sprintf("Module %q requires the input %q (declared at %s), which has no default. Add %s = … to the module block.", call.Name, name, v.DeclRange, name),
				Subject:  call.DeclRange.Ptr(),
			})
		}
	}
	return diags
}

// resolveAll finds every node's references.
func (c *Config) resolveAll() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, addr := range c.Order {
		n := c.Nodes[addr]
		for _, tr := range n.traversals() {
			refs, ds := c.resolve(n.Scope, tr)
			diags = append(diags, ds...)
			n.Refs = append(n.Refs, refs...)
			if ds.HasErrors() || failedModule(n.Scope, tr) {
				n.broken = append(n.broken, tr.SourceRange())
			}
		}
		if n.Kind == KindStage {
			for _, tr := range n.Stage.DependsOn {
				refs, ds := c.resolveDependsOn(n.Scope, tr)
				diags = append(diags, ds...)
				n.Refs = append(n.Refs, refs...)
			}
		}
		if n.Kind == KindOutput {
			for _, tr := range n.Output.DependsOn {
				refs, ds := c.resolveDependsOn(n.Scope, tr)
				diags = append(diags, ds...)
				n.Refs = append(n.Refs, refs...)
			}
		}
		if n.Kind == KindStage {
			diags = append(diags, c.checkStageRefs(n)...)
		}
	}
	return diags
}

// failedModule reports whether tr reads a module whose loading failed (and was
// reported); such a reference resolves to nothing and must not be evaluated, or
// it would be reported again as a missing attribute.
func failedModule(m *Module, tr hcl.Traversal) bool {
	if tr.RootName() != "module" || len(tr) < 2 {
		return false
	}
	call, ok := m.Calls[traverseName(tr[1])]
	return ok && call.Child == nil
}

// isBroken reports whether expression x holds a reference that failed to resolve;
// such an expression is not evaluated, so its problem is reported once.
func (n *Node) isBroken(x hcl.Expression) bool {
	r := x.Range()
	for _, b := range n.broken {
		if b.Filename == r.Filename && b.Start.Byte >= r.Start.Byte && b.End.Byte <= r.End.Byte {
			return true
		}
	}
	return false
}

// traversals returns the variables of every expression of the node, in its scope.
func (n *Node) traversals() []hcl.Traversal {
	var out []hcl.Traversal
	switch n.Kind {
	case KindVariable:
		if n.Input != nil {
			out = append(out, n.Input.Expr.Variables()...)
		}
	case KindLocal:
		out = append(out, n.Local.Expr.Variables()...)
	case KindOutput:
		out = append(out, n.Output.Expr.Variables()...)
	case KindStage:
		st := n.Stage
		for _, a := range sortedAttrs(st.Attrs) {
			out = append(out, a.Expr.Variables()...)
		}
		for _, name := range sortedBlockNames(st.Blocks) {
			attrs, _ := st.Blocks[name].Body.JustAttributes()
			for _, a := range sortedAttrs(attrs) {
				out = append(out, a.Expr.Variables()...)
			}
		}
		if st.Retries != nil {
			out = append(out, st.Retries.Variables()...)
		}
		if st.TaskTimeout != nil {
			out = append(out, st.TaskTimeout.Variables()...)
		}
	}
	return out
}

func sortedBlockNames(m map[string]*hcl.Block) []string {
	return keys(m)
}

// Root names every expression may use besides operator names.
var builtinRoots = []string{"var", "local", "module", "path", stratusRoot}

// resolve maps one traversal, written in module m, to the nodes it reads.
func (c *Config) resolve(m *Module, tr hcl.Traversal) ([]Reference, hcl.Diagnostics) {
	root := tr.RootName()
	rng := tr.SourceRange()
	needName := func(kind, example string) hcl.Diagnostics {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid reference",
			Detail:   fmt.Sprintf("A reference to %s must be followed by a name, such as %s.", kind, example),
			Subject:  rng.Ptr(),
		}}
	}
	name := ""
	if len(tr) > 1 {
		name = traverseName(tr[1])
	}
	switch root {
	case "var":
		if name == "" {
			return nil, needName("an input variable", "var.learning_rate")
		}
		if _, ok := m.Variables[name]; !ok {
			return nil, undeclared("input variable", "var."+name, m, rng, keys(m.Variables),
				fmt.Sprintf("Declare it with a variable %q block.", name))
		}
		return []Reference{{Target: varAddr(m.Path, name), Range: rng}}, nil
	case "local":
		if name == "" {
			return nil, needName("a local value", "local.prefix")
		}
		if _, ok := m.Locals[name]; !ok {
			return nil, undeclared("local value", "local."+name, m, rng, keys(m.Locals),
				fmt.Sprintf("Declare it in a locals block: locals { %s = … }.", name))
		}
		return []Reference{{Target: localAddr(m.Path, name), Range: rng}}, nil
	case "module":
		if name == "" {
			return nil, needName("a module", "module.prep.train")
		}
		call, ok := m.Calls[name]
		if !ok {
			return nil, undeclared("module", "module."+name, m, rng, keys(m.Calls),
				fmt.Sprintf("Declare it with a module %q block.", name))
		}
		if call.Child == nil {
			return nil, nil // its loading already failed and was reported
		}
		if len(tr) > 2 {
			out := traverseName(tr[2])
			if out == "" {
				return nil, needName("a module output", fmt.Sprintf("module.%s.train", name))
			}
			if _, ok := call.Child.Outputs[out]; !ok {
				return nil, hcl.Diagnostics{{
					Severity: hcl.DiagError,
					Summary:  "Reference to undeclared module output",
					Detail:   fmt.Sprintf("Module %q (%s) has no output named %q.%s", name, call.Child.Dir, out, suggest(out, keys(call.Child.Outputs))),
					Subject:  rng.Ptr(),
				}}
			}
			return []Reference{{Target: outputAddr(call.Child.Path, out), Range: rng}}, nil
		}
		var refs []Reference
		for _, out := range keys(call.Child.Outputs) {
			refs = append(refs, Reference{Target: outputAddr(call.Child.Path, out), Range: rng})
		}
		return refs, nil
	case stratusRoot:
		return nil, resolveStratus(tr)
	case "path":
		switch name {
		case "module", "root", "cwd":
			return nil, nil
		}
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid path reference",
			Detail:   "The path object has the attributes module, root and cwd.",
			Subject:  rng.Ptr(),
		}}
	}
	if c.registry.Schema(root) != nil {
		if name == "" {
			return nil, needName("a "+root+" stage", root+".NAME")
		}
		if _, ok := m.Stages[root+"."+name]; !ok {
			var names []string
			for k, s := range m.Stages {
				if s.Schema.Name == root {
					names = append(names, strings.TrimPrefix(k, root+"."))
				}
			}
			sort.Strings(names)
			return nil, undeclared(root+" stage", root+"."+name, m, rng, names,
				fmt.Sprintf("Declare it with a %s %q block.", root, name))
		}
		return []Reference{{Target: stageAddr(m.Path, root, name), Range: rng}}, nil
	}
	candidates := append(append([]string{}, builtinRoots...), c.registry.Names()...)
	return nil, hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Reference to unknown name",
		Detail: fmt.Sprintf("There is no %q here. A reference starts with var, local, module, path, stratus or an operator name (%s).%s",
			root, strings.Join(c.registry.Names(), ", "), suggest(root, candidates)),
		Subject: rng.Ptr(),
	}}
}

// resolveDependsOn resolves a depends_on entry, which must name a stage or a module.
func (c *Config) resolveDependsOn(m *Module, tr hcl.Traversal) ([]Reference, hcl.Diagnostics) {
	root := tr.RootName()
	if root != "module" && c.registry.Schema(root) == nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid depends_on entry",
			Detail:   "depends_on lists stages or modules, such as [load.adult, module.prep].",
			Subject:  tr.SourceRange().Ptr(),
		}}
	}
	if len(tr) > 2 {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid depends_on entry",
			Detail:   "depends_on names whole stages or modules, without attributes.",
			Subject:  tr.SourceRange().Ptr(),
		}}
	}
	return c.resolve(m, tr)
}

// checkStageRefs enforces Attr.Stage: the argument must be a plain reference to a
// stage of the named operator.
func (c *Config) checkStageRefs(n *Node) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, a := range n.Stage.Schema.Attrs {
		if a.Stage == "" {
			continue
		}
		attr, ok := n.Stage.Attrs[a.Name]
		if !ok {
			continue
		}
		tr, ds := hcl.AbsTraversalForExpr(attr.Expr)
		if ds.HasErrors() || len(tr) != 2 || tr.RootName() != a.Stage {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid stage reference",
				Detail:   fmt.Sprintf("%s must name a %s stage, such as %s = %s.NAME.", a.Name, a.Stage, a.Name, a.Stage),
				Subject:  attr.Expr.Range().Ptr(),
			})
		}
	}
	return diags
}

// StageRef returns the address of the stage named by a Stage-kind argument of the
// stage node n, or "" when the argument is absent.
func (n *Node) StageRef(attr string) string {
	a, ok := n.Stage.Attrs[attr]
	if !ok {
		return ""
	}
	tr, ds := hcl.AbsTraversalForExpr(a.Expr)
	if ds.HasErrors() || len(tr) != 2 {
		return ""
	}
	return stageAddr(n.Scope.Path, tr.RootName(), traverseName(tr[1]))
}

func undeclared(what, ref string, m *Module, rng hcl.Range, names []string, fix string) hcl.Diagnostics {
	where := "this pipeline"
	if len(m.Path) > 0 {
		where = "module " + m.Path.String()
	}
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Reference to undeclared " + what,
		Detail:   fmt.Sprintf("%s is not declared in %s.%s %s", ref, where, suggestRef(ref, names), fix),
		Subject:  rng.Ptr(),
	}}
}

// suggestRef suggests the closest of names for the last part of ref, written as a
// whole reference ("normalize.adult", not "adult").
func suggestRef(ref string, names []string) string {
	prefix, last := "", ref
	if i := strings.LastIndexByte(ref, '.'); i >= 0 {
		prefix, last = ref[:i+1], ref[i+1:]
	}
	if s := nameSuggestion(last, names); s != "" {
		return fmt.Sprintf(" Did you mean %q?", prefix+s)
	}
	return ""
}

// suggest returns " Did you mean "x"?" for the closest name, or "".
func suggest(name string, candidates []string) string {
	if s := nameSuggestion(name, candidates); s != "" {
		return fmt.Sprintf(" Did you mean %q?", s)
	}
	return ""
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
