package main

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlanSolverIsApplied: the solver plan names for a train stage (solver
// "auto") is the one apply trains with, as the model file records it. Each
// pipeline is planned before anything ran (the plan states a solver only when
// load's parameters decide it), applied, and planned again with the train
// stage replaced, when the cached load's record decides it: that plan must
// state one, and both must equal the model's.
func TestPlanSolverIsApplied(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary and trains five models")
	}
	bin := buildTestBinary(t)
	data := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, c := range []struct {
		name, file, load, train string
		fresh                   bool   // the fresh plan must already state it
		want                    string // the solver expected (the rule's answer)
	}{
		{"a9a", "a9a", ``, ``, false, "newton"},
		{"heart_scale", "heart_scale", ``, ``, false, "newton"},
		{"heart_scale_softmax", "heart_scale", ``, `model = "softmax"`, false, "lbfgs"},
		// 2^20 hashed slots: over the full-batch model limit, decided by
		// load's parameters before it ran.
		{"criteo_hashed", "criteo-synth.tsv", `format = "criteo"`, `epochs = 1`, true, "sgd"},
		{"sgd_args", "heart_scale", ``, `learning_rate = 0.5`, true, "sgd"},
		{"matrix_factorization", "ratings-synth.csv", `format = "ratings"`, "model = \"matrix_factorization\"\n  rank = 3", false, "als"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writePipeline(t, dir, map[string]string{
				c.file: data(c.file),
				"main.hcl": `load "d" {
  source = "` + c.file + `"
  split  = { test = 0.2, seed = 1 }
  ` + c.load + `
}
train "m" {
  input = load.d
  ` + c.train + `
}
output "model" { value = train.m.model }
`})
			run := func(args ...string) string {
				t.Helper()
				cmd := exec.Command(bin, args...)
				cmd.Dir = dir
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("stratus %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return string(out)
			}
			fresh := planSolver(t, run("plan", "-json"))
			if c.fresh && fresh.Value == nil {
				t.Errorf("the first plan does not state the solver: %+v", fresh)
			}
			run("apply", "-auto-approve", "-no-color")
			var outs map[string]string
			if err := json.Unmarshal([]byte(run("output", "-json")), &outs); err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(outs["model"])
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(u.Path)
			if err != nil {
				t.Fatal(err)
			}
			var model struct{ Solver string }
			if err := json.Unmarshal(b, &model); err != nil {
				t.Fatal(err)
			}
			if model.Solver != c.want {
				t.Errorf("the model was trained with %q; the rule gives %q", model.Solver, c.want)
			}
			if s, ok := fresh.Value.(string); ok && s != model.Solver {
				t.Errorf("the first plan said %q (%s); apply trained with %q", s, fresh.Reason, model.Solver)
			}
			if fresh.Value == nil && !strings.Contains(strings.Join(fresh.Options, " "), model.Solver) {
				t.Errorf("the first plan's options %v (%s) do not hold %q", fresh.Options, fresh.Reason, model.Solver)
			}
			again := planSolver(t, run("plan", "-json", "-replace=train.m"))
			if s, _ := again.Value.(string); s != model.Solver {
				t.Errorf("with load cached, plan said %v %v (%s); apply trained with %q", again.Value, again.Options, again.Reason, model.Solver)
			}
		})
	}
}

// planChoice is a sizing entry of plan -json.
type planChoice struct {
	Param   string   `json:"param"`
	Value   any      `json:"value"`
	Options []string `json:"options"`
	Reason  string   `json:"reason"`
}

// planSolver is train.m's solver entry in a plan's JSON.
func planSolver(t *testing.T, out string) planChoice {
	t.Helper()
	var p struct {
		Stages []struct {
			Address string       `json:"address"`
			Sizing  []planChoice `json:"sizing"`
		} `json:"stages"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("plan -json: %v\n%s", err, out)
	}
	for _, s := range p.Stages {
		for _, c := range s.Sizing {
			if s.Address == "train.m" && c.Param == "solver" {
				return c
			}
		}
	}
	t.Fatalf("plan -json has no solver for train.m:\n%s", out)
	return planChoice{}
}
