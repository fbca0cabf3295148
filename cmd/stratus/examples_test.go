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

// exampleTree copies the repository's pipelines into a temporary directory beside a
// testdata directory with the files they read, so tests never see (or leave) the
// state of a local apply. Without criteo, testdata lacks criteo-synth.tsv.
func exampleTree(t *testing.T, criteo bool) string {
	t.Helper()
	root := t.TempDir()
	err := filepath.WalkDir(filepath.Join("..", "..", "pipelines"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join("..", "..", "pipelines"), p)
		if d.IsDir() {
			if d.Name() == ".stratus" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(root, "pipelines", rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(root, "pipelines", rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	td := filepath.Join(root, "testdata")
	if err := os.MkdirAll(td, 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{"a9a", "a9a.t"}
	if criteo {
		names = append(names, "criteo-synth.tsv")
	}
	for _, n := range names {
		abs, _ := filepath.Abs(filepath.Join("..", "..", "testdata", n))
		if err := os.Symlink(abs, filepath.Join(td, n)); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(root, "pipelines")
}

// TestExamplePipelines validates, plans and graphs every example pipeline through
// the CLI.
func TestExamplePipelines(t *testing.T) {
	pipelines := exampleTree(t, true)
	tests := []struct {
		dir    string
		vars   []string
		stages []string
	}{
		{"a9a", nil, []string{"load.adult", "normalize.adult", "train.lr"}},
		{"a9a-tune", nil, []string{"load.adult", "normalize.adult", "train.base", "grid_search.tune", "train.final"}},
		{"criteo", nil, []string{"module.prep.load.clicks", "module.prep.normalize.clicks", "train.ctr"}},
		// Another data file, by absolute path.
		{"criteo", []string{"-var", "data=" + criteoTSV(t, 20)},
			[]string{"module.prep.load.clicks", "module.prep.normalize.clicks", "train.ctr"}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			dir := filepath.Join(pipelines, tt.dir)
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
			// The summary is the last line; the estimate follows the counts.
			body := strings.TrimSuffix(out, "\n")
			last := body[strings.LastIndex(body, "\n")+1:]
			if want := fmt.Sprintf("Plan: %d to run, 0 to rerun, 0 cached. Estimated: ", len(tt.stages)); !strings.HasPrefix(last, want) {
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

// Without the criteo pipeline's data file, plan says which file is missing, at the
// module's argument.
func TestCriteoWithoutData(t *testing.T) {
	dir := filepath.Join(exampleTree(t, false), "criteo")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"plan", dir}, nil, &stdout, &stderr); code != 1 {
		t.Fatalf("plan: exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "Error: Source not found") || !strings.Contains(stderr.String(), "/testdata/criteo-synth.tsv\"") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}
