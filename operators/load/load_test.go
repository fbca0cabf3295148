package load_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/gen"
	"github.com/stratus-ml/stratus/dataset/manifest"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
)

// testdata returns the absolute path of a file in the repository's testdata.
func testdata(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return filepath.ToSlash(p)
}

// libsvmCounts counts the rows and positive labels of a LIBSVM file the
// plain way (every line is a row; +1 is positive).
func libsvmCounts(t testing.TB, path string) (rows, positives int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		rows++
		if fields[0] == "+1" || fields[0] == "1" {
			positives++
		}
	}
	return rows, positives
}

func TestLoadA9A(t *testing.T) {
	train, test := testdata(t, "a9a"), testdata(t, "a9a.t")
	h := runtimetest.New(t, fmt.Sprintf(`
load "adult" {
  source      = %q
  test_source = %q
}
output "rows"     { value = load.adult.rows }
output "features" { value = load.adult.features }
`, train, test))
	sum, rec := h.MustApply()
	if got := runtimetest.Int(sum.Outputs["rows"]); got != 32561+16281 {
		t.Errorf("rows = %d, want 48842", got)
	}
	if got := runtimetest.Int(sum.Outputs["features"]); got != 123 {
		t.Errorf("features = %d, want 123", got)
	}
	val := h.Output("load.adult")
	for _, c := range []struct {
		ds, path string
		rows     int64
	}{{"train", train, 32561}, {"test", test, 16281}} {
		m := h.Dataset(val.GetAttr(c.ds))
		wantRows, wantPos := libsvmCounts(t, c.path)
		if m.Rows != c.rows || wantRows != c.rows {
			t.Errorf("%s: %d rows (file has %d), want %d", c.ds, m.Rows, wantRows, c.rows)
		}
		if m.Positives != wantPos || m.Negatives != m.Rows-wantPos {
			t.Errorf("%s: %d positives, %d negatives; the file has %d positives", c.ds, m.Positives, m.Negatives, wantPos)
		}
		if m.Features != 123 || m.Format.Name != "libsvm" || m.Dataset != c.ds || m.Stage != "load.adult" {
			t.Errorf("%s: manifest %+v", c.ds, m)
		}
		if m.Source == nil || len(m.Source.Objects) != 1 || m.Source.Lines != c.rows || m.Source.Spec != c.path {
			t.Errorf("%s: source %+v", c.ds, m.Source)
		}
		rows := h.Rows(m)
		var nnz int64
		for _, r := range rows {
			nnz += int64(len(r.Indices))
		}
		if nnz != m.NNZ {
			t.Errorf("%s: partitions hold %d entries, manifest says %d", c.ds, nnz, m.NNZ)
		}
		runtimetest.CompareStats(t, c.ds, h.Stats(m), rows)
		// The rows are the file's, in order: check the first one.
		first := firstLine(t, c.path)
		want := parseOne(t, first)
		if runtimetest.RowDigests(rows[:1])[0] != runtimetest.RowDigests([]dataset.Row{want})[0] {
			t.Errorf("%s: first row %+v, want %+v (from %q)", c.ds, rows[0], want, first)
		}
	}
	notes := strings.Join(rec.Notes("load.adult"), "\n")
	if !strings.Contains(notes, "train 32561 rows") {
		t.Errorf("notes: %s", notes)
	}
}

func firstLine(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	return string(line)
}

func parseOne(t testing.TB, line string) dataset.Row {
	t.Helper()
	var r dataset.Row
	ok, err := dataset.NewLIBSVM().ParseLine([]byte(line), &r)
	if !ok || err != nil {
		t.Fatalf("parse %q: %v", line, err)
	}
	return r.Clone()
}

// TestLoadCriteoSplit loads generated Criteo TSV with a hash split, cut into
// different numbers of tasks, and checks the split is the same.
func TestLoadCriteoSplit(t *testing.T) {
	const rows = 20000
	var buf bytes.Buffer
	if _, err := gen.Generate(context.Background(), &buf, gen.Config{Rows: rows, Seed: 5, HashBits: 16}); err != nil {
		t.Fatal(err)
	}
	h := runtimetest.New(t, `
load "one" {
  source    = "clicks.tsv"
  format    = "criteo"
  hash_bits = 16
  log1p     = true
  split     = { test = 0.1, seed = 1 }
  tasks     = 1
}
load "many" {
  source          = "clicks.tsv"
  format          = "criteo"
  hash_bits       = 16
  log1p           = true
  split           = { test = 0.1, seed = 1 }
  tasks           = 7
  partition_bytes = 65536
}
load "seed2" {
  source    = "clicks.tsv"
  format    = "criteo"
  hash_bits = 16
  log1p     = true
  split     = { test = 0.1, seed = 2 }
}
`)
	h.Write("clicks.tsv", buf.String())
	h.MustApply()
	type sides struct{ train, test []string }
	get := func(stage string) (sides, *manifest.Manifest, *manifest.Manifest) {
		v := h.Output(stage)
		tr, te := h.Dataset(v.GetAttr("train")), h.Dataset(v.GetAttr("test"))
		if tr.Rows+te.Rows != rows {
			t.Errorf("%s: %d + %d rows, want %d in all", stage, tr.Rows, te.Rows, rows)
		}
		if runtimetest.Int(v.GetAttr("rows")) != rows {
			t.Errorf("%s: rows output %d", stage, runtimetest.Int(v.GetAttr("rows")))
		}
		// A binomial(20000, 0.1) is within 2000 ± 200 with overwhelming probability.
		if te.Rows < 1800 || te.Rows > 2200 {
			t.Errorf("%s: %d test rows, want about 2000", stage, te.Rows)
		}
		wantFeatures := dataset.CriteoIntColumns + 1<<16
		for _, m := range []*manifest.Manifest{tr, te} {
			if m.Features != wantFeatures || m.Format.HashBits != 16 || m.Format.HashOffset != 13 || !m.Format.Log1p || m.Split == nil || m.Split.Test != 0.1 {
				t.Errorf("%s %s: features %d, format %+v, split %+v", stage, m.Dataset, m.Features, m.Format, m.Split)
			}
		}
		trRows, teRows := h.Rows(tr), h.Rows(te)
		for _, r := range append(append([]dataset.Row(nil), trRows...), teRows...) {
			for _, i := range r.Indices {
				if int(i) >= wantFeatures {
					t.Fatalf("%s: slot %d out of range (%d features)", stage, i, wantFeatures)
				}
			}
		}
		runtimetest.CompareStats(t, stage+" train", h.Stats(tr), trRows)
		runtimetest.CompareStats(t, stage+" test", h.Stats(te), teRows)
		return sides{runtimetest.RowDigests(trRows), runtimetest.RowDigests(teRows)}, tr, te
	}
	one, oneTrain, _ := get("load.one")
	many, manyTrain, _ := get("load.many")
	seed2, _, _ := get("load.seed2")
	if strings.Join(one.test, ",") != strings.Join(many.test, ",") || strings.Join(one.train, ",") != strings.Join(many.train, ",") {
		t.Errorf("1 task and 7 tasks split differently: %d/%d test rows", len(one.test), len(many.test))
	}
	if len(manyTrain.Partitions) <= len(oneTrain.Partitions) {
		t.Errorf("7 tasks with 64 KiB partitions wrote %d partitions, 1 task %d", len(manyTrain.Partitions), len(oneTrain.Partitions))
	}
	if strings.Join(one.test, ",") == strings.Join(seed2.test, ",") {
		t.Error("seeds 1 and 2 give the same split")
	}
}

// TestLoadCSV loads two CSV files with a header (a glob), the label column
// named, an id column ignored and the string column hashed, cut into
// several tasks so that most of them start without the header.
func TestLoadCSV(t *testing.T) {
	cities := []string{"paris", "london", "new york", "lagos", "lima"}
	var files [2]strings.Builder
	var want []dataset.Row
	key := dataset.NamedColumnKey("city")
	for f := range files {
		files[f].WriteString("id,age,city,income,clicked\r\n")
		for i := 0; i < 150; i++ {
			n := f*150 + i
			age := fmt.Sprint(18 + n%50)
			income := fmt.Sprintf("%.1f", float64(n)*10.5)
			city := cities[n%len(cities)]
			label := n % 3 % 2
			r := dataset.Row{Label: float32(label)}
			if n%7 == 0 {
				age = "" // missing
			} else {
				r.Indices, r.Values = append(r.Indices, 0), append(r.Values, float32(18+n%50))
			}
			r.Indices, r.Values = append(r.Indices, 1), append(r.Values, float32(float64(n)*10.5))
			r.Indices, r.Values = append(r.Indices, 2+uint32(dataset.Hash(key, []byte(city))&255)), append(r.Values, 1)
			want = append(want, r)
			quoted := city
			if strings.Contains(city, " ") {
				quoted = `"` + city + `"`
			}
			fmt.Fprintf(&files[f], "%d,%s,%s,%s,%d\r\n", n, age, quoted, income, label)
		}
	}
	h := runtimetest.New(t, `
load "people" {
  source    = "data/part-*.csv"
  format    = "csv"
  label     = "clicked"
  ignore    = ["id"]
  hash_bits = 8
  tasks     = 5
}
load "logged" {
  source      = "data/part-1.csv"
  test_source = "data/part-2.csv"
  format      = "csv"
  label       = "clicked"
  ignore      = ["id"]
  categorical = ["city"]
  hash_bits   = 8
  log1p       = true
}
`)
	h.Write("data/part-1.csv", files[0].String())
	h.Write("data/part-2.csv", files[1].String())
	_, rec := h.MustApply()
	m := h.Dataset(h.Output("load.people").GetAttr("train"))
	if m.Features != 2+256 || m.Format.HashOffset != 2 || strings.Join(m.Format.Numeric, ",") != "age,income" ||
		strings.Join(m.Format.Categorical, ",") != "city" || m.Format.Label != "clicked" || len(m.Source.Objects) != 2 {
		t.Errorf("manifest: features %d, format %+v, source %+v", m.Features, m.Format, m.Source)
	}
	got := h.Rows(m)
	if g, w := strings.Join(runtimetest.RowDigests(got), ","), strings.Join(runtimetest.RowDigests(want), ","); g != w {
		t.Errorf("rows differ from the files': got %d rows, first %+v; want %d, first %+v", len(got), got[0], len(want), want[0])
	}
	if m.Source.Lines != 302 {
		t.Errorf("read %d lines, want 302 (two headers and 300 rows)", m.Source.Lines)
	}
	if notes := strings.Join(rec.Notes("load.people"), "\n"); !strings.Contains(notes, "hashing columns city") {
		t.Errorf("no note about the inferred categorical column: %s", notes)
	}
	// log1p applies sign(x)·log(1+|x|) to the numeric columns only.
	logged := h.Output("load.logged")
	lrows := append(h.Rows(h.Dataset(logged.GetAttr("train"))), h.Rows(h.Dataset(logged.GetAttr("test")))...)
	if len(lrows) != len(want) {
		t.Fatalf("log1p: %d rows, want %d", len(lrows), len(want))
	}
	for n, r := range lrows {
		w := want[n]
		for k, i := range w.Indices {
			x := float64(w.Values[k])
			if i < 2 {
				x = math.Log1p(x)
			}
			if r.Indices[k] != i || math.Abs(float64(r.Values[k])-x) > 1e-6*math.Max(1, x) {
				t.Fatalf("log1p row %d: %v %v, want slots %v from %v", n, r.Indices, r.Values, w.Indices, w.Values)
			}
		}
	}
	empty := h.Dataset(h.Output("load.people").GetAttr("test"))
	if empty.Rows != 0 || len(empty.Partitions) != 0 || empty.Source != nil || empty.Features != m.Features {
		t.Errorf("without test_source or split the test set should be empty: %+v", empty)
	}
}

// TestLoadRanges cuts the same lines into different files and numbers of
// ranges: every variant must give the same rows in the same order and the
// same statistics.
func TestLoadRanges(t *testing.T) {
	data, err := os.ReadFile(testdata(t, "a9a"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	h := runtimetest.New(t, `
load "whole" {
  source = "a9a"
  tasks  = 1
}
load "glob" {
  source = "parts/a9a-*.svm"
  tasks  = 1
}
load "many" {
  source          = "parts/a9a-*.svm"
  tasks           = 37
  partition_bytes = 100000
}
load "dir" {
  source = "parts/"
}
load "tiny" {
  source = "head.svm"
  tasks  = 400
}
load "tiny1" {
  source = "head.svm"
}
`)
	h.Write("a9a", string(data))
	h.Write("parts/a9a-0.svm", strings.Join(lines[:10000], ""))
	h.Write("parts/a9a-1.svm", strings.Join(lines[10000:10001], ""))
	h.Write("parts/a9a-2.svm", strings.Join(lines[10001:], ""))
	h.Write("parts/_SUCCESS", "")
	h.Write("head.svm", strings.Join(lines[:100], ""))
	h.MustApply()
	ref := h.Dataset(h.Output("load.whole").GetAttr("train"))
	refRows := strings.Join(runtimetest.RowDigests(h.Rows(ref)), ",")
	for _, stage := range []string{"load.glob", "load.many", "load.dir"} {
		m := h.Dataset(h.Output(stage).GetAttr("train"))
		if got := strings.Join(runtimetest.RowDigests(h.Rows(m)), ","); got != refRows {
			t.Errorf("%s: rows differ from one range over the whole file (%d rows, want %d)", stage, m.Rows, ref.Rows)
		}
		// a9a's values are all 1, so the sums are exact whatever the merge order.
		if m.StatsDigest != ref.StatsDigest || m.Source.Lines != ref.Source.Lines {
			t.Errorf("%s: statistics differ (digest %s, want %s), lines %d want %d", stage, m.StatsDigest, ref.StatsDigest, m.Source.Lines, ref.Source.Lines)
		}
	}
	if m := h.Dataset(h.Output("load.many").GetAttr("train")); len(m.Partitions) < 37 || len(m.Source.Objects) != 3 {
		t.Errorf("37 tasks wrote %d partitions of %d objects", len(m.Partitions), len(m.Source.Objects))
	}
	tiny, tiny1 := h.Dataset(h.Output("load.tiny").GetAttr("train")), h.Dataset(h.Output("load.tiny1").GetAttr("train"))
	if tiny.Rows != 100 || strings.Join(runtimetest.RowDigests(h.Rows(tiny)), ",") != strings.Join(runtimetest.RowDigests(h.Rows(tiny1)), ",") {
		t.Errorf("400 ranges over 100 lines: %d rows, or rows differ from one range", tiny.Rows)
	}
}

// TestLoadLabelStats: labels are read as the numbers they are (LIBSVM
// multiclass classes, regression targets); the manifest counts them and
// names the file and line of the first that is not binary, across
// segments and tasks; normalize keeps them.
func TestLoadLabelStats(t *testing.T) {
	var data strings.Builder
	for i := range 3000 {
		y := []string{"-1", "+1"}[i%2]
		if i == 2500 {
			y = "3"
		} else if i > 2500 {
			y = []string{"1", "2", "3"}[i%3]
		}
		fmt.Fprintf(&data, "%s %d:1\n", y, 1+i%7)
	}
	h := runtimetest.New(t, `
load "multi" {
  source = "data.svm"
  tasks  = 4
}
normalize "multi" {
  input  = load.multi
  method = "min_max"
}
load "binary" {
  source = "binary.svm"
}
`)
	h.Write("data.svm", data.String())
	h.Write("binary.svm", "-1 1:1\n+1 2:1\n1 3:1\n")
	h.MustApply()
	for _, stage := range []string{"load.multi", "normalize.multi"} {
		m := h.Dataset(h.Output(stage).GetAttr("train"))
		l := m.Labels
		if l == nil || l.First == nil {
			t.Fatalf("%s: labels %+v, want a first non-binary label", stage, l)
		}
		if got, want := l.First.String(), "data.svm:2501 (label 3)"; got != want {
			t.Errorf("%s: first non-binary label at %s, want %s", stage, got, want)
		}
		if got, want := fmt.Sprint(l.Distinct), "[{-1 1250} {1 1416} {2 166} {3 168}]"; got != want {
			t.Errorf("%s: distinct labels %s, want %s", stage, got, want)
		}
		if l.Binary() || !l.Integer || l.Min != -1 || l.Max != 3 {
			t.Errorf("%s: labels %+v", stage, l)
		}
	}
	b := h.Dataset(h.Output("load.binary").GetAttr("train"))
	if !b.Labels.Binary() || b.Positives != 2 || b.Negatives != 1 {
		t.Errorf("binary labels: %+v, %d positives, %d negatives", b.Labels, b.Positives, b.Negatives)
	}
}
