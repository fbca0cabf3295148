package planner

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/operators/train"
	"github.com/stratus-ml/stratus/state"
)

// Train's solver at plan time. Solver "auto" (the default) is resolved by the
// train operator against its training set (full-batch Newton or L-BFGS, or
// asynchronous SGD); the rule is the operator's, and plan asks it (SolverRule)
// with what it knows of the training set before anything runs, and shows the
// answer in the stage's sizing: the solver and why, or — when a fact the rule
// needs is known only after load has run — the solvers it may be and the
// condition between them. What plan knows, from the load stage the train stage
// reads (directly or through normalize):
//
//   - a cached load: its record's train_rows and features, exactly; the
//     stored entries at most rows × features (a row holds each index once);
//   - a load that will run: features from its format and hash_bits (a hashed
//     format has 2^hash_bits slots and its numeric columns; criteo 13 of them;
//     libsvm without hash_bits its largest index, unknown), and, when every
//     source is a local uncompressed text file, rows and entries at most half
//     its bytes each (a row or an entry takes at least two).
//
// A normalize stage between may make entries of zeros (center), so entries
// are then bounded only by rows × features.

// SolverRule is what plan asks the train operator: which solver the stage of
// evaluated configuration cfg will use on a training set of which in is known.
// operators/train's Solvers is the implementation.
type SolverRule interface {
	PlanSolver(cfg cty.Value, in train.Known) train.SolverPlan
}

// planSolver adds the solver of a train stage to run (or each distinct solver
// of a grid_search stage's trials) to its sizing.
func (m *costModel) planSolver(sp *StagePlan, cfg cty.Value, p *Plan) {
	if sp.Action == Cached || m.solvers == nil {
		return
	}
	switch sp.Operator {
	case "train":
		in := p.trainKnown(sp)
		sp.Sizing = append(sp.Sizing, solverChoice(m.solvers.PlanSolver(cfg, in), ""))
	case "grid_search":
		base := p.trainBase(sp)
		if base == nil || base.estimateCfg == cty.NilVal {
			return
		}
		in := p.trainKnown(base)
		trials, ok := trialConfigs(base.estimateCfg, cfg)
		if !ok {
			return
		}
		type group struct {
			plan train.SolverPlan
			n    int
		}
		var groups []*group
		for _, t := range trials {
			sol := m.solvers.PlanSolver(t, in)
			found := false
			for _, g := range groups {
				if g.plan.Solver == sol.Solver && strings.Join(g.plan.Options, ",") == strings.Join(sol.Options, ",") {
					g.n++
					found = true
				}
			}
			if !found {
				groups = append(groups, &group{plan: sol, n: 1})
			}
		}
		for _, g := range groups {
			what := fmt.Sprintf("%d of %d trials", g.n, len(trials))
			if g.n == len(trials) {
				what = fmt.Sprintf("every trial (%d)", g.n)
			}
			sp.Sizing = append(sp.Sizing, solverChoice(g.plan, what))
		}
	}
}

// solverChoice is a solver plan as a sizing entry; trials, when set, says
// which of a grid search's trials it is.
func solverChoice(s train.SolverPlan, trials string) Choice {
	c := Choice{Param: "solver", Text: s.Solver, Options: s.Options, Auto: s.Why != "asked for", Reason: s.Why}
	if s.Why == "asked for" {
		c.Reason = "set in the pipeline"
	}
	if s.Solver == "" && s.Options == nil {
		c.Options = []string{}
	}
	if trials != "" {
		c.Reason = trials + ": " + c.Reason
	}
	return c
}

// maxGridTrials bounds the trials whose solver plan works out one by one.
const maxGridTrials = 256

// trialConfigs is each trial's configuration of a grid search: the base train
// stage's with the grid's values in place. ok is false when the plan cannot
// list them (random search, an unknown grid, too many trials).
func trialConfigs(base, cfg cty.Value) ([]cty.Value, bool) {
	if !cfg.Type().IsObjectType() || !cfg.Type().HasAttribute("grid") || !base.Type().IsObjectType() {
		return nil, false
	}
	if cfg.Type().HasAttribute("random") {
		if r := cfg.GetAttr("random"); !r.IsKnown() || !r.IsNull() {
			return nil, false
		}
	}
	g := cfg.GetAttr("grid")
	if !g.IsWhollyKnown() || g.IsNull() || !g.CanIterateElements() {
		return nil, false
	}
	trials := []map[string]cty.Value{base.AsValueMap()}
	for it := g.ElementIterator(); it.Next(); {
		k, vs := it.Element()
		if k.Type() != cty.String || !vs.CanIterateElements() {
			return nil, false
		}
		var next []map[string]cty.Value
		for _, t := range trials {
			for vi := vs.ElementIterator(); vi.Next(); {
				_, v := vi.Element()
				c := make(map[string]cty.Value, len(t)+1)
				for a, x := range t {
					c[a] = x
				}
				c[k.AsString()] = v
				next = append(next, c)
			}
		}
		if len(next) > maxGridTrials {
			return nil, false
		}
		trials = next
	}
	out := make([]cty.Value, len(trials))
	for i, t := range trials {
		out[i] = cty.ObjectVal(t)
	}
	return out, true
}

// trainKnown is what plan knows of the training set of train stage sp (see
// the top of this file).
func (p *Plan) trainKnown(sp *StagePlan) train.Known {
	unknown := train.Known{Rows: train.AtLeast(1), NNZ: train.AtLeast(0), Features: train.AtLeast(1), Classes: train.AtLeast(2)}
	ld, normalized := p.loadOf(sp)
	if ld == nil {
		return unknown
	}
	in := unknown
	in.After = ld.Address
	format := unquote(paramDisplay(ld, "format"))
	if format == "" || format == "null" {
		format = "libsvm"
	}
	if rows, features := recordedTrain(ld); rows > 0 && features > 0 {
		in.Rows, in.Features = train.Exact(rows), train.Exact(features)
		in.NNZ = train.Bound{Min: 0, Max: in.Rows.Max * in.Features.Max}
		if format == "ratings" {
			in.NNZ = train.Exact(2 * in.Rows.Max) // a user and an item slot per rating
		}
		return withClasses(in)
	}
	bits, hashed := 0, format != "libsvm" && format != "ratings"
	if b, err := strconv.Atoi(paramDisplay(ld, "hash_bits")); err == nil && b > 0 {
		bits, hashed = b, format != "ratings"
	} else if hashed {
		bits = dataset.DefaultHashBits
	}
	text := ld.sourceBytes > 0 && ld.localBytes == ld.sourceBytes && format != "parquet" && plainText(ld)
	half := (ld.sourceBytes+1)/2 + 1
	if text {
		in.Rows = train.Bound{Min: 1, Max: half}
		if !normalized {
			in.NNZ = train.Bound{Min: 0, Max: half}
		}
	}
	switch {
	case hashed && format == "criteo":
		in.Features = train.Exact(dataset.CriteoIntColumns + 1<<bits)
	case hashed && format == "libsvm":
		in.Features = train.Exact(1 << bits)
	case hashed: // csv, jsonl, parquet: the numeric columns come first
		in.Features = train.AtLeast(1 << bits)
		if text {
			in.Features.Max = 1<<bits + half
		}
	}
	if in.Rows.Max >= 0 && in.Features.Max >= 0 {
		if byRows := in.Rows.Max * in.Features.Max; in.NNZ.Max < 0 || byRows < in.NNZ.Max {
			in.NNZ.Max = byRows
		}
	}
	if format == "ratings" && in.Rows.Max >= 0 {
		in.NNZ = train.Bound{Min: 2, Max: 2 * in.Rows.Max}
	}
	return withClasses(in)
}

// withClasses bounds softmax's classes by the rows: each class has one.
func withClasses(in train.Known) train.Known {
	if in.Rows.Max >= 2 {
		in.Classes.Max = in.Rows.Max
	}
	return in
}

// recordedTrain is the training set's rows and features of a cached load
// stage, from its recorded output (0, 0 when there is none).
func recordedTrain(ld *StagePlan) (rows, features int64) {
	if ld.Action != Cached || ld.Prior == nil {
		return 0, 0
	}
	out, err := state.DecodeValue(ld.Prior.Output)
	if err != nil || !out.Type().IsObjectType() || !out.Type().HasAttribute("train") {
		return 0, 0
	}
	tr := out.GetAttr("train")
	return int64(intAttr(tr, "rows", 0)), int64(intAttr(tr, "features", 0))
}

// loadOf is the one load stage train stage sp reads, through normalize
// stages (normalized says there is one), or nil.
func (p *Plan) loadOf(sp *StagePlan) (ld *StagePlan, normalized bool) {
	cur := sp
	for range len(p.Stages) + 1 {
		var up *StagePlan
		only := orderOnly(cur)
		for _, d := range cur.Deps {
			if only[d] {
				continue
			}
			u := p.by[d]
			if u == nil {
				return nil, false
			}
			if u.Operator != "load" && u.Operator != "normalize" {
				continue
			}
			if up != nil {
				return nil, false // two candidates
			}
			up = u
		}
		switch {
		case up == nil:
			return nil, false
		case up.Operator == "load":
			return up, normalized
		}
		normalized, cur = true, up
	}
	return nil, false
}

// orderOnly is the stages sp's depends_on names: an order, not data it reads.
func orderOnly(sp *StagePlan) map[string]bool {
	if sp.Node == nil || sp.Node.Stage == nil || len(sp.Node.Stage.DependsOn) == 0 {
		return nil
	}
	// The stage's address within its module is its last two parts.
	prefix := sp.Address
	if i := strings.LastIndex(prefix, "."); i >= 0 {
		if j := strings.LastIndex(prefix[:i], "."); j >= 0 {
			prefix = prefix[:j+1]
		} else {
			prefix = ""
		}
	}
	out := map[string]bool{}
	for _, t := range sp.Node.Stage.DependsOn {
		if len(t) < 2 {
			continue
		}
		if a, ok := t[1].(hcl.TraverseAttr); ok {
			out[prefix+t.RootName()+"."+a.Name] = true
		}
	}
	return out
}

// maxSniffFiles bounds the files plainText reads the start of (64 KiB each);
// a source of more is not bounded by its bytes.
const maxSniffFiles = 64

// plainText reports whether every source file of load stage ld starts as
// uncompressed text (its first bytes, as load sniffs them).
func plainText(ld *StagePlan) bool {
	if ld.Node == nil || ld.Node.Stage == nil || ld.Node.Module == nil {
		return false
	}
	for _, a := range ld.Node.Stage.Schema.Attrs {
		if !a.Path {
			continue
		}
		src := unquote(paramDisplay(ld, a.Name))
		if src == "" || src == "null" {
			continue
		}
		files, err := ResolveLocal(ld.Node.Module.Dir, src)
		if err != nil || len(files) > maxSniffFiles {
			return false
		}
		for _, f := range files {
			if !plainFile(f) {
				return false
			}
		}
	}
	return true
}

func plainFile(name string) bool {
	f, err := os.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, dataset.SniffBytes)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return false
	}
	c := dataset.Sniff(head[:n])
	return c.Codec == "" && c.Kind == "" && c.Format == ""
}

// unquote is a string parameter's display form without its quotes.
func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

// PlannedSolver is the solver the plan says train stage sp will use, or ""
// with the solvers it may use (nil: no solver entry, such as a cached stage).
// Estimates that depend on the solver (elastic SGD) may ask it.
func (sp *StagePlan) PlannedSolver() (solver string, options []string) {
	for _, c := range sp.Sizing {
		if c.Param == "solver" && !c.numeric() {
			return c.Text, c.Options
		}
	}
	return "", nil
}
