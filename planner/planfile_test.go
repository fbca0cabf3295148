package planner

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/operators/builtin"
)

const smallPipeline = `
variable "epochs" {
  default = 1
}

load "d" {
  source = "d.svm"
}

train "t" {
  input  = load.d
  epochs = var.epochs
}
`

// savePlan plans dir against the state at stateDir and saves the plan file.
func savePlan(t *testing.T, dir string, st *stateStore, opts SaveOptions) (*Plan, string) {
	t.Helper()
	cfg, diags := dsl.Load(dir, dsl.LoadOptions{Registry: builtin.Registry(), Vars: opts.Vars, VarFiles: opts.VarFiles})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	p := plan(t, cfg, st)
	f, err := p.ToFile(opts)
	if err != nil {
		t.Fatal(err)
	}
	fn := filepath.Join(t.TempDir(), "saved.plan")
	if err := f.Write(fn); err != nil {
		t.Fatal(err)
	}
	return p, fn
}

// checkAgainst re-plans the saved plan's pipeline, as apply will, and checks it.
func checkAgainst(t *testing.T, fn string, st *stateStore) error {
	t.Helper()
	f, err := ReadFile(fn)
	if err != nil {
		t.Fatal(err)
	}
	cfg, diags := dsl.Load(f.Dir, dsl.LoadOptions{Registry: builtin.Registry(), Vars: f.Vars, VarFiles: f.VarFiles})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	return f.Check(plan(t, cfg, st))
}

func wantStale(t *testing.T, err error, reason string) {
	t.Helper()
	var se *StaleError
	if !errors.As(err, &se) {
		t.Fatalf("Check = %v, want a StaleError", err)
	}
	if !strings.Contains(se.Reason, reason) {
		t.Errorf("stale reason %q does not contain %q", se.Reason, reason)
	}
	if !strings.Contains(err.Error(), "Run stratus plan again") {
		t.Errorf("error %q does not say what to do", err)
	}
}

func TestPlanFileRoundTrip(t *testing.T) {
	dir := pipelineDir(t, map[string]string{"main.hcl": smallPipeline, "d.svm": data, "v.vars": "epochs = 3\n"})
	opts := SaveOptions{
		Vars:     []string{"epochs=2"},
		VarFiles: []string{filepath.Join(dir, "v.vars")},
		Env:      map[string]string{"STRATUS_VAR_epochs": "4"},
	}
	p, fn := savePlan(t, dir, nil, opts)
	f, err := ReadFile(fn)
	if err != nil {
		t.Fatal(err)
	}
	if f.FormatVersion != FileFormat || f.Serial != 0 || time.Since(f.CreatedAt) > time.Minute {
		t.Errorf("header: %+v", f)
	}
	if abs, _ := filepath.Abs(dir); f.Dir != abs {
		t.Errorf("Dir = %s, want %s", f.Dir, abs)
	}
	if len(f.Vars) != 1 || f.Vars[0] != "epochs=2" || len(f.VarFiles) != 1 || !filepath.IsAbs(f.VarFiles[0]) || f.Env["STRATUS_VAR_epochs"] != "4" {
		t.Errorf("inputs not kept: %+v %+v %+v", f.Vars, f.VarFiles, f.Env)
	}
	// Pipeline files and the variables file, by absolute path; no pseudo-files.
	if len(f.Files) != 2 {
		t.Errorf("Files = %v, want main.hcl and v.vars", f.Files)
	}
	for name, sum := range f.Files {
		if !filepath.IsAbs(name) || len(sum) != 64 {
			t.Errorf("file %s: %s", name, sum)
		}
	}
	if len(f.Stages) != len(p.Stages) {
		t.Fatalf("%d stages saved, plan has %d", len(f.Stages), len(p.Stages))
	}
	for i, s := range f.Stages {
		q := p.Stages[i]
		if s.Address != q.Address || s.Key != q.Key || s.Action != q.Action {
			t.Errorf("stage %d: %+v, plan has %s %s %s", i, s, q.Address, q.Key, q.Action)
		}
	}
	if err := checkAgainst(t, fn, nil); err != nil {
		t.Errorf("fresh plan: %v", err)
	}
}

func TestPlanFileStale(t *testing.T) {
	t.Run("pipeline file edited", func(t *testing.T) {
		dir := pipelineDir(t, map[string]string{"main.hcl": smallPipeline, "d.svm": data})
		_, fn := savePlan(t, dir, nil, SaveOptions{})
		writeFiles(t, dir, map[string]string{"main.hcl": smallPipeline + "\n# a comment\n"})
		wantStale(t, checkAgainst(t, fn, nil), "the configuration changed since the plan was made ("+filepath.Join(mustAbs(t, dir), "main.hcl")+")")
	})
	t.Run("pipeline file added", func(t *testing.T) {
		dir := pipelineDir(t, map[string]string{"main.hcl": smallPipeline, "d.svm": data})
		_, fn := savePlan(t, dir, nil, SaveOptions{})
		writeFiles(t, dir, map[string]string{"more.hcl": "locals {}\n"})
		wantStale(t, checkAgainst(t, fn, nil), "more.hcl")
	})
	t.Run("variables file edited", func(t *testing.T) {
		dir := pipelineDir(t, map[string]string{"main.hcl": smallPipeline, "d.svm": data, "v.vars": "epochs = 3\n"})
		_, fn := savePlan(t, dir, nil, SaveOptions{VarFiles: []string{filepath.Join(dir, "v.vars")}})
		writeFiles(t, dir, map[string]string{"v.vars": "epochs = 4\n"})
		wantStale(t, checkAgainst(t, fn, nil), "v.vars")
	})
	t.Run("stage recorded by an apply", func(t *testing.T) {
		dir := pipelineDir(t, map[string]string{"main.hcl": smallPipeline, "d.svm": data})
		st := openState(t)
		p, fn := savePlan(t, dir, st, SaveOptions{})
		if err := checkAgainst(t, fn, st); err != nil {
			t.Fatalf("fresh plan: %v", err)
		}
		recordApply(t, st, &Plan{Stages: p.Stages[:1]})
		wantStale(t, checkAgainst(t, fn, st), "the state changed since the plan was made (serial 0, now 1)")
	})
	t.Run("stage removed from the state", func(t *testing.T) {
		dir := pipelineDir(t, map[string]string{"main.hcl": smallPipeline, "d.svm": data})
		st := openState(t)
		recordApply(t, st, plan(t, load(t, dir), st))
		_, fn := savePlan(t, dir, st, SaveOptions{})
		if _, err := st.DeleteStage("train.t"); err != nil {
			t.Fatal(err)
		}
		wantStale(t, checkAgainst(t, fn, st), "serial 2, now 3")
	})
	t.Run("source content changed", func(t *testing.T) {
		dir := pipelineDir(t, map[string]string{"main.hcl": smallPipeline, "d.svm": data})
		_, fn := savePlan(t, dir, nil, SaveOptions{})
		writeFiles(t, dir, map[string]string{"d.svm": data + data})
		wantStale(t, checkAgainst(t, fn, nil), "load.d would now be run with a different key")
	})
	t.Run("variable from the command line differs", func(t *testing.T) {
		dir := pipelineDir(t, map[string]string{"main.hcl": smallPipeline, "d.svm": data})
		_, fn := savePlan(t, dir, nil, SaveOptions{Vars: []string{"epochs=2"}})
		f, err := ReadFile(fn)
		if err != nil {
			t.Fatal(err)
		}
		p := plan(t, load(t, dir, "epochs=3"), nil)
		wantStale(t, f.Check(p), "train.t would now be run with a different key")
	})
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		fn := filepath.Join(dir, name)
		if err := os.WriteFile(fn, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return fn
	}
	tests := []struct {
		fn   string
		want string
	}{
		{filepath.Join(dir, "missing.plan"), "read plan:"},
		{write("text.plan", "not json"), "is not a Stratus plan file"},
		{write("other.json", `{"stages": []}`), "is not a Stratus plan file"},
		{write("future.plan", `{"format_version": 99}`), "is a plan of format 99; this stratus reads format 1"},
	}
	for _, tt := range tests {
		_, err := ReadFile(tt.fn)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ReadFile(%s) = %v, want an error containing %q", filepath.Base(tt.fn), err, tt.want)
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
