package load_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/executortest"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
)

// stageError applies, expects the apply to fail, and returns the stage's
// error.
func stageError(t *testing.T, h *runtimetest.Harness, stage string) (string, *executortest.Recorder) {
	t.Helper()
	sum, rec, err := h.Apply()
	if err == nil {
		t.Fatalf("apply succeeded; want %s to fail", stage)
	}
	for _, s := range sum.Stages {
		if s.Address == stage {
			if s.Action != "failed" {
				t.Fatalf("%s: %s, want failed", stage, s.Action)
			}
			return s.Error, rec
		}
	}
	t.Fatalf("no stage %s in the summary", stage)
	return "", nil
}

// a9aLines returns the first n lines of a9a.
func a9aLines(t *testing.T, n int) []string {
	data, err := os.ReadFile(testdata(t, "a9a"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(string(data), "\n")[:n]
}

// TestLoadFailNamesLine puts one bad line deep into a file cut into eight
// ranges: the stage fails with the object, the file's line number, the
// column and the text.
func TestLoadFailNamesLine(t *testing.T) {
	lines := a9aLines(t, 5000)
	lines[4320] = "+1 3:1 x:2 9:1\n" // line 4321
	h := runtimetest.New(t, `
load "bad" {
  source = "data/bad.svm"
  tasks  = 8
}
`)
	h.Write("data/bad.svm", strings.Join(lines, ""))
	msg, _ := stageError(t, h, "load.bad")
	for _, want := range []string{`data/bad.svm:4321:8: invalid feature index "x:2"`, `on_error = "skip"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "attempt 2") {
		t.Errorf("a bad line should fail the stage at once, not be retried:\n%s", msg)
	}

	// Criteo: a row with the wrong number of columns.
	h = runtimetest.New(t, `
load "bad" {
  source = "clicks.tsv"
  format = "criteo"
}
`)
	good := "0" + strings.Repeat("\t1", 13) + strings.Repeat("\tab", 26) + "\n"
	h.Write("clicks.tsv", good+good+"1\t2\t3\n"+good)
	msg, _ = stageError(t, h, "load.bad")
	if !strings.Contains(msg, "clicks.tsv:3:1: wrong number of columns") || !strings.Contains(msg, "found 3 tab-separated columns, want 40") {
		t.Errorf("criteo error:\n%s", msg)
	}
}

// TestLoadSkipCounts skips bad lines of several kinds and counts them per
// reason, in the manifest and in a note.
func TestLoadSkipCounts(t *testing.T) {
	lines := a9aLines(t, 3000)
	bad := map[int]string{
		10:   "x 1:1\n",         // invalid label
		700:  "+1 0:1\n",        // index 0
		1500: "+1 1:nan 2:1\n",  // NaN
		2200: "-1 2:1 2:1\n",    // duplicate
		2999: "maybe 4:1 5:1\n", // invalid label
	}
	for i, l := range bad {
		lines[i] = l
	}
	lines = append(lines, "# a comment\n", "\n")
	h := runtimetest.New(t, `
load "skip" {
  source   = "data.svm"
  on_error = "skip"
  tasks    = 3
}
`)
	h.Write("data.svm", strings.Join(lines, ""))
	_, rec := h.MustApply()
	m := h.Dataset(h.Output("load.skip").GetAttr("train"))
	if m.Rows != 3000-5 || m.Source.Lines != 3002 {
		t.Errorf("%d rows of %d lines, want 2995 of 3002", m.Rows, m.Source.Lines)
	}
	want := map[string]int64{dataset.ReasonLabel: 2, dataset.ReasonIndex: 1, dataset.ReasonNonFinite: 1, dataset.ReasonDuplicate: 1}
	if fmt.Sprint(m.Source.Skipped) != fmt.Sprint(want) {
		t.Errorf("skipped %v, want %v", m.Source.Skipped, want)
	}
	notes := strings.Join(rec.Notes("load.skip"), "\n")
	for _, w := range []string{"skipped 5 bad line(s) of 3002", "2 invalid label", `data.svm:11:1: invalid label "x"`, `data.svm:1501:4: NaN or Inf value "1:nan"`} {
		if !strings.Contains(notes, w) {
			t.Errorf("notes do not say %q:\n%s", w, notes)
		}
	}
	var metric float64
	for _, e := range rec.Events() {
		if e.Type == executor.StageEvent && e.Metrics["skipped_lines"] > 0 {
			metric = e.Metrics["skipped_lines"]
		}
	}
	if metric != 5 {
		t.Errorf("skipped_lines metric %g, want 5", metric)
	}
}

// TestLoadMissingAndEmpty checks inputs that hold nothing to load.
func TestLoadMissingAndEmpty(t *testing.T) {
	t.Run("missing at plan", func(t *testing.T) {
		h := runtimetest.New(t, `
load "x" {
  source = "data/nope.svm"
}
`)
		_, diags := h.Plan()
		if !diags.HasErrors() || !strings.Contains(diags.Error(), "nope.svm") {
			t.Errorf("plan diagnostics: %v", diags)
		}
	})
	t.Run("missing at apply", func(t *testing.T) {
		// The file disappears between plan and apply: the coordinator
		// reports it before any wave starts.
		h := runtimetest.New(t, `
load "x" {
  source      = "data/a.svm"
  test_source = "data/b.svm"
}
`)
		h.Write("data/a.svm", "+1 1:1\n")
		h.Write("data/b.svm", "+1 1:1\n")
		p := h.MustPlan()
		if err := os.Remove(filepath.Join(h.Dir, "data", "b.svm")); err != nil {
			t.Fatal(err)
		}
		sum, rec, err := h.ApplyPlan(p)
		if err == nil {
			t.Fatal("apply succeeded without its test file")
		}
		msg := sum.Stages[0].Error
		if !strings.Contains(msg, "test_source") || !strings.Contains(msg, "data/b.svm") || !strings.Contains(msg, "check the path") {
			t.Errorf("error: %s", msg)
		}
		if n := rec.Count(executor.WaveStarted, ""); n != 0 {
			t.Errorf("%d wave(s) started before the missing file was reported", n)
		}
	})
	for _, c := range []struct{ name, content, want string }{
		{"empty", "", `source "data.svm" holds no data: data.svm is empty`},
		{"comments", "# nothing\n\n   \n# here\n", `source "data.svm" holds no rows: 4 line(s), all blank, comments or a header`},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := runtimetest.New(t, `
load "x" {
  source = "data.svm"
}
`)
			h.Write("data.svm", c.content)
			msg, _ := stageError(t, h, "load.x")
			if !strings.Contains(msg, c.want) {
				t.Errorf("error %q does not say %q", msg, c.want)
			}
		})
	}
	t.Run("all skipped", func(t *testing.T) {
		h := runtimetest.New(t, `
load "x" {
  source   = "data.svm"
  on_error = "skip"
}
`)
		h.Write("data.svm", "two 1:1\nthree 1:1\n")
		msg, _ := stageError(t, h, "load.x")
		if !strings.Contains(msg, "2 line(s), every one bad and skipped (2 invalid label)") {
			t.Errorf("error: %s", msg)
		}
	})
	t.Run("csv without label column", func(t *testing.T) {
		h := runtimetest.New(t, `
load "x" {
  source = "data.csv"
  format = "csv"
  label  = "y"
}
`)
		h.Write("data.csv", "a,b,c\n1,2,3\n")
		msg, rec := stageError(t, h, "load.x")
		if !strings.Contains(msg, `data.csv: csv: label column "y" is not in the header (columns: a, b, c)`) {
			t.Errorf("error: %s", msg)
		}
		if n := rec.Count(executor.WaveStarted, ""); n != 0 {
			t.Errorf("%d wave(s) started", n)
		}
	})
}

// TestLoadSchemaChecks: arguments that do not apply to the format are
// reported at plan time.
func TestLoadSchemaChecks(t *testing.T) {
	h := runtimetest.New(t, `
load "x" {
  source    = "data.svm"
  delimiter = ";"
  header    = false
  ignore    = ["id"]
}
`)
	h.Write("data.svm", "+1 1:1\n")
	_, diags := h.Plan()
	var all []string
	for _, d := range diags {
		all = append(all, d.Detail)
	}
	text := strings.Join(all, "\n")
	for _, want := range []string{"delimiter applies to format csv only", "header applies to format csv only", "ignore applies to format csv, jsonl or parquet only"} {
		if !strings.Contains(text, want) {
			t.Errorf("diagnostics do not say %q: %s", want, text)
		}
	}
}

// TestLoadLongLine: a 10 MB line (one row of a million features) in the
// middle of a file cut into ranges loads as one row; a line of non-UTF-8
// bytes is a bad line like any other.
func TestLoadLongLine(t *testing.T) {
	var long strings.Builder
	long.WriteString("+1")
	for i := 1; i <= 1_000_000; i++ {
		fmt.Fprintf(&long, " %d:1", i)
	}
	long.WriteString("\n")
	if long.Len() < 8<<20 {
		t.Fatalf("long line is only %d bytes", long.Len())
	}
	lines := a9aLines(t, 2000)
	content := strings.Join(lines[:1000], "") + long.String() + "-1 3:\xff\xfe\n" + strings.Join(lines[1000:], "")
	h := runtimetest.New(t, `
load "long" {
  source   = "data.svm"
  tasks    = 6
  on_error = "skip"
}
`)
	h.Write("data.svm", content)
	h.MustApply()
	m := h.Dataset(h.Output("load.long").GetAttr("train"))
	if m.Rows != 2001 || m.Features != 1_000_000 || m.Source.Skipped[dataset.ReasonValue] != 1 {
		t.Errorf("%d rows, %d features, skipped %v; want 2001 rows, 1e6 features, 1 invalid value", m.Rows, m.Features, m.Source.Skipped)
	}
	rows := h.Rows(m)
	if len(rows[1000].Indices) != 1_000_000 || len(rows[999].Indices) > 20 {
		t.Errorf("row 1000 has %d entries", len(rows[1000].Indices))
	}
}
