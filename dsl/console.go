package dsl

import (
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// EvalExpr parses src as one expression and evaluates it in the root module's
// scope, as an output's value would be: variables, locals, module outputs, stage
// outputs (those set with SetStageOutput; other stages are unknown), path,
// stratus and the functions. filename and start place src in diagnostics (a
// console's input line). It also returns, sorted, the addresses of the stages
// and root variables the expression reads, directly or through locals, variables
// and module outputs, so a caller can say why a value is unknown.
func (e *Evaluator) EvalExpr(filename string, start hcl.Pos, src []byte) (cty.Value, []string, hcl.Diagnostics) {
	expr, diags := hclsyntax.ParseExpression(src, filename, start)
	if diags.HasErrors() {
		return cty.DynamicVal, nil, diags
	}
	root := e.cfg.Root
	n := &Node{Addr: "console", Kind: KindOutput, Module: root, Scope: root, DeclRange: expr.Range()}
	for _, tr := range expr.Variables() {
		refs, ds := e.cfg.resolve(root, tr)
		diags = append(diags, ds...)
		n.Refs = append(n.Refs, refs...)
	}
	if diags.HasErrors() {
		return cty.DynamicVal, nil, diags
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ctx, ds := e.context(n)
	diags = append(diags, ds...)
	v, ds := expr.Value(ctx)
	diags = append(diags, ds...)
	return v, e.stagesRead(n), diags
}

// stagesRead returns the stages and root variables n reads, following other
// nodes.
func (e *Evaluator) stagesRead(n *Node) []string {
	seen := map[string]bool{}
	found := map[string]bool{}
	var walk func(refs []Reference)
	walk = func(refs []Reference) {
		for _, r := range refs {
			if seen[r.Target] {
				continue
			}
			seen[r.Target] = true
			t := e.cfg.Nodes[r.Target]
			switch {
			case t.Kind == KindStage:
				found[r.Target] = true
				continue
			case t.Kind == KindVariable && len(t.Module.Path) == 0:
				found[r.Target] = true
			}
			walk(t.Refs)
		}
	}
	walk(n.Refs)
	out := make([]string, 0, len(found))
	for a := range found {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}
