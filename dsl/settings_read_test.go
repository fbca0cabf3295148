package dsl

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReadSettings reads the stratus block alone, whatever else the pipeline
// holds (blocks of operators it does not know, variables without values).
func TestReadSettings(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if s, diags := ReadSettings(dir); s != nil || diags.HasErrors() {
		t.Fatalf("no files: %v, %v", s, diags)
	}
	write("main.hcl", `
variable "x" {}
no_such_operator "a" { anything = var.x }
`)
	if s, diags := ReadSettings(dir); s != nil || diags.HasErrors() {
		t.Fatalf("no stratus block: %v, %v", s, diags)
	}
	write("settings.hcl", `
stratus {
  state = "s3://team-bucket/stratus/p"
}
`)
	s, diags := ReadSettings(dir)
	if diags.HasErrors() || s == nil || s.State == nil {
		t.Fatalf("ReadSettings = %v, %v", s, diags)
	}
	if s.State.IsLocal() || s.State.Bucket != "team-bucket" || s.State.Prefix != "stratus/p" {
		t.Fatalf("state = %+v", s.State)
	}
	write("settings.hcl", `
stratus {
  state = "s3://Bad_Bucket/p"
}
`)
	if _, diags := ReadSettings(dir); !diags.HasErrors() || diags[0].Subject == nil || filepath.Base(diags[0].Subject.Filename) != "settings.hcl" {
		t.Fatalf("a bad bucket: %v", diags)
	}
}
