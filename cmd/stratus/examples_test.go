package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// criteoTSV writes a small synthetic file in the Criteo Kaggle format: a 0/1
// label, 13 integer columns and 26 categorical columns of 8 hex digits, tab
// separated, with some fields empty (missing).
func criteoTSV(t *testing.T, rows int) string {
	t.Helper()
	var b strings.Builder
	for r := 0; r < rows; r++ {
		fields := []string{fmt.Sprint(r % 2)}
		for i := 0; i < 13; i++ {
			if (r+i)%7 == 0 {
				fields = append(fields, "")
			} else {
				fields = append(fields, fmt.Sprint((r*31+i*17)%100))
			}
		}
		for i := 0; i < 26; i++ {
			if (r+i)%11 == 0 {
				fields = append(fields, "")
			} else {
				fields = append(fields, fmt.Sprintf("%08x", uint32(r*2654435761+i*40503)))
			}
		}
		b.WriteString(strings.Join(fields, "\t") + "\n")
	}
	fn := filepath.Join(t.TempDir(), "criteo-small.tsv")
	if err := os.WriteFile(fn, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return fn
}

// TestExamplePipelines validates, plans and graphs every example pipeline through
// the CLI.
func TestExamplePipelines(t *testing.T) {
	tests := []struct {
		dir    string
		vars   []string
		stages []string
	}{
		{"a9a", nil, []string{"load.adult", "normalize.adult", "train.lr"}},
		{"a9a-tune", nil, []string{"load.adult", "normalize.adult", "train.base", "grid_search.tune", "train.final"}},
		// pipelines/criteo prefixes var.data with its directory unless it is an s3://
		// URI, so an absolute path does not work; give the file relative to it.
		{"criteo", []string{"-var", "data=" + relTo(t, filepath.Join("..", "..", "pipelines", "criteo"), criteoTSV(t, 20))},
			[]string{"module.prep.load.clicks", "module.prep.normalize.clicks", "train.ctr"}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			dir := filepath.Join("..", "..", "pipelines", tt.dir)
			var stdout, stderr bytes.Buffer
			if code := run([]string{"validate", dir}, nil, &stdout, &stderr); code != 0 {
				t.Fatalf("validate: exit %d\n%s", code, stderr.String())
			}
			if stdout.String() != "Success! The pipeline is valid.\n" || stderr.Len() > 0 {
				t.Errorf("validate printed %q, %q", stdout.String(), stderr.String())
			}
			stdout.Reset()
			args := append(append([]string{"plan", dir}, tt.vars...), "-detailed-exitcode")
			if code := run(args, nil, &stdout, &stderr); code != 2 {
				t.Fatalf("plan: exit %d, want 2 (changes)\n%s", code, stderr.String())
			}
			out := stdout.String()
			for _, s := range tt.stages {
				if !strings.Contains(out, "+ "+s+" ") {
					t.Errorf("plan does not run %s:\n%s", s, out)
				}
			}
			if want := fmt.Sprintf("Plan: %d to run, 0 to rerun, 0 cached.\n", len(tt.stages)); !strings.HasSuffix(out, want) {
				t.Errorf("plan summary: want %q in\n%s", want, out)
			}
			if stderr.Len() > 0 {
				t.Errorf("plan wrote to stderr:\n%s", stderr.String())
			}
			stdout.Reset()
			if code := run(append(append([]string{"graph", dir}, tt.vars...), "-format", "mermaid"), nil, &stdout, &stderr); code != 0 {
				t.Fatalf("graph: exit %d\n%s", code, stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), "flowchart LR\n") || strings.Count(stdout.String(), "<br/>") != len(tt.stages) {
				t.Errorf("graph:\n%s", stdout.String())
			}
			if _, err := os.Stat(filepath.Join(dir, ".stratus")); err == nil {
				t.Errorf("plan created %s/.stratus", dir)
			}
		})
	}
}

// The criteo pipeline's default data file is generated elsewhere; without it (and
// without -var data) plan says which file is missing, at the module's argument.
func TestCriteoWithoutData(t *testing.T) {
	dir := filepath.Join("..", "..", "pipelines", "criteo")
	if _, err := os.Stat(filepath.Join(dir, "..", "..", "testdata", "criteo-synth.tsv")); err == nil {
		t.Skip("testdata/criteo-synth.tsv exists")
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"plan", dir}, nil, &stdout, &stderr); code != 1 {
		t.Fatalf("plan: exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "Error: Source not found") || !strings.Contains(stderr.String(), "/testdata/criteo-synth.tsv\"") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

// relTo returns target relative to dir, both made absolute.
func relTo(t *testing.T, dir, target string) string {
	t.Helper()
	ad, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(ad, target)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}
