package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestApplyGridSearchAndPlot applies a small grid search on a9a through the CLI (the
// plain progress lines show the trials), then plots the grid search's trials and
// the base train stage's one curve.
func TestApplyGridSearchAndPlot(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on a9a")
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	dir := t.TempDir()
	src := `
load "adult" {
  source      = "` + filepath.ToSlash(filepath.Join(root, "testdata", "a9a")) + `"
  test_source = "` + filepath.ToSlash(filepath.Join(root, "testdata", "a9a.t")) + `"
}
normalize "adult" {
  input  = load.adult
  method = "min_max"
}
train "base" {
  input         = normalize.adult
  workers       = 2
  epochs        = 3
  eval_interval = "100ms"
}
grid_search "tune" {
  train        = train.base
  grid         = { learning_rate = [0.05, 0.5, 50] }
  max_parallel = 3
  early_stop {
    rule        = "threshold"
    max_logloss = 1.5
  }
}
output "best_lr" { value = grid_search.tune.best.params.learning_rate }
`
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI("apply", "-auto-approve", dir)
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`grid_search\.tune: trial t-[0-9a-f]{8}  QUEUED  learning_rate=0\.05`),
		regexp.MustCompile(`grid_search\.tune: trial t-[0-9a-f]{8}  RUNNING  learning_rate=0\.5`),
		regexp.MustCompile(`grid_search\.tune: trial t-[0-9a-f]{8}  STOPPED \(diverged\)  learning_rate=50`),
		regexp.MustCompile(`grid_search\.tune: results by test_logloss, best first:\n +TRIAL +LEARNING_RATE +STATUS`),
		regexp.MustCompile(`best_lr = 0\.05|best_lr = 0\.5`),
	} {
		if !want.MatchString(out) {
			t.Errorf("apply output lacks %s:\n%s", want, out)
		}
	}

	svg := filepath.Join(t.TempDir(), "tune.svg")
	code, out, errs = runCLI("plot", "grid_search.tune", "-o", svg, "-dir", dir)
	if code != 0 {
		t.Fatalf("plot: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "3 curves; best t-") {
		t.Errorf("plot said %q", out)
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	if !strings.HasPrefix(doc, "<?xml") || !strings.Contains(doc, "<svg") {
		t.Fatalf("%s is not an SVG", svg)
	}
	for _, want := range []string{"learning_rate=0.05", "learning_rate=0.5", "learning_rate=50", "(best)", "(STOPPED: diverged)", "test log loss"} {
		if !strings.Contains(doc, want) {
			t.Errorf("plot lacks %q", want)
		}
	}

	pngFile := filepath.Join(t.TempDir(), "base.png")
	if code, out, errs = runCLI("plot", "train.base", "-o", pngFile, "-dir", dir); code != 0 || !strings.Contains(out, "(1 curve)") {
		t.Fatalf("plot train.base: exit %d\n%s%s", code, out, errs)
	}
	f, err := os.ReadFile(pngFile)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(f))
	if err != nil {
		t.Fatalf("%s: %v", pngFile, err)
	}
	if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 300 {
		t.Errorf("image is %v", b)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"plot", "grid_search.nope", "-o", svg, "-dir", dir}, "no evaluations recorded for grid_search.nope; train and grid_search stages in the state: grid_search.tune, train.base"},
		{[]string{"plot", "grid_search.tune", "-o", filepath.Join(dir, "x.gif"), "-dir", dir}, "give a file ending in .png, .svg, .pdf"},
		{[]string{"plot", "grid_search.tune", "-dir", dir}, "give the image file to write"},
		{[]string{"plot", "train.base", "-o", svg, "-dir", t.TempDir()}, "the pipeline has not been applied"},
	} {
		code, out, errs := runCLI(c.args...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %q %q; want an error with %q", c.args, code, out, errs, c.want)
		}
	}
}
