package planner

import (
	"fmt"
	"sort"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"

	"github.com/stratus-ml/stratus/dsl"
)

// TargetWarning is the summary of the warning a targeted plan carries, as
// Terraform's "Resource targeting is in effect".
const TargetWarning = "Stage targeting is in effect"

// selection is the effect of -target and -replace on one Build.
type selection struct {
	// include is the set of stages to plan; nil means every stage.
	include map[string]bool
	replace map[string]bool
}

// newSelection resolves opts.Target and opts.Replace against cfg's stages. An
// address names a stage ("train.lr", "module.prep.load.raw") or a module call
// ("module.prep"), meaning every stage in it. An address that names neither is an
// error that suggests the closest stage address.
func newSelection(cfg *dsl.Config, g interface{ Ancestors(string) []string }, opts Options) (*selection, hcl.Diagnostics) {
	if len(opts.Target) == 0 && len(opts.Replace) == 0 {
		return &selection{}, nil
	}
	var diags hcl.Diagnostics
	var stages []string
	for _, n := range cfg.Stages() {
		stages = append(stages, n.Addr)
	}
	sort.Strings(stages)
	resolve := func(flag, addr string) []string {
		if n, ok := cfg.Nodes[addr]; ok && n.Kind == dsl.KindStage {
			return []string{addr}
		}
		var in []string
		if strings.HasPrefix(addr, "module.") {
			for _, s := range stages {
				if strings.HasPrefix(s, addr+".") {
					in = append(in, s)
				}
			}
		}
		if len(in) > 0 {
			return in
		}
		detail := fmt.Sprintf("-%s=%s: the pipeline has no stage or module %s.", flag, addr, addr)
		if s := closest(addr, stages); s != "" {
			detail += fmt.Sprintf(" Did you mean %s?", s)
		} else if len(stages) > 0 {
			detail += " Its stages are: " + strings.Join(stages, ", ") + "."
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid -%s address", flag),
			Detail:   detail + " Give a stage address as stratus plan lists it, such as train.lr.",
		})
		return nil
	}
	sel := &selection{replace: map[string]bool{}}
	for _, a := range opts.Replace {
		for _, s := range resolve("replace", a) {
			sel.replace[s] = true
		}
	}
	if len(opts.Target) > 0 {
		sel.include = map[string]bool{}
		for _, a := range opts.Target {
			for _, s := range resolve("target", a) {
				sel.include[s] = true
				for _, d := range g.Ancestors(s) {
					sel.include[d] = true
				}
			}
		}
	}
	if len(opts.Target) > 0 && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  TargetWarning,
			Detail: "You are creating a plan with the -target option, which means that the result of this plan may not represent all of the changes requested by the current configuration.\n\n" +
				"The -target option is not for routine use, and is provided only for exceptional situations such as recovering from errors or mistakes.",
		})
	}
	return sel, diags
}

// planned reports whether the stage at addr is in the plan.
func (s *selection) planned(addr string) bool { return s.include == nil || s.include[addr] }

// apply forces a -replace stage to run again: a cached stage reruns (or runs, if
// only its configuration's twin under another address ran), and the reason says
// why. Its key is unchanged, so downstream stages rerun only if their own keys
// changed.
func (s *selection) apply(sp *StagePlan) {
	if !s.replace[sp.Address] {
		return
	}
	switch {
	case sp.Action == Cached && sp.Prior != nil && sp.Prior.Address == sp.Address:
		sp.Action, sp.Reason = Rerun, "-replace"
	case sp.Action == Cached:
		sp.Action, sp.Reason, sp.Prior = Run, "-replace", nil
	case sp.Action == Rerun:
		sp.Reason += "; -replace"
	}
	sp.Replaced = true
}

// closest returns the candidate nearest to given, if any is within an edit
// distance of a third of its length (at least 3).
func closest(given string, candidates []string) string {
	best, bestDist := "", max(4, len(given)/3+1)
	for _, c := range candidates {
		if d := levenshtein.Distance(given, c, nil); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}
