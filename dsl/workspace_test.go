package dsl_test

import (
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/dsl"
)

func TestStratusWorkspace(t *testing.T) {
	files := map[string]string{"main.hcl": `
locals {
  name = "run-${stratus.workspace}"
}
output "name" { value = local.name }
`}
	for _, ws := range []string{"", "dev"} {
		_, ev := loadOK(t, files, func(o *dsl.LoadOptions) { o.Workspace = ws })
		v, diags := ev.Value("output.name")
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		want := "run-default"
		if ws != "" {
			want = "run-" + ws
		}
		if got := v.AsString(); got != want {
			t.Errorf("workspace %q: output = %q, want %q", ws, got, want)
		}
	}
}

func TestStratusReferenceInvalid(t *testing.T) {
	_, diags := loadErrs(t, map[string]string{"main.hcl": `
output "x" { value = stratus.workspaces }
`})
	if len(diags) != 1 || !strings.Contains(diags[0].Detail, "stratus.workspace") || diags[0].Subject == nil || diags[0].Subject.Start.Line != 2 {
		t.Fatalf("diags = %v", diags)
	}
}

func TestInWorkspace(t *testing.T) {
	cfg, _ := loadOK(t, map[string]string{"main.hcl": ``}, func(o *dsl.LoadOptions) { o.Workspace = "dev" })
	if got := cfg.InWorkspace("s3://b/p/"); got != "s3://b/p/workspaces/dev" {
		t.Errorf("InWorkspace = %s", got)
	}
	cfg, _ = loadOK(t, map[string]string{"main.hcl": ``})
	if got := cfg.InWorkspace("s3://b/p"); got != "s3://b/p" {
		t.Errorf("default InWorkspace = %s", got)
	}
}
