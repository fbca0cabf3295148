// Package planner compiles a loaded pipeline into a plan: the stage DAG (rejecting
// cycles), a cache key per stage, and an action per stage against the state store —
// run, rerun (with the reason) or cached.
package planner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/internal/canon"
	"github.com/stratus-ml/stratus/internal/pricing"
	"github.com/stratus-ml/stratus/planner/dag"
	"github.com/stratus-ml/stratus/state"
	"github.com/stratus-ml/stratus/state/sharedcache"
)

// Action is what apply will do with a stage.
type Action string

// The actions.
const (
	Run    Action = "run"    // never ran
	Rerun  Action = "rerun"  // ran, but its key changed
	Cached Action = "cached" // ran with this key; its outputs are reused
)

// Symbol is the action's plan-line marker.
func (a Action) Symbol() string {
	switch a {
	case Run:
		return "+"
	case Rerun:
		return "~"
	}
	return "="
}

// StagePlan is the plan for one stage.
type StagePlan struct {
	Address  string
	Operator string
	Version  int
	Key      string
	Action   Action
	Reason   string
	// Deps are the stages this one reads, directly or through locals, variables and
	// module outputs, sorted.
	Deps     []string
	Params   map[string]state.Param
	Upstream map[string]string
	Sources  map[string]string
	// ModuleHash is the locked content hash of the remote module the stage's
	// block came from, or "" (see dsl.Module.ContentHash).
	ModuleHash string
	// Prior is the state record the action was decided against (nil for Run).
	Prior *state.StageRecord
	// Replaced is set when -replace forced this stage to run again.
	Replaced bool
	// Shared is the shared cache entry a cached stage is adopted from (Prior is
	// its record, relocated to this run's blob store), and Cache says so for
	// display; both nil otherwise (see shared.go).
	Shared *sharedcache.Entry
	Cache  *CacheOrigin
	// Estimate is what running the stage is expected to take, or for a cached
	// stage what reusing it saved (see estimate.go).
	Estimate *Estimate
	// Sizing lists the stage's system-level parameters: those the planner chose
	// for "auto" (Auto set), and the ones the pipeline gave (see sizing.go).
	Sizing []Choice
	// Budget (USD) and Deadline are the stage's limits, from its own budget and
	// deadline meta-arguments or the stratus block's; 0 when none.
	Budget   float64
	Deadline time.Duration
	// LimitNote says how the stage's estimate stands against its budget or
	// deadline ("" without either).
	LimitNote string
	// limits locate the budget and deadline in the source, for diagnostics.
	limits dsl.Limits
	Node   *dsl.Node
	// estimateCfg and sourceBytes are the estimate's inputs, kept until the
	// action is final (-replace and the blob-store check may change it).
	estimateCfg cty.Value
	sourceBytes int64
	// localBytes is the part of sourceBytes in local files, which a remote
	// backend's load uploads first (estimate_backend.go).
	localBytes int64
	// elastic is the range elastic training may use (estimate_elastic.go),
	// or nil.
	elastic *elasticBound
}

// Plan is a compiled pipeline.
type Plan struct {
	Config *dsl.Config
	// Stages are in dependency order: every stage after the stages it reads.
	Stages []*StagePlan
	// Graph is the stage-level DAG.
	Graph *dag.Graph
	// Serial is the state serial the plan was made against.
	Serial uint64
	// Targets are the -target addresses the plan was limited to (with the stages
	// they read); nil when every stage was planned. A targeted plan leaves the
	// other stages, and root outputs that read them, as they were.
	Targets []string
	// Replace are the -replace addresses the plan was made with.
	Replace []string
	// Sizing lists the backend-wide parameters the planner chose (psstore
	// shards, memory); MemoryMB is the function memory the estimates are priced
	// at when the planner chose it (0 otherwise). Limits are the backend's
	// limits it sized against.
	Sizing   []Choice
	MemoryMB int
	Limits   Limits
	// SharedCache is the shared stage cache the plan looked stages up in
	// (Options.Shared), for the run to publish to; nil without one.
	SharedCache SharedCache
	by          map[string]*StagePlan
}

// Stage returns the plan of the stage at addr, or nil.
func (p *Plan) Stage(addr string) *StagePlan { return p.by[addr] }

// Counts returns how many stages will run, rerun and be reused.
func (p *Plan) Counts() (run, rerun, cached int) {
	for _, s := range p.Stages {
		switch s.Action {
		case Run:
			run++
		case Rerun:
			rerun++
		default:
			cached++
		}
	}
	return
}

// HasChanges reports whether apply would run anything.
func (p *Plan) HasChanges() bool {
	r, rr, _ := p.Counts()
	return r+rr > 0
}

// StateReader is what planning needs from the state store. A nil *state.Store is a
// valid StateReader for a pipeline that never ran.
type StateReader interface {
	Stage(addr string) (*state.StageRecord, error)
	StageByKey(key string) (*state.StageRecord, error)
	Serial() (uint64, error)
	DigestCache
}

// Options configure Build.
type Options struct {
	// State is the state store; nil plans as if nothing ever ran.
	State StateReader
	// Remote digests s3:// sources; nil makes them an error.
	Remote SourceDigester
	// BlobRoot is the blob store the run will use (file:///…/blobs,
	// s3://bucket/prefix): a cached stage whose recorded outputs lie elsewhere is
	// planned to rerun. Empty skips the check. Backend names the backend in the
	// reason.
	BlobRoot, Backend string
	// Replace lists stage (or module) addresses to run again even where their
	// outputs could be reused: Terraform's -replace. Downstream stages rerun only
	// if their own keys change.
	Replace []string
	// Target limits the plan to these stages (or modules' stages) and the stages
	// they read: Terraform's -target. Build then adds a warning that the plan is
	// partial.
	Target []string
	// Pricing and MemoryMB price the estimates: the run's prices and function
	// memory. Zero values mean pricing.Default() and pricing.DefaultMemoryMB.
	Pricing  pricing.Pricing
	MemoryMB int
	// Shared is the team's shared stage cache (the stratus block's cache), or
	// nil. It needs BlobRoot, where adopted outputs will be.
	Shared SharedCache
	// Limits are the backend's limits for sizing; AutoMemory says the function
	// memory is the planner's to choose (MemoryMB then only prices the first
	// pass). The zero Limits size against nothing but the data.
	Limits     Limits
	AutoMemory bool
	// Machine is this machine's history of stage runs (LoadMachineHistory),
	// which estimates a stage with no record of its operator in the state;
	// nil estimates such stages from the defaults.
	Machine *MachineHistory
	// Solvers is the rule plan asks which solver a train stage will use
	// (solver.go); nil asks the train operator's (train.Solvers).
	Solvers SolverRule
}

// Build compiles cfg. Every problem is reported with a source range: cycles (every
// vertex on them named), evaluation errors, missing source files.
func Build(ctx context.Context, cfg *dsl.Config, opts Options) (*Plan, hcl.Diagnostics) {
	g, diags := Graph(cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	ev := cfg.NewEvaluator()
	diags = append(diags, ev.EvalAll()...)

	p := &Plan{Config: cfg, Graph: g, by: map[string]*StagePlan{}, Targets: opts.Target, Replace: opts.Replace, SharedCache: opts.Shared}
	sel, ds := newSelection(cfg, g, opts)
	diags = append(diags, ds...)
	if ds.HasErrors() {
		return nil, diags
	}
	order, err := p.Graph.TopoOrder()
	if err != nil { // unreachable: the full graph had no cycle
		return nil, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cycle", Detail: err.Error()})
	}
	st := opts.State
	if st == nil {
		st = (*state.Store)(nil)
	}
	if p.Serial, err = st.Serial(); err != nil {
		return nil, append(diags, stateDiag(err))
	}
	cm := newCostModel(opts)
	shared := newSharedLookup(cfg, opts)
	for _, addr := range order {
		if !sel.planned(addr) {
			continue
		}
		n := cfg.Nodes[addr]
		sp, ds := p.planStage(ctx, ev, n, st, opts.Remote)
		if sp != nil && sp.Action != Cached && !sel.replace[addr] && !ds.HasErrors() {
			ds = append(ds, shared.plan(ctx, sp)...)
		}
		if sp != nil && sp.Action == Cached && opts.BlobRoot != "" {
			if uri := outsideStore(sp.Prior.Output, opts.BlobRoot); uri != "" {
				sp.Action, sp.Reason = Rerun, locationReason(uri, opts.Backend)
			}
		}
		diags = append(diags, ds...)
		if sp != nil {
			sel.apply(sp)
			cm.estimate(sp, sp.estimateCfg, sp.sourceBytes, p)
			cm.correctDefaults(sp, p)
			p.Stages = append(p.Stages, sp)
			p.by[addr] = sp
		}
	}
	p.Limits = opts.Limits
	cm.sizeBackend(p)
	cm.elasticReasons(p)
	diags = append(diags, cm.checkLimits(p)...)
	return p, diags
}

// Check reports every problem of cfg that planning would find without reading the
// state or the data: cycles and evaluation errors. It is what `validate` runs, and
// what a caller runs after Load failed, so that all problems are reported together.
func Check(cfg *dsl.Config) hcl.Diagnostics {
	if cfg == nil || cfg.Root == nil {
		return nil
	}
	_, diags := Graph(cfg)
	ev := cfg.NewEvaluator()
	for _, c := range fullGraph(cfg).Cycles() {
		ev.Skip(c.Members...)
	}
	return append(diags, ev.EvalAll()...)
}

// Graph builds the stage-level DAG of cfg. Cycles are looked for among all nodes —
// variables, locals, stages and outputs — and each is reported with every node on it.
func Graph(cfg *dsl.Config) (*dag.Graph, hcl.Diagnostics) {
	if cycles := fullGraph(cfg).Cycles(); len(cycles) > 0 {
		var diags hcl.Diagnostics
		for _, c := range cycles {
			diags = append(diags, cycleDiag(cfg, c))
		}
		return nil, diags
	}
	g := dag.New()
	for _, n := range cfg.Stages() {
		g.Add(n.Addr)
	}
	memo := map[string]map[string]bool{}
	for _, n := range cfg.Stages() {
		for _, d := range stageDeps(cfg, n, memo) {
			g.Connect(n.Addr, d)
		}
	}
	return g, nil
}

// fullGraph is the graph of every node: variables, locals, stages and outputs.
func fullGraph(cfg *dsl.Config) *dag.Graph {
	full := dag.New()
	for _, a := range cfg.Order {
		full.Add(a)
	}
	for _, a := range cfg.Order {
		for _, t := range cfg.Nodes[a].DependsOn() {
			full.Connect(a, t)
		}
	}
	return full
}

// stageDeps returns the stages n reads: its references, followed through
// non-stage nodes. memo holds the stages each node reaches, so a chain of locals
// that many stages read is walked once, not once per stage (which made plan
// quadratic in the pipeline's size). The graph must be acyclic.
func stageDeps(cfg *dsl.Config, n *dsl.Node, memo map[string]map[string]bool) []string {
	var reach func(addr string) map[string]bool
	reach = func(addr string) map[string]bool {
		if s, ok := memo[addr]; ok {
			return s
		}
		s := map[string]bool{}
		for _, t := range cfg.Nodes[addr].DependsOn() {
			if cfg.Nodes[t].Kind == dsl.KindStage {
				s[t] = true
				continue
			}
			for d := range reach(t) {
				s[d] = true
			}
		}
		memo[addr] = s
		return s
	}
	found := reach(n.Addr)
	out := make([]string, 0, len(found))
	for a := range found {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

func (p *Plan) planStage(ctx context.Context, ev *dsl.Evaluator, n *dsl.Node, st StateReader, remote SourceDigester) (*StagePlan, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	schema := n.Stage.Schema
	cfgVal, ds := ev.StageConfig(n.Addr)
	if ds.HasErrors() || !cfgVal.Type().IsObjectType() {
		return nil, nil // EvalAll already reported these
	}
	sp := &StagePlan{
		Address:  n.Addr,
		Operator: schema.Name,
		Version:  schema.Version,
		Deps:     p.Graph.DependsOn(n.Addr),
		Params:   map[string]state.Param{},
		Upstream: map[string]string{},
		Sources:  map[string]string{},
		Node:     n,

		ModuleHash: n.Module.ContentHash,
	}
	sort.Strings(sp.Deps)
	for name, v := range cfgVal.AsValueMap() {
		sp.Params[name] = state.Param{Canon: canon.Encode(v), Display: canon.Display(v)}
	}
	for _, d := range sp.Deps {
		if up := p.by[d]; up != nil {
			sp.Upstream[d] = up.Key
		} else {
			sp.Upstream[d] = "?" // the upstream stage failed to plan; reported there
		}
	}
	for _, a := range schema.Attrs {
		if !a.Path {
			continue
		}
		v := cfgVal.GetAttr(a.Name)
		if !v.IsKnown() || v.IsNull() {
			continue
		}
		src := v.AsString()
		if !IsRemote(src) && filepath.IsAbs(src) {
			// Key an absolute local path (such as "${path.module}/data") by its
			// path from the module, as the digest names its files, so moving the
			// pipeline with its data keeps the key.
			sp.Params[a.Name] = state.Param{Canon: canon.Encode(cty.StringVal(relToModule(n.Module.Dir, src))), Display: canon.Display(v)}
		}
		if !IsRemote(src) {
			n := localSourceBytes(n.Module.Dir, src)
			sp.sourceBytes += n
			sp.localBytes += n
		}
		var digest string
		var err error
		if IsRemote(src) {
			switch sz, ok := remote.(SourceSizer); {
			case remote == nil:
				err = fmt.Errorf("this build cannot read %q: only local files and s3:// URIs are supported", src)
			case ok:
				var n int64
				digest, n, err = sz.DigestSourceSize(ctx, src)
				sp.sourceBytes += n
			default:
				digest, err = remote.DigestSource(ctx, src)
			}
		} else {
			digest, err = digestLocal(ctx, n.Module.Dir, src, st)
		}
		if err != nil {
			subject := n.DeclRange.Ptr()
			if ha, ok := n.Stage.Attrs[a.Name]; ok {
				subject = ha.Expr.Range().Ptr()
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Source not found",
				Detail:   fmt.Sprintf("%s.%s: %s.", n.Addr, a.Name, err),
				Subject:  subject,
			})
			continue
		}
		sp.Sources[a.Name] = digest
	}
	sp.Key = cacheKey(sp)

	prior, err := st.Stage(n.Addr)
	if err != nil {
		return nil, append(diags, stateDiag(err))
	}
	switch {
	case prior != nil && prior.Key == sp.Key:
		sp.Action, sp.Prior = Cached, prior
	case prior != nil:
		sp.Action, sp.Prior = Rerun, prior
		sp.Reason = rerunReason(sp, prior, p)
	default:
		other, err := st.StageByKey(sp.Key)
		if err != nil {
			return nil, append(diags, stateDiag(err))
		}
		if other != nil {
			sp.Action, sp.Prior = Cached, other
			sp.Reason = "same configuration as " + other.Address
		} else {
			sp.Action, sp.Reason = Run, "never ran"
		}
	}
	sp.estimateCfg = cfgVal
	lim := ev.StageLimits(n.Addr)
	sp.Budget, sp.Deadline, sp.limits = lim.Budget, lim.Deadline, lim
	if sp.Action == Cached {
		if why := raisedLimit(sp, sp.Prior); why != "" {
			sp.Action, sp.Reason = Rerun, why
		}
	}
	return sp, diags
}

// relToModule returns the absolute path p relative to the module directory dir, in
// slash form, or p itself when they cannot be related.
func relToModule(dir, p string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return p
	}
	rel, err := filepath.Rel(abs, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(rel)
}

// cacheKey is the SHA-256 of a delimited, canonical encoding of the operator name and
// version, the evaluated parameters, the upstream stages' keys and the sources'
// content digests, and the content hash of the remote module the stage comes from
// (absent for the pipeline's own stages, whose keys are unchanged by it). Every
// field is length-prefixed so no two inputs can collide by
// concatenation.
func cacheKey(sp *StagePlan) string {
	h := sha256.New()
	field := func(s string) {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	field("stratus-stage-key/1")
	field(sp.Operator)
	field(strconv.Itoa(sp.Version))
	for _, k := range sortedKeys(sp.Params) {
		field("param")
		field(k)
		field(sp.Params[k].Canon)
	}
	for _, k := range sortedKeys(sp.Upstream) {
		field("upstream")
		field(k)
		field(sp.Upstream[k])
	}
	for _, k := range sortedKeys(sp.Sources) {
		field("source")
		field(k)
		field(sp.Sources[k])
	}
	if sp.ModuleHash != "" {
		field("module")
		field(sp.ModuleHash)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// rerunReason explains what differs from the prior record: the operator version,
// parameters (with old and new values), sources, then upstream stages.
func rerunReason(sp *StagePlan, prior *state.StageRecord, p *Plan) string {
	var rs []string
	if prior.Version != sp.Version {
		rs = append(rs, fmt.Sprintf("operator %s version changed (%d → %d)", sp.Operator, prior.Version, sp.Version))
	}
	for _, a := range paramOrder(sp) {
		now := sp.Params[a]
		was, ok := prior.Params[a]
		switch {
		case !ok:
			rs = append(rs, fmt.Sprintf("%s added (%s)", a, now.Display))
		case was.Canon != now.Canon:
			if canon.HasUnknown(now.Canon) && !canon.HasUnknown(was.Canon) {
				continue // an upstream value not known until apply; the upstream reason covers it
			}
			rs = append(rs, fmt.Sprintf("%s changed (%s → %s)", a, was.Display, now.Display))
		}
	}
	for _, a := range sortedKeys(sp.Sources) {
		if prior.Sources[a] != sp.Sources[a] {
			rs = append(rs, fmt.Sprintf("%s content changed", a))
		}
	}
	for _, u := range sortedKeys(sp.Upstream) {
		was, ok := prior.Upstream[u]
		switch {
		case !ok:
			rs = append(rs, "new upstream "+u)
		case was != sp.Upstream[u]:
			rs = append(rs, "upstream "+u+" changed")
		}
	}
	for _, u := range sortedKeys(prior.Upstream) {
		if _, ok := sp.Upstream[u]; !ok {
			rs = append(rs, "no longer reads "+u)
		}
	}
	if len(rs) == 0 {
		if sp.ModuleHash != "" {
			// Nothing else of the key differs: the remote module's content did.
			return "module content changed"
		}
		return "configuration changed"
	}
	return strings.Join(rs, "; ")
}

// paramOrder lists parameters in schema order.
func paramOrder(sp *StagePlan) []string {
	s := sp.Node.Stage.Schema
	var out []string
	for _, a := range s.Attrs {
		out = append(out, a.Name)
	}
	for _, b := range s.Blocks {
		out = append(out, b.Name)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func cycleDiag(cfg *dsl.Config, c dag.Cycle) *hcl.Diagnostic {
	first := cfg.Nodes[c.Path[0]]
	detail := "The pipeline's references form a cycle: " + c.String() + "."
	if len(c.Members) > len(c.Path) {
		onPath := map[string]bool{}
		for _, p := range c.Path {
			onPath[p] = true
		}
		var also []string
		for _, m := range c.Members {
			if !onPath[m] {
				also = append(also, m)
			}
		}
		detail += " Also on it: " + strings.Join(also, ", ") + "."
	}
	var where []string
	for _, m := range c.Members {
		n := cfg.Nodes[m]
		where = append(where, fmt.Sprintf("%s (%s)", m, n.DeclRange))
	}
	detail += "\n\nDeclared at: " + strings.Join(where, "; ") + ".\nBreak the cycle by removing one of these references."
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Dependency cycle", Detail: detail, Subject: first.DeclRange.Ptr()}
}

func stateDiag(err error) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read the state", Detail: err.Error() + "."}
}
