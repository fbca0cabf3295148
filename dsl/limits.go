package dsl

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Limits are a stage's budget and deadline: the meta-arguments
//
//	budget   = "$0.50"   # the most the stage may cost, in US dollars
//	deadline = "10m"     # the longest it may take
//
// on an operator block, or in a `stratus { … }` block for every stage of its
// module (and, in the root module's, of the whole pipeline). A stage's own value
// wins over its module's, a module's over its callers'. The planner sizes stages
// to keep to them and refuses a plan that cannot; apply stops a stage about to
// exceed them, keeping its best result so far.
type Limits struct {
	// Budget is in USD; 0 when not set.
	Budget float64
	// Deadline is 0 when not set.
	Deadline time.Duration
	// BudgetRange and DeadlineRange locate the values as written.
	BudgetRange, DeadlineRange hcl.Range
}

var budgetSyntax = regexp.MustCompile(`^\$\s*([0-9]+(\.[0-9]*)?|\.[0-9]+)$`)

// ParseBudget parses a budget in US dollars written with a leading $: "$0.50",
// "$3". It refuses a number without $ (whose currency is not said), negative and
// zero amounts, and anything else, with an error saying what to write.
func ParseBudget(s string) (float64, error) {
	t := strings.TrimSpace(s)
	switch {
	case t == "":
		return 0, fmt.Errorf("budget is empty; write an amount in US dollars such as \"$0.50\"")
	case strings.HasPrefix(t, "-") || strings.HasPrefix(t, "$-") || strings.HasPrefix(t, "$ -"):
		return 0, fmt.Errorf("budget %q is negative; a budget is the most a stage may cost, such as \"$0.50\"", s)
	case !strings.HasPrefix(t, "$"):
		if _, err := strconv.ParseFloat(t, 64); err == nil {
			return 0, fmt.Errorf("budget %q has no currency; write it in US dollars with a $, such as \"$%s\"", s, t)
		}
	}
	m := budgetSyntax.FindStringSubmatch(t)
	if m == nil {
		return 0, fmt.Errorf("budget %q is not an amount in US dollars; write one such as \"$0.50\"", s)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("budget %q is not an amount in US dollars; write one such as \"$0.50\"", s)
	}
	if v <= 0 {
		return 0, fmt.Errorf("budget %q is zero; nothing can run on it. Give a positive amount such as \"$0.50\", or remove budget", s)
	}
	return v, nil
}

// ParseDeadline parses a deadline as Go writes durations ("90s", "10m", "1h30m")
// and refuses anything else ("10 minutes") or a non-positive duration.
func ParseDeadline(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("deadline %q is not a duration; write one such as \"90s\", \"10m\" or \"1h30m\"", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("deadline %q is not positive; give the longest the stage may take, such as \"10m\"", s)
	}
	return d, nil
}

// limitsAttrs are the settings block's limit arguments (the stage block's are
// stageMeta's budget and deadline).
var limitsAttrs = []hcl.AttributeSchema{{Name: "budget"}, {Name: "deadline"}}

func init() {
	// The stratus block takes budget and deadline beside its other arguments.
	settingsSchema.Attributes = append(settingsSchema.Attributes, limitsAttrs...)
}

// decodeSettingsLimits reads a stratus block's budget and deadline, which must
// be literal strings.
func decodeSettingsLimits(content *hcl.BodyContent) (Limits, hcl.Diagnostics) {
	var l Limits
	var diags hcl.Diagnostics
	if a, ok := content.Attributes["budget"]; ok {
		var raw string
		if ds := decodeLiteralString(a, &raw); ds.HasErrors() {
			diags = append(diags, ds...)
		} else {
			l.Budget, l.BudgetRange = limitValue(&diags, a.Expr.Range(), "budget", raw, ParseBudget)
		}
	}
	if a, ok := content.Attributes["deadline"]; ok {
		var raw string
		if ds := decodeLiteralString(a, &raw); ds.HasErrors() {
			diags = append(diags, ds...)
		} else {
			d, rng := limitValue(&diags, a.Expr.Range(), "deadline", raw, func(s string) (float64, error) {
				d, err := ParseDeadline(s)
				return float64(d), err
			})
			l.Deadline, l.DeadlineRange = time.Duration(d), rng
		}
	}
	return l, diags
}

func limitValue(diags *hcl.Diagnostics, rng hcl.Range, name, raw string, parse func(string) (float64, error)) (float64, hcl.Range) {
	v, err := parse(raw)
	if err != nil {
		*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid " + name,
			Detail: sentence(err.Error()), Subject: rng.Ptr()})
		return 0, rng
	}
	return v, rng
}

// stageLimit evaluates a stage's budget or deadline meta-argument (a string, which
// may use variables).
func (e *Evaluator) stageLimit(ctx *hcl.EvalContext, expr hcl.Expression, name string, parse func(string) (float64, error)) (float64, hcl.Diagnostics) {
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return 0, diags
	}
	if !v.IsKnown() {
		return 0, diags
	}
	if v.IsNull() || v.Type() != cty.String {
		return 0, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid " + name,
			Detail: fmt.Sprintf("%s must be a string such as %s.", name, map[string]string{"budget": `"$0.50"`, "deadline": `"10m"`}[name]), Subject: expr.Range().Ptr()})
	}
	f, err := parse(v.AsString())
	if err != nil {
		return 0, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid " + name,
			Detail: sentence(err.Error()), Subject: expr.Range().Ptr()})
	}
	return f, diags
}

// StageLimits returns the budget and deadline that hold for the stage at addr:
// its own meta-arguments, else the nearest enclosing module's stratus block's.
// Problems were reported by EvalAll; here they leave the limit unset.
func (e *Evaluator) StageLimits(addr string) Limits {
	m, _ := e.StageMeta(addr)
	l := Limits{Budget: m.Budget, Deadline: m.Deadline}
	n := e.cfg.Nodes[addr]
	if n == nil || n.Stage == nil {
		return l
	}
	if n.Stage.Budget != nil {
		l.BudgetRange = n.Stage.Budget.Range()
	}
	if n.Stage.Deadline != nil {
		l.DeadlineRange = n.Stage.Deadline.Range()
	}
	for mod := n.Module; mod != nil && (l.Budget == 0 || l.Deadline == 0); mod = mod.Parent {
		if s := mod.Settings; s != nil {
			if l.Budget == 0 {
				l.Budget, l.BudgetRange = s.Limits.Budget, s.Limits.BudgetRange
			}
			if l.Deadline == 0 {
				l.Deadline, l.DeadlineRange = s.Limits.Deadline, s.Limits.DeadlineRange
			}
		}
	}
	return l
}
