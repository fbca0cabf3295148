package planner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/gridsearch"
	loadop "github.com/stratus-ml/stratus/operators/load"
	"github.com/stratus-ml/stratus/operators/normalize"
	"github.com/stratus-ml/stratus/operators/train"
)

const data = "1 1:0.5 3:1\n-1 2:1\n"

// basePipeline has two branches, so a change in one leaves the other cached: a
// chain load.adult → normalize.adult → train.base → grid_search.tune, a stage fed
// by grid_search (train.final), and an unrelated load.other → train.other.
const basePipeline = `
variable "lr" {
  type    = number
  default = 0.1
}

locals {
  bits = 12
}

load "adult" {
  source    = "data/a.svm"
  format    = "criteo"
  hash_bits = local.bits
  split     = { test = 0.1, seed = 1 }
}

normalize "adult" {
  input  = load.adult
  method = "min_max"
  range  = [0, 1]
}

train "base" {
  input         = normalize.adult
  workers       = 2
  learning_rate = var.lr
  l2            = 0.0001
  timeout       = "10m"
}

grid_search "tune" {
  train = train.base
  grid  = { learning_rate = [0.01, 0.1], minibatch = [20, 100] }

  early_stop {
    rule        = "threshold"
    max_logloss = 2
  }
}

train "final" {
  input         = normalize.adult
  learning_rate = grid_search.tune.best.params.learning_rate
}

load "other" {
  source = "data/b.svm"
}

train "other" {
  input = load.other
}
`

// sameConfig holds the base pipeline rewritten in ways that must not change any
// key: attribute and block order, layout, comments, files, number spelling, object
// key order, explicit defaults, and values computed rather than written.
var sameConfig = map[string]map[string]string{
	"attributes reordered and blocks moved": {"main.hcl": `
train "other" {
  input = load.other
}

load "other" {
  source = "data/b.svm"
}

train "final" {
  learning_rate = grid_search.tune.best.params.learning_rate
  input         = normalize.adult
}

grid_search "tune" {
  early_stop {
    max_logloss = 2
    rule        = "threshold"
  }
  grid  = { minibatch = [20, 100], learning_rate = [0.01, 0.1] }
  train = train.base
}

train "base" {
  timeout       = "10m"
  l2            = 0.0001
  learning_rate = var.lr
  workers       = 2
  input         = normalize.adult
}

normalize "adult" {
  range  = [0, 1]
  method = "min_max"
  input  = load.adult
}

load "adult" {
  split     = { seed = 1, test = 0.1 }
  hash_bits = local.bits
  format    = "criteo"
  source    = "data/a.svm"
}

locals {
  bits = 12
}

variable "lr" {
  default = 0.1
  type    = number
}
`},
	"reformatted with comments": {"main.hcl": `# A comment at the top.
variable "lr" {
    type = number # trailing
    default = 0.1
}
locals { bits = 12 }
/* block comment */
load "adult" {
  source = "data/a.svm"
  format = "criteo"
  hash_bits = local.bits
  split = {
    test = 0.1
    seed = 1
  }
}
normalize "adult" {
  // line comment
  input = load.adult
  method = "min_max"
  range = [
    0,
    1,
  ]
}
train "base" {
  input = normalize.adult
  workers = 2
  learning_rate = var.lr
  l2 = 0.0001
  timeout = "10m"
}
grid_search "tune" {
  train = train.base
  grid = {
    learning_rate = [0.01, 0.1]
    minibatch = [20, 100]
  }
  early_stop {
    rule = "threshold"
    max_logloss = 2
  }
}
train "final" {
  input = normalize.adult
  learning_rate = grid_search.tune.best.params.learning_rate
}
load "other" { source = "data/b.svm" }
train "other" { input = load.other }
`},
	"split across files": {
		"a_vars.hcl": "variable \"lr\" {\n  type    = number\n  default = 0.1\n}\nlocals {\n  bits = 12\n}\n",
		"b_stages.hcl": strings.Join(strings.SplitAfter(basePipeline, "\n")[10:], "") +
			"", // everything from load "adult" on
	},
	"numbers, defaults and computed values spelled differently": {"main.hcl": `
variable "lr" {
  type    = number
  default = 1e-1
}

locals {
  bits = 6 * 2
}

load "adult" {
  source    = "data/${"a"}.svm"
  format    = lower("CRITEO")
  hash_bits = local.bits
  split     = { test = 0.10, seed = 1.0 }
  on_error  = "fail"
}

normalize "adult" {
  input  = load.adult
  method = lower("MIN_MAX")
  range  = tolist([0, 1.0])
  center = false
}

train "base" {
  input         = normalize.adult
  workers       = 2
  learning_rate = var.lr
  l2            = 1e-4
  timeout       = "10m"
  momentum      = 0.9
  # (optimizer has no schema default: setting it picks the SGD solver, a change)
}

grid_search "tune" {
  train = train.base
  grid  = { learning_rate = [0.010, 0.1], minibatch = concat([20], [100]) }

  early_stop {
    rule        = "threshold"
    max_logloss = 2.0
  }
}

train "final" {
  input         = normalize.adult
  learning_rate = grid_search.tune.best.params.learning_rate
}

load "other" {
  source = "data/b.svm"
  format = "libsvm"
}

train "other" {
  input = load.other
}
`},
}

func dataFiles() map[string]string {
	return map[string]string{"data/a.svm": data, "data/b.svm": "-1 4:2\n"}
}

func withData(files map[string]string) map[string]string {
	out := dataFiles()
	for k, v := range files {
		out[k] = v
	}
	return out
}

func TestKeysIgnoreLayout(t *testing.T) {
	base := keys(plan(t, load(t, pipelineDir(t, withData(map[string]string{"main.hcl": basePipeline}))), nil))
	if len(base) != 7 {
		t.Fatalf("base pipeline has %d stages, want 7", len(base))
	}
	seen := map[string]string{}
	for addr, k := range base {
		if len(k) != 64 {
			t.Errorf("%s: key %q is not a hex SHA-256", addr, k)
		}
		if prev, dup := seen[k]; dup {
			t.Errorf("%s and %s share the key %s", addr, prev, k)
		}
		seen[k] = addr
	}
	for name, files := range sameConfig {
		t.Run(name, func(t *testing.T) {
			got := keys(plan(t, load(t, pipelineDir(t, withData(files))), nil))
			if !reflect.DeepEqual(got, base) {
				for addr := range base {
					if got[addr] != base[addr] {
						t.Errorf("%s: key changed", addr)
					}
				}
				if len(got) != len(base) {
					t.Errorf("stages: %v", got)
				}
			}
		})
	}
}

// Moving the whole pipeline (data included) keeps every key: keys hold source paths
// relative to the module, never absolute ones.
func TestKeysSurviveMove(t *testing.T) {
	files := withData(map[string]string{"main.hcl": basePipeline})
	a := keys(plan(t, load(t, pipelineDir(t, files)), nil))
	moved := filepath.Join(t.TempDir(), "deeper", "pipeline")
	writeFiles(t, moved, files)
	if got := keys(plan(t, load(t, moved), nil)); !reflect.DeepEqual(got, a) {
		t.Errorf("keys changed when the pipeline moved:\n%v\n%v", got, a)
	}
	// Sources written as absolute paths from path.module, here through a module
	// as pipelines/criteo does, are keyed by their path from the module too.
	modFiles := map[string]string{
		"main.hcl":      "module \"prep\" {\n  source = \"./prep\"\n  data   = \"${path.module}/data/a.svm\"\n}\ntrain \"t\" {\n  input = module.prep.out\n}\n",
		"prep/main.hcl": "variable \"data\" {}\nload \"d\" {\n  source = var.data\n}\noutput \"out\" {\n  value = load.d\n}\n",
		"data/a.svm":    data,
	}
	m1 := keys(plan(t, load(t, pipelineDir(t, modFiles)), nil))
	m2dir := filepath.Join(t.TempDir(), "elsewhere")
	writeFiles(t, m2dir, modFiles)
	if got := keys(plan(t, load(t, m2dir), nil)); !reflect.DeepEqual(got, m1) {
		t.Errorf("keys of a pipeline with absolute sources changed when it moved:\n%v\n%v", got, m1)
	}

	// Given as a relative directory, from elsewhere.
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, moved)
	if err != nil {
		t.Skip("no relative path to the temp dir")
	}
	if got := keys(plan(t, load(t, rel), nil)); !reflect.DeepEqual(got, a) {
		t.Errorf("keys changed when the pipeline was given as %s", rel)
	}
}

// changeCase is one edit of the base pipeline and the plan it must produce after
// the base pipeline was applied.
type changeCase struct {
	name string
	old  string // replaced once in basePipeline
	new  string
	vars []string
	want map[string]string // address → "action: reason"; absent → "cached"
}

func TestChangeReruns(t *testing.T) {
	cases := []changeCase{
		{
			name: "normalize method",
			old:  `method = "min_max"`, new: `method = "standard"`,
			want: map[string]string{
				"normalize.adult":  `rerun: method changed ("min_max" → "standard")`,
				"train.base":       "rerun: upstream normalize.adult changed",
				"grid_search.tune": "rerun: upstream train.base changed",
				"train.final":      "rerun: upstream grid_search.tune changed; upstream normalize.adult changed",
			},
		},
		{
			name: "variable from the command line",
			vars: []string{"lr=0.5"},
			want: map[string]string{
				"train.base":       "rerun: learning_rate changed (0.1 → 0.5)",
				"grid_search.tune": "rerun: upstream train.base changed",
				"train.final":      "rerun: upstream grid_search.tune changed",
			},
		},
		{
			name: "local read by the first stage",
			old:  "bits = 12", new: "bits = 14",
			want: map[string]string{
				"load.adult":       "rerun: hash_bits changed (12 → 14)",
				"normalize.adult":  "rerun: upstream load.adult changed",
				"train.base":       "rerun: upstream normalize.adult changed",
				"grid_search.tune": "rerun: upstream train.base changed",
				"train.final":      "rerun: upstream grid_search.tune changed; upstream normalize.adult changed",
			},
		},
		{
			name: "argument added at a non-default value",
			old:  `load "other" {`, new: "load \"other\" {\n  on_error = \"skip\"",
			want: map[string]string{
				"load.other":  `rerun: on_error changed ("fail" → "skip")`,
				"train.other": "rerun: upstream load.other changed",
			},
		},
		{
			name: "input switched to another stage",
			old:  "input = load.other", new: "input = normalize.adult",
			want: map[string]string{
				"train.other": "rerun: new upstream normalize.adult; no longer reads load.other",
			},
		},
		{
			name: "an explicit default changes nothing",
			old:  `workers       = 2`, new: "workers       = 2\n  momentum = 0.9\n  seed = 1",
			want: map[string]string{},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := pipelineDir(t, withData(map[string]string{"main.hcl": basePipeline}))
			st := openState(t)
			applied := plan(t, load(t, dir), st)
			recordApply(t, st, applied)
			if again := plan(t, load(t, dir), st); again.HasChanges() {
				t.Fatalf("unchanged pipeline after apply: %v", actions(again))
			}
			if c.old != "" {
				if !strings.Contains(basePipeline, c.old) {
					t.Fatalf("%q is not in the base pipeline", c.old)
				}
				writeFiles(t, dir, map[string]string{"main.hcl": strings.Replace(basePipeline, c.old, c.new, 1)})
			}
			p := plan(t, load(t, dir, c.vars...), st)
			got := actions(p)
			for _, s := range p.Stages {
				want, ok := c.want[s.Address]
				if !ok {
					want = "cached"
				}
				if want == "cached" && s.Key != applied.Stage(s.Address).Key {
					t.Errorf("%s: key changed but the stage is unaffected", s.Address)
				}
				if got[s.Address] != want {
					t.Errorf("%s:\n got  %s\n want %s", s.Address, got[s.Address], want)
				}
			}
			wantChanges := len(c.want) > 0
			if p.HasChanges() != wantChanges {
				t.Errorf("HasChanges = %v, want %v", p.HasChanges(), wantChanges)
			}
		})
	}
}

// A change inside a nested block reruns the stage with the block's old and new
// values (shortened when long).
func TestNestedBlockReason(t *testing.T) {
	dir := pipelineDir(t, withData(map[string]string{"main.hcl": basePipeline}))
	st := openState(t)
	recordApply(t, st, plan(t, load(t, dir), st))
	writeFiles(t, dir, map[string]string{"main.hcl": strings.Replace(basePipeline, "max_logloss = 2", "max_logloss = 3", 1)})
	got := actions(plan(t, load(t, dir), st))
	want := `rerun: early_stop changed ({ grace = "10s", interval = "1s", max_logloss = 2, min_tr... → ` +
		`{ grace = "10s", interval = "1s", max_logloss = 3, min_tr...)`
	if got["grid_search.tune"] != want {
		t.Errorf("grid_search.tune:\n got  %s\n want %s", got["grid_search.tune"], want)
	}
	if got["train.final"] != "rerun: upstream grid_search.tune changed" || got["train.base"] != "cached" {
		t.Errorf("downstream/upstream: %v", got)
	}
}

func TestSourceDigest(t *testing.T) {
	dir := pipelineDir(t, withData(map[string]string{"main.hcl": basePipeline}))
	src := filepath.Join(dir, "data", "a.svm")
	for _, withState := range []bool{false, true} {
		name := "no state"
		if withState {
			name = "digest cache in the state"
		}
		t.Run(name, func(t *testing.T) {
			writeFiles(t, dir, map[string]string{"data/a.svm": data})
			var st *stateStore
			if withState {
				st = openState(t)
			}
			before := plan(t, load(t, dir), st)
			// Twice, so the second plan reads the digest cache.
			if k := keys(plan(t, load(t, dir), st)); !reflect.DeepEqual(k, keys(before)) {
				t.Fatal("keys differ between two plans of the same pipeline")
			}

			// A new modification time with the same content keeps every key.
			later := time.Now().Add(time.Hour)
			if err := os.Chtimes(src, later, later); err != nil {
				t.Fatal(err)
			}
			if k := keys(plan(t, load(t, dir), st)); !reflect.DeepEqual(k, keys(before)) {
				t.Error("touching the source changed keys")
			}

			// The same size and modification time with other content is not seen
			// through the digest cache (that is its contract), so change the size.
			writeFiles(t, dir, map[string]string{"data/a.svm": data + "1 5:1\n"})
			after := plan(t, load(t, dir), st)
			for _, s := range after.Stages {
				changed := s.Key != before.Stage(s.Address).Key
				downstream := s.Address != "load.other" && s.Address != "train.other"
				if changed != downstream {
					t.Errorf("%s: key changed = %v, want %v", s.Address, changed, downstream)
				}
			}
			if after.Stage("load.adult").Sources["source"] == before.Stage("load.adult").Sources["source"] {
				t.Error("source digest did not change with the content")
			}
		})
	}
}

// The reason for a content change names the source argument.
func TestSourceChangeReason(t *testing.T) {
	dir := pipelineDir(t, withData(map[string]string{"main.hcl": basePipeline}))
	st := openState(t)
	recordApply(t, st, plan(t, load(t, dir), st))
	writeFiles(t, dir, map[string]string{"data/b.svm": "-1 4:3\n"})
	got := actions(plan(t, load(t, dir), st))
	if want := "rerun: source content changed"; got["load.other"] != want {
		t.Errorf("load.other: %s, want %s", got["load.other"], want)
	}
	if want := "rerun: upstream load.other changed"; got["train.other"] != want {
		t.Errorf("train.other: %s, want %s", got["train.other"], want)
	}
	if got["load.adult"] != "cached" {
		t.Errorf("load.adult: %s, want cached", got["load.adult"])
	}
}

// A directory source digests the files in it; renaming one changes the digest.
func TestDirectorySource(t *testing.T) {
	dir := pipelineDir(t, map[string]string{
		"main.hcl":       `load "d" { source = "parts" }`,
		"parts/p1.svm":   data,
		"parts/p2.svm":   data,
		"parts/.hidden":  "ignored",
		"parts/sub/x.sv": "not read",
	})
	k1 := keys(plan(t, load(t, dir), nil))["load.d"]
	writeFiles(t, dir, map[string]string{"parts/.hidden": "still ignored"})
	if k := keys(plan(t, load(t, dir), nil))["load.d"]; k != k1 {
		t.Error("a hidden file changed the key")
	}
	if err := os.Rename(filepath.Join(dir, "parts/p2.svm"), filepath.Join(dir, "parts/p3.svm")); err != nil {
		t.Fatal(err)
	}
	if k := keys(plan(t, load(t, dir), nil))["load.d"]; k == k1 {
		t.Error("renaming a file kept the key")
	}
}

// Sources that are not regular files are refused rather than read: /dev/zero never
// ends. Symbolic links to files are followed.
func TestSourceKinds(t *testing.T) {
	dir := pipelineDir(t, map[string]string{
		"main.hcl":    "load \"dev\" {\n  source = \"/dev/zero\"\n}\nload \"links\" {\n  source = \"parts\"\n}\n",
		"real/p1.svm": data,
	})
	if err := os.MkdirAll(filepath.Join(dir, "parts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "real", "p1.svm"), filepath.Join(dir, "parts", "p1.svm")); err != nil {
		t.Skip("no symbolic links:", err)
	}
	_, diags := Build(context.Background(), load(t, dir), Options{})
	if len(diags) != 1 || diags[0].Summary != "Source not found" || !strings.Contains(diags[0].Detail, "not a regular file") {
		t.Errorf("diagnostics: %s", diags.Error())
	}
}

func TestRenamedStageCached(t *testing.T) {
	dir := pipelineDir(t, withData(map[string]string{"main.hcl": basePipeline}))
	st := openState(t)
	recordApply(t, st, plan(t, load(t, dir), st))
	renamed := strings.Replace(basePipeline, `train "other" {`, `train "other2" {`, 1)
	writeFiles(t, dir, map[string]string{"main.hcl": renamed})
	p := plan(t, load(t, dir), st)
	s := p.Stage("train.other2")
	if s == nil {
		t.Fatal("no train.other2")
	}
	if s.Action != Cached || s.Reason != "same configuration as train.other" {
		t.Errorf("train.other2: %s %q, want cached with the same configuration as train.other", s.Action, s.Reason)
	}
	if s.Prior == nil || s.Prior.Address != "train.other" {
		t.Errorf("Prior = %+v, want train.other's record", s.Prior)
	}
	if p.HasChanges() {
		t.Errorf("changes after a rename: %v", actions(p))
	}
}

// Bumping an operator's version reruns its stages with that reason, and their
// dependents.
func TestOperatorVersionChange(t *testing.T) {
	dir := pipelineDir(t, withData(map[string]string{"main.hcl": basePipeline}))
	st := openState(t)
	recordApply(t, st, plan(t, load(t, dir), st))

	norm := *normalize.Schema
	norm.Version++
	reg := operators.MustRegistry(
		&operators.Operator{Schema: loadop.Schema},
		&operators.Operator{Schema: &norm},
		&operators.Operator{Schema: train.Schema},
		&operators.Operator{Schema: gridsearch.Schema},
	)
	got := actions(plan(t, loadWith(t, reg, dir), st))
	if want := fmt.Sprintf("rerun: operator normalize version changed (%d → %d)", norm.Version-1, norm.Version); got["normalize.adult"] != want {
		t.Errorf("normalize.adult: %s, want %s", got["normalize.adult"], want)
	}
	if want := "rerun: upstream normalize.adult changed"; got["train.base"] != want {
		t.Errorf("train.base: %s", got["train.base"])
	}
	if got["load.adult"] != "cached" {
		t.Errorf("load.adult: %s", got["load.adult"])
	}
}

// A stage reading an upstream value known only after apply (train.final reads
// grid_search.tune.best) keeps its key while nothing upstream changes.
func TestUnknownUpstreamValues(t *testing.T) {
	dir := pipelineDir(t, withData(map[string]string{"main.hcl": basePipeline}))
	p := plan(t, load(t, dir), nil)
	lr := p.Stage("train.final").Params["learning_rate"]
	if lr.Canon != "?" || lr.Display != "(known after apply)" {
		t.Errorf("learning_rate from grid_search = %+v, want unknown", lr)
	}
	if k := keys(plan(t, load(t, dir), nil)); k["train.final"] != p.Stage("train.final").Key {
		t.Error("key of a stage with unknown inputs is not stable")
	}
}

func TestPlanStructure(t *testing.T) {
	p := plan(t, load(t, pipelineDir(t, withData(map[string]string{"main.hcl": basePipeline}))), nil)
	var order []string
	for _, s := range p.Stages {
		order = append(order, s.Address)
	}
	want := []string{"load.adult", "normalize.adult", "train.base", "grid_search.tune", "train.final", "load.other", "train.other"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("order = %v, want %v", order, want)
	}
	deps := map[string][]string{
		"load.adult":       {},
		"normalize.adult":  {"load.adult"},
		"grid_search.tune": {"train.base"},
		"train.final":      {"grid_search.tune", "normalize.adult"},
	}
	for addr, d := range deps {
		if got := p.Stage(addr).Deps; !reflect.DeepEqual(append([]string{}, got...), d) {
			t.Errorf("%s deps = %v, want %v", addr, got, d)
		}
	}
	for _, s := range p.Stages {
		if s.Action != Run || s.Reason != "never ran" {
			t.Errorf("%s: %s %q on a pipeline that never ran", s.Address, s.Action, s.Reason)
		}
		if len(s.Upstream) != len(s.Deps) {
			t.Errorf("%s: upstream %v vs deps %v", s.Address, s.Upstream, s.Deps)
		}
		for _, d := range s.Deps {
			if s.Upstream[d] != p.Stage(d).Key {
				t.Errorf("%s: upstream key of %s is not its key", s.Address, d)
			}
		}
	}
	if run, rerun, cached := p.Counts(); run != 7 || rerun != 0 || cached != 0 {
		t.Errorf("Counts = %d, %d, %d", run, rerun, cached)
	}
	if src := p.Stage("load.adult").Sources; len(src) != 1 || len(src["source"]) != 64 {
		t.Errorf("load.adult sources = %v, want one digest", src)
	}
}
