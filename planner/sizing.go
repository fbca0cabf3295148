package planner

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/internal/pricing"
	"github.com/stratus-ml/stratus/operators"
)

// Sizing: the system-level parameters a pipeline leaves as "auto" (the default) —
// train's workers, grid_search's max_parallel, and the local backend's psstore
// shards and function memory — are chosen here, at plan time, from what the plan
// knows: the stage's input bytes (sources' sizes and upstream estimates), the
// model's size (2^hash_bits of the load stage it reads, when set), the backend's
// limits (Limits) and the stage's budget and deadline, with the cost model of
// estimate.go. Each choice carries a one-line reason for the plan. Explicit
// values are kept and shown as the pipeline's.
//
// The objective is "fastest within the budget" when a budget is set or nothing
// is, and "cheapest within the deadline" when only a deadline is: under the
// cost model more workers cost slightly more (each starts at TaskOverhead) and
// finish sooner, so the first takes the most workers the budget pays for and the
// second the fewest that meet the deadline.

// Sizing constants. Assumed, not measured, unless a figure says otherwise.
const (
	// MinBytesPerWorker is the least training data worth a worker of its own,
	// one partition: below it a worker spends more of its time starting, pulling
	// and pushing than computing, and asynchronous SGD's staleness grows with
	// workers for no gain. Measured on a9a (2.2 MB, local backend, 2 cores, SGD to
	// test logloss 0.335): 1 worker 1.45 s and 4.7 GB-s, 2 workers 1.39 s and
	// 6.8 GB-s, 4 workers 1.7 s and 14.0 GB-s, 8 workers 1.54 s and 18.6 GB-s.
	MinBytesPerWorker = 4 << 20
	// WorkersPerShard is how many training workers one psstore shard serves at
	// full speed: make bench-psstore measured pull + push of 2,000 keys by 4
	// clients on one shard at p50 186–205 µs, about a worker's iteration time.
	WorkersPerShard = 4
	// MaxAutoShards bounds the local backend's automatic shard count.
	MaxAutoShards = 8
	// ShardModelBytes is the most model one shard is given to hold (dense
	// float32 weights plus optimizer state, three copies): 256 MiB.
	ShardModelBytes = 256 << 20
	// BaseMemoryMB is a function's memory at rest (runtime, buffers, one
	// partition in flight).
	BaseMemoryMB = 256
	// MaxMemoryMB is Lambda's largest function.
	MaxMemoryMB = 10240
	// DefaultLambdaConcurrency is the account concurrency assumed when Lambda's
	// GetAccountSettings cannot be read (Lambda's default quota is 1,000; new
	// accounts may have less, so the assumption is the old default of 100).
	DefaultLambdaConcurrency = 100
	// DefaultPartitionBytes is load's partition_bytes default, for reasons.
	DefaultPartitionBytes = 4 << 20
)

// Limits are what the backend allows, for sizing.
type Limits struct {
	// Backend is "local" or "lambda".
	Backend string
	// Functions is how many functions run at once (the backend's slots, or the
	// account's Lambda concurrency); 0 means unknown (no bound but the schema's).
	Functions int
	// Cores bounds CPU-bound work on the local backend, whose functions share
	// this machine's cores; 0 on Lambda, where each function has its own.
	Cores int
	// Why says where Functions and Cores come from, for reasons ("local backend:
	// 2 cores", "Lambda account concurrency 1000 (GetAccountSettings)").
	Why string
	// Note, when set, is a warning the plan shows (a figure that could not be
	// read and was assumed).
	Note string
	// Shards is the fixed number of psstore shards (the backend's list, or an
	// explicit psstore_shards), or 0 when the planner chooses (AutoShards).
	Shards int
	// MemoryMB is the fixed function memory, or 0 when the planner chooses.
	MemoryMB int
	// HostCores, when set, says that a remote backend's functions share this
	// many cores (Lambda emulators on this machine): estimates bound their
	// CPU-bound work by them as they do the local backend's by Cores, while
	// sizing, which sizes for Lambda, ignores it.
	HostCores int
}

// Choice is one sized parameter of a stage or of the backend, or a choice of
// another kind the plan states beside them: train's solver (solver.go), whose
// Value is Text, or, when plan cannot tell it yet, one of Options.
type Choice struct {
	Param string `json:"param"`
	Value int    `json:"value"`
	// Text is a choice that is not a number ("newton"); Options the values
	// it may take when plan cannot tell which (Text is then "").
	Text    string   `json:"-"`
	Options []string `json:"-"`
	// Auto says the planner chose it; false means the pipeline gave it.
	Auto   bool   `json:"auto"`
	Reason string `json:"reason"`
}

// numeric reports whether c chooses a number (Value) rather than a word.
func (c Choice) numeric() bool { return c.Text == "" && c.Options == nil }

// choiceJSON is a Choice as JSON: value is the number, or the word (a
// string), or null with options listing what it may be.
type choiceJSON struct {
	Param   string    `json:"param"`
	Value   any       `json:"value"`
	Options *[]string `json:"options,omitempty"` // [] when not even they are known
	Auto    bool      `json:"auto"`
	Reason  string    `json:"reason"`
}

// MarshalJSON writes value as a number, a string (Text) or null (Options).
func (c Choice) MarshalJSON() ([]byte, error) {
	j := choiceJSON{Param: c.Param, Value: c.Value, Auto: c.Auto, Reason: c.Reason}
	switch {
	case c.Text != "":
		j.Value = c.Text
	case c.Options != nil:
		j.Value, j.Options = nil, &c.Options
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes (a saved plan).
func (c *Choice) UnmarshalJSON(b []byte) error {
	var j struct {
		choiceJSON
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*c = Choice{Param: j.Param, Auto: j.Auto, Reason: j.Reason}
	if j.Options != nil {
		c.Options = append([]string{}, *j.Options...)
	}
	if len(j.Value) > 0 && j.Value[0] == '"' {
		return json.Unmarshal(j.Value, &c.Text)
	}
	if len(j.Value) > 0 && string(j.Value) != "null" {
		return json.Unmarshal(j.Value, &c.Value)
	}
	return nil
}

// String is the choice as the plan shows it: "workers 2: reason", "solver
// newton: reason", "solver newton or lbfgs: reason".
func (c Choice) String() string {
	name := strings.ReplaceAll(c.Param, "_", " ")
	if c.Param == "psstore_shards" {
		name = "psstore shards"
	}
	if c.Text != "" {
		return fmt.Sprintf("%s %s: %s", name, c.Text, c.Reason)
	}
	if c.Options != nil {
		return fmt.Sprintf("%s %s: %s", name, orList(c.Options), c.Reason)
	}
	if c.Param == "memory_mb" {
		return fmt.Sprintf("memory %d MB: %s", c.Value, c.Reason)
	}
	if c.Param == "workers_max" {
		return fmt.Sprintf("elastic, up to %d workers: %s", c.Value, c.Reason)
	}
	return fmt.Sprintf("%s %d: %s", name, c.Value, c.Reason)
}

// orList joins words as "a", "a or b", "a, b or c" ("not known": none).
func orList(w []string) string {
	switch len(w) {
	case 0:
		return "not known"
	case 1:
		return w[0]
	}
	return strings.Join(w[:len(w)-1], ", ") + " or " + w[len(w)-1]
}

// Objective is what sizing optimises, from a stage's budget and deadline.
type Objective struct {
	// Budget is the most the stage may cost in USD (0: none); Deadline the
	// longest it may take (0: none).
	Budget   float64
	Deadline time.Duration
}

// trainShape is what sizing knows of a training stage's work.
type trainShape struct {
	bytes  int64 // training data
	epochs int
	// examples, when set, is the examples training processes (trainExamples),
	// instead of bytes/BytesPerExample × epochs; rate the examples per second
	// of one worker, instead of ExamplesPerSecondPerWorker.
	examples, rate float64
}

// trainCost is the cost model of estimate.go for training on w workers: the
// function-seconds (workers and the evaluator beside them) and the wall time.
func trainCost(s trainShape, w int) (fs float64, wall time.Duration) {
	ex, rate := s.examples, s.rate
	if ex <= 0 {
		ex = max(float64(s.bytes)/BytesPerExample, 1) * float64(max(s.epochs, 1))
	}
	if rate <= 0 {
		rate = ExamplesPerSecondPerWorker
	}
	work := ex / rate
	sec := work/float64(w) + TaskOverhead.Seconds()
	return work + float64(w)*TaskOverhead.Seconds(), time.Duration(sec * float64(time.Second))
}

// sizeWorkers chooses a train stage's workers: at most one per MinBytesPerWorker
// of data, per core (local) or per function beside the evaluator, and per
// WorkersPerShard of fixed shards; then the objective. price turns
// function-seconds over tasks into dollars. It returns the choice and whether
// the objective could be met.
func sizeWorkers(s trainShape, lim Limits, obj Objective, price func(fs float64, tasks int) float64) (Choice, bool) {
	byData := int(max(1, (s.bytes+MinBytesPerWorker-1)/MinBytesPerWorker))
	data := fmt.Sprintf("%s of training data over ≈%d partitions", fmtBytes(s.bytes), max(1, (s.bytes+DefaultPartitionBytes-1)/DefaultPartitionBytes))
	wmax, why := byData, data+fmt.Sprintf(", at least %s per worker", fmtBytes(MinBytesPerWorker))
	bound := func(n int, reason string) {
		if n >= 1 && n < wmax {
			wmax, why = n, data+"; "+reason
		}
	}
	if lim.Cores > 0 {
		// The evaluator and the in-process psstore shards share the cores too:
		// on 2 cores, SGD on 150k Criteo-like rows (20 epochs) took 6.2 s and
		// 21.5 GB-s with 1 worker, 21 s and 108 GB-s with 2, 10.5 s and 83 GB-s
		// with 4.
		bound(max(1, lim.Cores-1), fmt.Sprintf("%s, one worker per core but one, which the evaluator and the psstore shards need", lim.Why))
	}
	if lim.Functions > 1 {
		bound(lim.Functions-1, fmt.Sprintf("%s, one for the evaluator", lim.Why))
	}
	if lim.Shards > 0 {
		bound(lim.Shards*WorkersPerShard, fmt.Sprintf("%d psstore shards serve about %d workers each", lim.Shards, WorkersPerShard))
	}
	wmax = min(wmax, 1000)
	cost := func(w int) float64 {
		fs, _ := trainCost(s, w)
		return price(fs, w+1)
	}
	wall := func(w int) time.Duration { _, d := trainCost(s, w); return d }
	w, ok, how := pick(wmax, obj, cost, wall)
	return Choice{Param: "workers", Value: w, Auto: true, Reason: why + how}, ok
}

// pick applies the objective to a parameter from 1 to n whose cost grows and
// whose wall time falls with it: the largest within the budget (fastest), or with
// only a deadline the smallest that meets it (cheapest). It returns the value,
// whether the objective is met, and the reason's tail.
func pick(n int, obj Objective, cost func(int) float64, wall func(int) time.Duration) (int, bool, string) {
	fits := func(v int) bool {
		return (obj.Budget <= 0 || cost(v) <= obj.Budget) && (obj.Deadline <= 0 || wall(v) <= obj.Deadline)
	}
	switch {
	case obj.Budget <= 0 && obj.Deadline <= 0:
		return n, true, ""
	case obj.Deadline > 0:
		for v := 1; v <= n; v++ {
			if fits(v) {
				return v, true, fmt.Sprintf("; the cheapest within deadline %s (≈%s)", obj.Deadline, FormatWall(wall(v)))
			}
		}
		return n, false, fmt.Sprintf("; the fastest, ≈%s, misses deadline %s", FormatWall(wall(n)), obj.Deadline)
	default:
		for v := n; v >= 1; v-- {
			if fits(v) {
				return v, true, fmt.Sprintf("; the fastest within budget %s (≈%s)", FormatUSD(obj.Budget), FormatUSD(cost(v)))
			}
		}
		return 1, false, fmt.Sprintf("; the cheapest, ≈%s, is over budget %s", FormatUSD(cost(1)), FormatUSD(obj.Budget))
	}
}

// sizeParallel chooses grid_search's max_parallel: trials at once, each of
// workers workers and an evaluator, within the backend's functions (and cores);
// with a deadline, the fewest that meet it.
func sizeParallel(trials, workers int, perTrial time.Duration, lim Limits, obj Objective) (Choice, bool) {
	pmax, why := max(trials, 1), fmt.Sprintf("%d trials", trials)
	bound := func(n int, reason string) {
		n = max(n, 1)
		if n < pmax {
			pmax, why = n, reason
		}
	}
	if lim.Functions > 0 {
		bound(lim.Functions/(workers+1), fmt.Sprintf("%d trials of %d workers and an evaluator; %s", trials, workers, lim.Why))
	}
	if lim.Cores > 0 {
		bound(max(1, lim.Cores-1)/max(workers, 1), fmt.Sprintf("%d trials of %d workers; %s, one core for the evaluators and the psstore shards", trials, workers, lim.Why))
	}
	pmax = min(pmax, 1000)
	wall := func(p int) time.Duration { return time.Duration((trials + p - 1) / p * int(perTrial)) }
	// The trials' function-seconds do not depend on how many run at once: a
	// budget does not bound max_parallel, only the deadline does.
	p, ok, how := pick(pmax, Objective{Deadline: obj.Deadline}, func(int) float64 { return 0 }, wall)
	return Choice{Param: "max_parallel", Value: p, Auto: true, Reason: why + how}, ok
}

// sizeShards chooses the local backend's psstore shards: enough for the
// largest model (ShardModelBytes each) and for the most workers training at
// once (WorkersPerShard each), at most one per core and MaxAutoShards.
func sizeShards(maxWorkers int, modelBytes int64, cores int) Choice {
	byWorkers := (maxWorkers + WorkersPerShard - 1) / WorkersPerShard
	byModel := int((modelBytes + ShardModelBytes - 1) / ShardModelBytes)
	n := max(1, byWorkers, byModel)
	why := fmt.Sprintf("at most %d worker(s) training at once, %d per shard", maxWorkers, WorkersPerShard)
	if byModel > byWorkers {
		why = fmt.Sprintf("the largest model holds %s, %s per shard", fmtBytes(modelBytes), fmtBytes(ShardModelBytes))
	}
	if cores > 0 && n > cores {
		n, why = cores, why+fmt.Sprintf("; at most one per core (%d)", cores)
	}
	if n > MaxAutoShards {
		n, why = MaxAutoShards, why+fmt.Sprintf("; at most %d", MaxAutoShards)
	}
	return Choice{Param: "psstore_shards", Value: n, Auto: true, Reason: why}
}

// sizeMemory chooses function memory: 1769 MB (Lambda's one full vCPU: below
// it CPU is throttled in proportion, so CPU-bound work costs the same GB-seconds
// and takes longer), or more when a function's working set — its share of the
// training data in memory, three times its bytes, and a dense copy of the
// largest model with its gradient — needs it, in 64 MB steps.
func sizeMemory(shareBytes, modelBytes int64) Choice {
	need := BaseMemoryMB + int(math.Ceil(float64(3*shareBytes+2*modelBytes)/(1<<20)))
	mb := max(need, 1769)
	if mb > 1769 {
		mb = min((mb+63)/64*64, MaxMemoryMB)
	}
	why := fmt.Sprintf("one full vCPU; the largest working set needs ≈%d MB", need)
	if mb > 1769 {
		why = fmt.Sprintf("the largest working set needs ≈%d MB (a worker's share of the data and a dense model)", need)
	}
	return Choice{Param: "memory_mb", Value: mb, Auto: true, Reason: why}
}

// size chooses the "auto" parameters of sp (train workers, grid_search
// max_parallel) and returns cfg with the chosen values in place of "auto", for
// the estimate. in is the stage's input bytes.
func (m *costModel) size(sp *StagePlan, cfg cty.Value, in int64, p *Plan) cty.Value {
	if !cfg.IsKnown() || cfg.IsNull() || !cfg.Type().IsObjectType() {
		return cfg
	}
	obj := Objective{Budget: sp.Budget, Deadline: sp.Deadline}
	price := func(fs float64, tasks int) float64 {
		return m.pricing.Duration(fs*float64(m.memoryMB)/1024) + m.pricing.Requests(tasks)
	}
	attrs := cfg.AsValueMap()
	set := func(c Choice, _ bool) { // whether c meets the limits: planner/limits.go checks
		sp.Sizing = append(sp.Sizing, c)
		attrs[c.Param] = cty.NumberIntVal(int64(c.Value))
	}
	explicit := func(name, why string) {
		if v, ok := attrs[name]; ok && v.IsKnown() && !v.IsNull() && v.Type() == cty.Number {
			n := intAttr(cfg, name, 0)
			sp.Sizing = append(sp.Sizing, Choice{Param: name, Value: n, Reason: why})
		}
	}
	switch sp.Operator {
	case "train":
		if operators.IsAuto(attrs["workers"]) {
			set(sizeWorkers(trainShape{bytes: in, epochs: intAttr(cfg, "epochs", DefaultEpochs), examples: trainExamples(in, cfg), rate: m.trainRate()}, m.limits, obj, price))
		} else {
			explicit("workers", "set in the pipeline")
		}
	case "grid_search":
		if operators.IsAuto(attrs["max_parallel"]) {
			trials := gridTrials(cfg)
			workers, per := 1, time.Duration(0)
			if up := p.trainBase(sp); up != nil && up.Estimate != nil {
				workers = max(1, intAttr(up.estimateCfg, "workers", 1))
				per = up.Estimate.Wall
			}
			set(sizeParallel(trials, workers, per, m.limits, obj))
		} else {
			explicit("max_parallel", "set in the pipeline")
		}
	default:
		return cfg
	}
	return cty.ObjectVal(attrs)
}

// trainBase is the base train stage a grid_search stage reads, or nil.
func (p *Plan) trainBase(sp *StagePlan) *StagePlan {
	var found *StagePlan
	for _, d := range sp.Deps {
		if u := p.by[d]; u != nil && u.Operator == "train" {
			if found != nil {
				return nil
			}
			found = u
		}
	}
	return found
}

// modelBits is the hash_bits of the load stage sp reads (directly or through
// other stages), 0 when none sets it.
func modelBits(sp *StagePlan, p *Plan) int {
	seen := map[string]bool{}
	var walk func(s *StagePlan) int
	walk = func(s *StagePlan) int {
		if s == nil || seen[s.Address] {
			return 0
		}
		seen[s.Address] = true
		if s.Operator == "load" {
			if prm, ok := s.Params["hash_bits"]; ok {
				if b, err := strconv.Atoi(prm.Display); err == nil {
					return b
				}
			}
			if f, ok := s.Params["format"]; ok && f.Display != `"libsvm"` && f.Display != "null" {
				return 20 // criteo, csv, jsonl and parquet hash into 2^20 by default
			}
		}
		for _, d := range s.Deps {
			if b := walk(p.by[d]); b > 0 {
				return b
			}
		}
		return 0
	}
	return walk(sp)
}

// sizeBackend chooses the backend-wide parameters the pipeline leaves to the
// planner (psstore shards, memory) from the sized stages, and re-prices the
// estimates when the memory differs from the one they were priced at.
func (m *costModel) sizeBackend(p *Plan) {
	maxWorkers, modelBytes, share := 0, int64(0), int64(0)
	for _, s := range p.Stages {
		if s.Action == Cached {
			continue
		}
		w := 0
		for _, c := range s.Sizing {
			switch c.Param {
			case "workers":
				w = c.Value
			case "max_parallel":
				if up := p.trainBase(s); up != nil {
					for _, uc := range up.Sizing {
						if uc.Param == "workers" {
							w = max(w, c.Value*uc.Value)
						}
					}
				}
			}
		}
		if s.Operator == "train" || s.Operator == "grid_search" {
			maxWorkers = max(maxWorkers, w)
			if b := modelBits(s, p); b > 0 {
				modelBytes = max(modelBytes, int64(4)<<b)
			}
			if s.Estimate != nil && w > 0 && s.Operator == "train" {
				share = max(share, s.Estimate.InputBytes/int64(w))
			}
		}
	}
	if m.limits.Shards == 0 && NeedsPSStore(p) {
		p.Sizing = append(p.Sizing, sizeShards(maxWorkers, modelBytes, m.limits.Cores))
	}
	if m.limits.MemoryMB == 0 && m.autoMemory {
		c := sizeMemory(share, modelBytes)
		p.Sizing = append(p.Sizing, c)
		if c.Value != m.memoryMB {
			for _, s := range p.Stages {
				if e := s.Estimate; e != nil && e.Basis != BasisReused {
					e.GBSeconds = e.FunctionSeconds * float64(c.Value) / 1024
					e.CostUSD = m.pricing.Duration(e.GBSeconds) + m.pricing.Requests(e.Tasks)
				}
			}
			m.memoryMB = c.Value
		}
		p.MemoryMB = c.Value
	}
}

// NeedsPSStore reports whether a stage that will run uses psstore.
func NeedsPSStore(p *Plan) bool {
	for _, s := range p.Stages {
		if s.Action != Cached && s.Node != nil && s.Node.Stage.Schema.UsesPSStore {
			return true
		}
	}
	return false
}

// Chosen returns the planned value of param for the stage (its sizing), or 0.
func (sp *StagePlan) Chosen(param string) int {
	for _, c := range sp.Sizing {
		if c.Param == param && c.Auto && c.numeric() {
			return c.Value
		}
	}
	return 0
}

// Resolve returns cfg (the stage's evaluated configuration) with each "auto"
// argument replaced by the value the plan chose: what the stage's coordinator
// runs with.
func (sp *StagePlan) Resolve(cfg cty.Value) cty.Value {
	if sp == nil || !cfg.IsKnown() || cfg.IsNull() || !cfg.Type().IsObjectType() {
		return cfg
	}
	attrs := cfg.AsValueMap()
	changed := false
	for _, c := range sp.Sizing {
		if v, ok := attrs[c.Param]; ok && c.Auto && c.numeric() && operators.IsAuto(v) {
			attrs[c.Param] = cty.NumberIntVal(int64(c.Value))
			changed = true
		}
	}
	if !changed {
		return cfg
	}
	return cty.ObjectVal(attrs)
}

// PlannedShards is the psstore shards the plan chose (0: not chosen).
func (p *Plan) PlannedShards() int {
	for _, c := range p.Sizing {
		if c.Param == "psstore_shards" {
			return c.Value
		}
	}
	return 0
}

// FormatUSD shows dollars as plans and budgets do (pricing.FormatUSD).
func FormatUSD(v float64) string { return pricing.FormatUSD(v) }

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// FormatWall shows a duration as plan and apply do: tenths of a second
// below 10s, whole seconds above.
func FormatWall(d time.Duration) string {
	if d < 10*time.Second {
		return strconv.FormatFloat(d.Round(100*time.Millisecond).Seconds(), 'f', 1, 64) + "s"
	}
	return d.Round(time.Second).String()
}

// trainRate is one training worker's examples per second on the plan's
// backend: the embedded default's workers call in-process shards.
func (m *costModel) trainRate() float64 {
	if m.limits.Backend == "local" {
		return LocalExamplesPerSecondPerWorker
	}
	return ExamplesPerSecondPerWorker
}
