package dsl_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/operators/builtin"
)

var registry = builtin.Registry()

func writeDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loadOK loads a pipeline that must have no errors, and evaluates everything.
func loadOK(t testing.TB, files map[string]string, opts ...func(*dsl.LoadOptions)) (*dsl.Config, *dsl.Evaluator) {
	t.Helper()
	cfg, diags := loadFiles(t, files, opts...)
	if diags.HasErrors() {
		t.Fatalf("load: %s", diagString(cfg, diags))
	}
	ev := cfg.NewEvaluator()
	if diags := ev.EvalAll(); diags.HasErrors() {
		t.Fatalf("evaluate: %s", diagString(cfg, diags))
	}
	return cfg, ev
}

func loadFiles(t testing.TB, files map[string]string, opts ...func(*dsl.LoadOptions)) (*dsl.Config, hcl.Diagnostics) {
	t.Helper()
	o := dsl.LoadOptions{Registry: registry}
	for _, f := range opts {
		f(&o)
	}
	return dsl.Load(writeDir(t, files), o)
}

// loadErrs loads and evaluates a pipeline and returns every error diagnostic.
func loadErrs(t testing.TB, files map[string]string, opts ...func(*dsl.LoadOptions)) (*dsl.Config, hcl.Diagnostics) {
	t.Helper()
	cfg, diags := loadFiles(t, files, opts...)
	if cfg != nil && cfg.Root != nil {
		diags = append(diags, cfg.NewEvaluator().EvalAll()...)
	}
	var errs hcl.Diagnostics
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			errs = append(errs, d)
		}
	}
	return cfg, errs
}

func withVars(vars ...string) func(*dsl.LoadOptions) {
	return func(o *dsl.LoadOptions) { o.Vars = append(o.Vars, vars...) }
}

func diagString(cfg *dsl.Config, diags hcl.Diagnostics) string {
	var b strings.Builder
	var files map[string]*hcl.File
	if cfg != nil {
		files = cfg.Files
	}
	_ = hcl.NewDiagnosticTextWriter(&b, files, 100, false).WriteDiagnostics(diags)
	return b.String()
}

// wantDiags checks that diags holds exactly the given summaries, in any order, each
// with a source range in a file whose name ends with the paired suffix ("" for no
// range).
func wantDiags(t *testing.T, cfg *dsl.Config, diags hcl.Diagnostics, want ...[2]string) {
	t.Helper()
	left := append(hcl.Diagnostics{}, diags...)
	for _, w := range want {
		found := -1
		for i, d := range left {
			if d.Summary == w[0] {
				found = i
				break
			}
		}
		if found < 0 {
			t.Errorf("no %q diagnostic in:\n%s", w[0], diagString(cfg, diags))
			continue
		}
		d := left[found]
		left = append(left[:found], left[found+1:]...)
		switch {
		case w[1] == "" && d.Subject != nil:
			t.Errorf("%q has a range %s, want none", w[0], d.Subject)
		case w[1] != "" && (d.Subject == nil || !strings.HasSuffix(d.Subject.Filename, w[1]) || d.Subject.Start.Line < 1):
			t.Errorf("%q at %v, want a range in %s", w[0], d.Subject, w[1])
		}
	}
	if len(left) > 0 {
		t.Errorf("unexpected diagnostics:\n%s", diagString(cfg, left))
	}
}

// value evaluates the node at addr.
func value(t testing.TB, ev *dsl.Evaluator, addr string) cty.Value {
	t.Helper()
	v, diags := ev.Value(addr)
	if diags.HasErrors() {
		t.Fatalf("%s: %s", addr, diags.Error())
	}
	return v
}

func wantValue(t *testing.T, ev *dsl.Evaluator, addr string, want cty.Value) {
	t.Helper()
	got := value(t, ev, addr)
	if !got.Type().Equals(want.Type()) || !got.IsWhollyKnown() || !got.Equals(want).True() {
		t.Errorf("%s = %#v, want %#v", addr, got, want)
	}
}
