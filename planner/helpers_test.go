package planner

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/builtin"
	"github.com/stratus-ml/stratus/state"
)

type stateStore = state.Store

// writeFiles writes name → content under dir, creating directories.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// pipelineDir writes files into a new temporary directory and returns it.
func pipelineDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	return dir
}

// load loads the pipeline in dir with the built-in operators, failing on errors.
func load(t testing.TB, dir string, vars ...string) *dsl.Config {
	t.Helper()
	return loadWith(t, builtin.Registry(), dir, vars...)
}

func loadWith(t testing.TB, reg *operators.Registry, dir string, vars ...string) *dsl.Config {
	t.Helper()
	cfg, diags := dsl.Load(dir, dsl.LoadOptions{Registry: reg, Vars: vars})
	if diags.HasErrors() {
		t.Fatalf("load %s: %s", dir, diagText(cfg, diags))
	}
	return cfg
}

// plan builds cfg against st (nil for a pipeline that never ran), failing on errors.
func plan(t testing.TB, cfg *dsl.Config, st *state.Store) *Plan {
	t.Helper()
	opts := Options{}
	if st != nil {
		opts.State = st
	}
	p, diags := Build(context.Background(), cfg, opts)
	if diags.HasErrors() {
		t.Fatalf("plan: %s", diagText(cfg, diags))
	}
	return p
}

// openState opens a state store in a new temporary directory.
func openState(t testing.TB) *state.Store {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), ".stratus", "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// recordApply records every stage of p as completed, the way apply records a stage
// it ran: the plan's key, parameters, upstream keys and source digests.
func recordApply(t testing.TB, st *state.Store, p *Plan) {
	t.Helper()
	now := time.Now()
	for _, s := range p.Stages {
		err := st.PutStage(&state.StageRecord{
			Address: s.Address, Operator: s.Operator, Version: s.Version, Key: s.Key,
			Params: s.Params, Upstream: s.Upstream, Sources: s.Sources,
			Started: now, Finished: now, Backend: "local",
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// keys returns each stage's cache key by address.
func keys(p *Plan) map[string]string {
	out := map[string]string{}
	for _, s := range p.Stages {
		out[s.Address] = s.Key
	}
	return out
}

// actions returns "action: reason" (or the action) by address.
func actions(p *Plan) map[string]string {
	out := map[string]string{}
	for _, s := range p.Stages {
		a := string(s.Action)
		if s.Reason != "" {
			a += ": " + s.Reason
		}
		out[s.Address] = a
	}
	return out
}

func diagText(cfg *dsl.Config, diags hcl.Diagnostics) string {
	var files map[string]*hcl.File
	if cfg != nil {
		files = cfg.Files
	}
	var b []byte
	w := &byteWriter{&b}
	_ = hcl.NewDiagnosticTextWriter(w, files, 100, false).WriteDiagnostics(diags)
	return string(b)
}

type byteWriter struct{ b *[]byte }

func (w *byteWriter) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }
