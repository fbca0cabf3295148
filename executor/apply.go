package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/internal/canon"
	"github.com/stratus-ml/stratus/internal/pricing"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/taskenv"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/planner/dag"
	"github.com/stratus-ml/stratus/state"
)

// Options configure an apply.
type Options struct {
	Plan     *planner.Plan
	State    *state.Store
	Backend  Backend
	Registry *operators.Registry
	Observer Observer
	// TaskEnv is what every task receives: blob store root, psstore shards, token.
	TaskEnv operators.TaskEnv
	// Services are the run's stores as coordinators reach them (built from TaskEnv).
	Services operators.Services
	// Router delivers commands (kill a trial) to running stages; nil makes one.
	Router *Router
	// Parallelism bounds the stages running at once (default 10, as Terraform).
	Parallelism int
	// Retries is the default number of retries per task (default 3); a stage's
	// `retries` overrides it.
	Retries int
	// TaskTimeout bounds one attempt of an ordinary task; a stage's task_timeout
	// overrides it. Lifetime is the function lifetime of long-running tasks.
	TaskTimeout time.Duration
	Lifetime    time.Duration
	// RetryBackoff is the first retry's delay (default 200ms).
	RetryBackoff time.Duration
	// Pricing prices the summary, trials and the dashboard (default:
	// pricing.Default(), us-east-1 arm64, estimated).
	Pricing pricing.Pricing
	// MemoryMB is each function's memory, for cost estimates (default 1769).
	MemoryMB int
	// PSStoreHosts, when set, counts the psstore cluster's hosts, which a stage
	// that uses psstore pays Pricing.HostPerHour each for while it runs (its
	// budget includes them: limits.go).
	PSStoreHosts func(ctx context.Context) int
	// Shared is the team's shared stage cache, or nil: stages planned from it are
	// adopted, stages that complete are published to it (shared.go).
	Shared SharedCache

	pub *publisher
}

// StageSummary is how one stage went.
type StageSummary struct {
	Address   string             `json:"address"`
	Operator  string             `json:"operator"`
	Action    string             `json:"action"` // ran, cached, failed, skipped, interrupted
	Tasks     int                `json:"tasks"`
	Retries   int                `json:"retries"`
	Resumed   int                `json:"resumed"`
	Wall      time.Duration      `json:"wall_ns"`
	GBSeconds float64            `json:"gb_seconds"`
	CostUSD   float64            `json:"cost_usd"`
	Error     string             `json:"error,omitempty"`
	Metrics   map[string]float64 `json:"metrics,omitempty"`
	// Shared is what the shared stage cache did for the stage: "adopted" (a
	// cached stage taken from it), "published", "already published", or "".
	// PublishError says why a stage that ran was not published.
	Shared       string `json:"shared,omitempty"`
	PublishError string `json:"publish_error,omitempty"`
	// Stopped says the stage was cut short by its budget or deadline, keeping
	// its best result so far ("stopped by budget: $0.48 of $0.50").
	Stopped string `json:"stopped,omitempty"`
	// Over says a stage that cannot stop early (load, normalize) ran past its
	// budget or deadline ("over budget: $0.61 of $0.50").
	Over string `json:"over,omitempty"`
}

// Summary is how an apply went.
type Summary struct {
	Stages   []*StageSummary
	Outputs  map[string]cty.Value
	Duration time.Duration
}

// Totals sums tasks, retries, GB-seconds and cost over the stages.
func (s *Summary) Totals() (tasks, retries int, gbs, cost float64) {
	for _, st := range s.Stages {
		tasks += st.Tasks
		retries += st.Retries
		gbs += st.GBSeconds
		cost += st.CostUSD
	}
	return
}

// ErrStagesFailed is returned (wrapped) when any stage failed.
var ErrStagesFailed = errors.New("apply failed")

// Apply runs the plan's stages in dependency order, at most Parallelism at once:
// cached stages contribute their recorded outputs; the others run their coordinator
// and are recorded in the state when they complete. After a failure no new stage
// starts; stages already running finish. Cancelling ctx stops in-flight tasks and
// leaves completed stages and tasks recorded, so the next apply resumes.
func Apply(ctx context.Context, o Options) (*Summary, error) {
	o.defaults()
	began := time.Now()
	p := o.Plan
	ev := p.Config.NewEvaluator()
	sum := &Summary{}
	summaries := map[string]*StageSummary{}
	for _, sp := range p.Stages {
		ss := &StageSummary{Address: sp.Address, Operator: sp.Operator}
		summaries[sp.Address] = ss
		sum.Stages = append(sum.Stages, ss)
	}
	o.Observer.Event(Event{Time: began, Type: ApplyStarted, Tasks: len(p.Stages)})
	if o.Shared != nil {
		o.pub = &publisher{cache: o.Shared, obs: o.Observer, outcomes: map[string][2]string{}}
		defer o.pub.done(summaries)
	}

	// Cached stages first: their outputs feed downstream evaluation. Those from
	// the shared cache are copied in first, side by side.
	adopted, err := o.adoptAll(ctx, p)
	if err != nil {
		return sum, err
	}
	for _, sp := range p.Stages {
		if sp.Action != planner.Cached {
			continue
		}
		rec := sp.Prior
		if a := adopted[sp.Address]; a != nil {
			rec = a
			summaries[sp.Address].Shared = "adopted"
		}
		out, err := state.DecodeValue(rec.Output)
		if err != nil {
			return nil, fmt.Errorf("stage %s: recorded output unreadable (run `stratus state rm %s` to run it again): %w", sp.Address, sp.Address, err)
		}
		if sp.Shared == nil && sp.Prior.Address != sp.Address {
			// Same configuration under another address: adopt the record.
			rec := *sp.Prior
			rec.Address = sp.Address
			if err := o.State.PutStage(&rec); err != nil {
				return nil, err
			}
		}
		ev.SetStageOutput(sp.Address, out)
		summaries[sp.Address].Action = "cached"
		o.Observer.Event(Event{Time: time.Now(), Type: StageCached, Stage: sp.Address, Operator: sp.Operator, Reason: sp.Reason})
	}

	// The planner's DAG decides the order: a stage starts when its upstream stages
	// are done (cached ones are done already), up to Parallelism at once; after a
	// failure nothing new starts, and a stage whose upstream failed is skipped.
	done := map[string]bool{}
	for _, v := range p.Graph.Vertices() {
		if sp := p.Stage(v); sp == nil || sp.Action == planner.Cached {
			done[v] = true // cached, or not part of this plan
		}
	}
	sl := make(slots, o.Backend.Slots())
	results, err := p.Graph.Walk(ctx, dag.WalkOptions{Parallelism: o.Parallelism, Done: done, StopOnError: true},
		func(ctx context.Context, a string) error {
			return o.runStage(ctx, p.Stage(a), ev, sl, summaries[a])
		})
	o.pub.done(summaries) // publishing is part of the apply
	if err != nil {
		return sum, err
	}
	for a, r := range results {
		if ss := summaries[a]; ss != nil && r.Outcome == dag.Skipped {
			ss.Action, ss.Error = "skipped", "upstream "+r.Upstream+" did not complete"
		}
	}

	sum.Duration = time.Since(began)
	var failures []string
	for _, ss := range sum.Stages {
		switch {
		case ss.Action == "" && ctx.Err() != nil:
			ss.Action = "interrupted"
		case ss.Action == "":
			ss.Action = "skipped"
		}
		if ss.Action == "failed" {
			failures = append(failures, ss.Address)
		}
	}
	defer o.Observer.Event(Event{Time: time.Now(), Type: ApplyFinished, Duration: sum.Duration})
	if ctx.Err() != nil {
		return sum, fmt.Errorf("apply interrupted; completed stages and tasks are recorded, so the next apply resumes: %w", ctx.Err())
	}
	if len(failures) > 0 {
		return sum, fmt.Errorf("%w: %d stage(s) failed (%s)", ErrStagesFailed, len(failures), joinAddrs(failures))
	}
	outs, diags := ev.Outputs()
	if diags.HasErrors() {
		return sum, fmt.Errorf("evaluate outputs:\n%s", formatDiags(p, diags))
	}
	enc := map[string]json.RawMessage{}
	prev, err := keptOutputs(p, o.State, outs)
	if err != nil {
		return sum, err
	}
	for k, v := range outs {
		if b, ok := prev[k]; ok {
			enc[k] = b
			delete(outs, k)
			continue
		}
		b, err := state.EncodeValue(v)
		if err != nil {
			return sum, fmt.Errorf("output %q: %w", k, err)
		}
		enc[k] = b
	}
	if err := o.State.PutOutputs(enc); err != nil {
		return sum, err
	}
	sum.Outputs = outs
	return sum, nil
}

func (o *Options) defaults() {
	if o.Parallelism <= 0 {
		o.Parallelism = 10
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.TaskTimeout <= 0 {
		o.TaskTimeout = 15 * time.Minute
	}
	if o.Lifetime <= 0 {
		o.Lifetime = 15 * time.Minute
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 200 * time.Millisecond
	}
	if o.Pricing.PerGBSecond <= 0 {
		o.Pricing = pricing.Default()
	}
	if o.Observer == nil {
		o.Observer = Observers(nil)
	}
	if o.MemoryMB <= 0 {
		o.MemoryMB = DefaultMemoryMB
	}
	if o.Router == nil {
		o.Router = NewRouter()
	}
	if o.Services == nil {
		o.Services = taskenv.New().Services(o.TaskEnv)
	}
}

// runStage evaluates a stage's configuration with its upstream outputs, runs its
// coordinator, checks the output against the schema, and records the stage.
func (o *Options) runStage(ctx context.Context, sp *planner.StagePlan, ev *dsl.Evaluator, sl slots, ss *StageSummary) (err error) {
	began := time.Now()
	o.Observer.Event(Event{Time: began, Type: StageStarted, Stage: sp.Address, Operator: sp.Operator})
	var runner *waveRunner
	defer func() {
		ss.Wall = time.Since(began)
		if runner != nil {
			runner.mu.Lock()
			ss.Tasks, ss.Retries, ss.Resumed, ss.GBSeconds = runner.tasks, runner.retried, runner.resumed, runner.gbSeconds
			ss.CostUSD = runner.cost(o.Pricing)
			runner.mu.Unlock()
		}
		switch {
		case err == nil:
			ss.Action = "ran"
			o.Observer.Event(Event{Time: time.Now(), Type: StageFinished, Stage: sp.Address, Operator: sp.Operator, Duration: ss.Wall, Tasks: ss.Tasks, Summary: ss})
		case ctx.Err() != nil:
			ss.Action = "interrupted"
			ss.Error = err.Error()
		default:
			ss.Action = "failed"
			ss.Error = err.Error()
			o.Observer.Event(Event{Time: time.Now(), Type: StageFailed, Stage: sp.Address, Operator: sp.Operator, Duration: ss.Wall, Error: err.Error(), Summary: ss})
		}
	}()

	cfgVal, diags := ev.StageConfig(sp.Address)
	if diags.HasErrors() {
		return fmt.Errorf("configuration of %s:\n%s", sp.Address, formatDiags(o.Plan, diags))
	}
	if !cfgVal.IsWhollyKnown() {
		return fmt.Errorf("configuration of %s is not known after its upstream stages ran; this is a bug in stratus", sp.Address)
	}
	meta, diags := ev.StageMeta(sp.Address)
	if diags.HasErrors() {
		return fmt.Errorf("configuration of %s:\n%s", sp.Address, formatDiags(o.Plan, diags))
	}
	op, ok := o.Registry.Lookup(sp.Operator)
	if !ok || op.Coordinator == nil {
		return fmt.Errorf("operator %q cannot run in this build of stratus (it can only be validated and planned)", sp.Operator)
	}
	cfgVal = sp.Resolve(cfgVal) // "auto" arguments become what the plan chose
	up := map[string]operators.Upstream{}
	for _, d := range sp.Deps {
		dc, _ := ev.StageConfig(d)
		dc = o.Plan.Stage(d).Resolve(dc)
		dv, _ := ev.Value(d)
		dp := o.Plan.Stage(d)
		up[d] = operators.Upstream{Address: d, Operator: dp.Operator, Key: dp.Key, Config: dc, Output: dv}
	}
	retries := o.Retries
	if meta.Retries >= 0 {
		retries = meta.Retries
	}
	timeout := o.TaskTimeout
	if meta.TaskTimeout > 0 {
		timeout = meta.TaskTimeout
	}
	runner = &waveRunner{
		backend: o.Backend, slots: sl, state: o.State, obs: o.Observer,
		stage: sp.Address, operator: sp.Operator, key: sp.Key, env: o.TaskEnv,
		retries: retries, taskTimeout: timeout, lifetime: o.Lifetime, backoff: o.RetryBackoff,
	}
	dir, _ := filepath.Abs(sp.Node.Module.Dir)
	run := &stageRun{
		Services: o.Services,
		addr:     sp.Address, key: sp.Key, operator: sp.Operator, dir: dir, config: cfgVal,
		upstream: up, runner: runner, env: o.TaskEnv, obs: o.Observer, capacity: cap(sl),
		commands: o.Router.open(sp.Address),
		stop:     make(chan string, 1),
		pricing:  o.Pricing, memoryMB: o.MemoryMB,
	}
	defer o.Router.close(sp.Address)
	for _, c := range sp.Sizing {
		if c.Auto {
			if run.auto == nil {
				run.auto = map[string]bool{}
			}
			run.auto[c.Param] = true
		}
	}
	// A budget holds the stage's functions and, while it runs, the psstore
	// hosts it uses (when they are priced).
	hosts := 0
	if sp.Budget > 0 && o.Pricing.HostPerHour > 0 && o.PSStoreHosts != nil && op.Schema.UsesPSStore {
		hosts = o.PSStoreHosts(ctx)
	}
	stageCost := func() float64 {
		runner.mu.Lock()
		defer runner.mu.Unlock()
		return runner.cost(o.Pricing) + o.Pricing.Hosts(hosts, time.Since(began))
	}
	var watch *limitWatch
	if (sp.Budget > 0 || sp.Deadline > 0) && planner.CanStopEarly(sp.Operator) {
		prev, _ := o.State.Stage(sp.Address)
		watch = &limitWatch{budget: sp.Budget, deadline: sp.Deadline, began: began, runner: runner,
			pricing: o.Pricing, memoryMB: o.MemoryMB, stop: run.stop, hosts: hosts, tail: stopTail(prev)}
		run.limits = watch
		wctx, wcancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); watch.watch(wctx) }()
		defer wg.Wait()
		defer wcancel()
	}
	out, err := op.Coordinator.Run(ctx, run)
	ss.Metrics = run.summaryMetrics()
	if err != nil {
		return err
	}
	if sp.Budget > 0 || sp.Deadline > 0 {
		cost := stageCost()
		switch wall := time.Since(began); {
		case watch != nil:
		case sp.Budget > 0 && cost > sp.Budget:
			ss.Over = fmt.Sprintf("over budget: %s of %s", planner.FormatUSD(cost), planner.FormatUSD(sp.Budget))
		case sp.Deadline > 0 && wall > sp.Deadline:
			ss.Over = fmt.Sprintf("over deadline: %s of %s", wall.Round(time.Millisecond), sp.Deadline)
		}
		if ss.Over != "" {
			run.Event(operators.Event{Kind: "note", Note: ss.Over + "; a " + sp.Operator + " stage cannot stop early, so it ran to its end"})
		}
	}
	if reason := watch.reached(); reason != "" {
		cost := stageCost()
		ss.Stopped = watch.describe(reason, cost, time.Since(began))
		run.Event(operators.Event{Kind: "note", Note: ss.Stopped + "; the result is the best so far"})
	}
	out, err = convert.Convert(out, op.Schema.OutputType())
	if err != nil || !out.IsWhollyKnown() {
		return fmt.Errorf("operator %s produced an output that does not fit its schema (a bug in the operator): %v", sp.Operator, err)
	}
	enc, err := state.EncodeValue(out)
	if err != nil {
		return fmt.Errorf("record %s: %w", sp.Address, err)
	}
	runner.mu.Lock()
	rec := &state.StageRecord{
		Address: sp.Address, Operator: sp.Operator, Version: sp.Version, Key: sp.Key,
		Params: recordedParams(sp.Params, cfgVal), Upstream: sp.Upstream, Sources: sp.Sources, Output: enc,
		Started: began, Finished: time.Now(), Tasks: runner.tasks, Retries: runner.retried,
		GBSeconds: runner.gbSeconds, CostUSD: runner.cost(o.Pricing),
		Backend: o.Backend.Name(), Metrics: ss.Metrics, Stopped: ss.Stopped,
		Budget: sp.Budget, Deadline: sp.Deadline, Calibration: runner.calibration(ss.Metrics),
	}
	if took := watch.stopTook(rec.Finished); took > 0 {
		rec.Calibration[planner.CalStopMS] = float64(took) / float64(time.Millisecond)
	}
	if sp.Estimate != nil {
		rec.InputBytes = sp.Estimate.InputBytes
	}
	rec.MemoryMB = o.MemoryMB // what runner.gbSeconds were priced at
	runner.mu.Unlock()
	if err := o.dropSharedRef(ctx, sp.Key); err != nil {
		return err
	}
	if err := o.State.PutStage(rec); err != nil {
		return err
	}
	o.pub.publish(ctx, o.Services.Blob, rec)
	ev.SetStageOutput(sp.Address, out)
	return nil
}

// recordedParams keeps each parameter's plan-time encoding — the next plan compares
// against it — but shows the value the stage actually ran with where the plan could
// only say "(known after apply)".
func recordedParams(planned map[string]state.Param, cfg cty.Value) map[string]state.Param {
	out := make(map[string]state.Param, len(planned))
	for name, p := range planned {
		if canon.HasUnknown(p.Canon) && cfg.Type().IsObjectType() && cfg.Type().HasAttribute(name) {
			p.Display = canon.Display(cfg.GetAttr(name))
		}
		out[name] = p
	}
	return out
}

func formatDiags(p *planner.Plan, diags hcl.Diagnostics) string {
	var b bytes.Buffer
	w := hcl.NewDiagnosticTextWriter(&b, p.Config.Files, 78, false)
	_ = w.WriteDiagnostics(diags)
	return b.String()
}

func joinAddrs(a []string) string {
	sort.Strings(a)
	return strings.Join(a, ", ")
}

// keptOutputs returns the recorded values of the root outputs a targeted plan
// (-target) could not evaluate because they read stages outside it: those keep
// what the last full apply recorded, as Terraform leaves them.
func keptOutputs(p *planner.Plan, st *state.Store, outs map[string]cty.Value) (map[string]json.RawMessage, error) {
	if len(p.Targets) == 0 {
		return nil, nil
	}
	prev, err := st.Outputs()
	if err != nil {
		return nil, err
	}
	kept := map[string]json.RawMessage{}
	for k, v := range outs {
		if v.IsWhollyKnown() {
			continue
		}
		if b, ok := prev[k]; ok {
			kept[k] = b
		} else {
			kept[k] = nil
		}
	}
	for k, b := range kept {
		if b == nil {
			delete(kept, k)
			delete(outs, k) // never recorded, not known now: left out
		}
	}
	return kept, nil
}
