package normalize_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/manifest"
	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
)

func testdata(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.ToSlash(p)
}

// transform is the expected per-feature parameters, computed in the test
// from the input train rows the plain way.
type transform map[uint32][2]float64 // slot → scale, offset

func expected(rows []dataset.Row, method string, lo, hi float64, center bool) transform {
	out := transform{}
	for i, f := range runtimetest.Reference(rows) {
		switch method {
		case "min_max":
			if f.AllMax > f.AllMin {
				s := (hi - lo) / (f.AllMax - f.AllMin)
				out[i] = [2]float64{s, lo - f.AllMin*s}
			}
		case "standard":
			if f.AllMax > f.AllMin && f.Variance > 0 {
				sd := math.Sqrt(f.Variance)
				off := 0.0
				if center {
					off = -f.Mean / sd
				}
				out[i] = [2]float64{1 / sd, off}
			}
		}
	}
	return out
}

// apply transforms a row as the parameters say, densifying slots whose
// zero maps to a non-zero value.
func (tr transform) apply(r dataset.Row) map[uint32]float64 {
	out := map[uint32]float64{}
	for i, p := range tr {
		if p[1] != 0 {
			out[i] = p[1]
		}
	}
	for k, i := range r.Indices {
		x := float64(r.Values[k])
		if p, ok := tr[i]; ok {
			x = p[0]*x + p[1]
		}
		out[i] = x
	}
	return out
}

// checkRows compares output rows with the transformed input rows.
func checkRows(t *testing.T, what string, in, out []dataset.Row, tr transform) {
	t.Helper()
	if len(in) != len(out) {
		t.Fatalf("%s: %d rows in, %d out", what, len(in), len(out))
	}
	bad := 0
	for n := range in {
		want := tr.apply(in[n])
		got := out[n]
		ok := got.Label == in[n].Label && len(got.Indices) == len(want)
		for k, i := range got.Indices {
			w, present := want[i]
			if !present || !runtimetest.Close(float64(got.Values[k]), w, 2e-6) {
				ok = false
			}
		}
		if !ok {
			if bad++; bad <= 3 {
				t.Errorf("%s row %d: got %v %v, want %v", what, n, got.Indices, got.Values, want)
			}
		}
	}
}

type normCase struct {
	stage, method string
	lo, hi        float64
	center        bool
}

// checkNormalize checks one normalize stage against its input load stage.
func checkNormalize(t *testing.T, h *runtimetest.Harness, input string, c normCase) {
	t.Helper()
	inTrain := h.Dataset(h.Output(input).GetAttr("train"))
	inTest := h.Dataset(h.Output(input).GetAttr("test"))
	out := h.Output(c.stage)
	outTrain, outTest := h.Dataset(out.GetAttr("train")), h.Dataset(out.GetAttr("test"))
	trainRows, testRows := h.Rows(inTrain), h.Rows(inTest)
	tr := expected(trainRows, c.method, c.lo, c.hi, c.center)
	gotTrain, gotTest := h.Rows(outTrain), h.Rows(outTest)
	checkRows(t, c.stage+" train", trainRows, gotTrain, tr)
	// The test set is scaled with the train statistics.
	checkRows(t, c.stage+" test", testRows, gotTest, tr)
	runtimetest.CompareStats(t, c.stage+" train", h.Stats(outTrain), gotTrain)
	runtimetest.CompareStats(t, c.stage+" test", h.Stats(outTest), gotTest)

	// What the scaling is for, measured on the output train rows.
	ref := runtimetest.Reference(gotTrain)
	for i, p := range tr {
		f := ref[i]
		switch c.method {
		case "min_max":
			if !runtimetest.Close(f.AllMin, c.lo, 1e-5) || !runtimetest.Close(f.AllMax, c.hi, 1e-5) {
				t.Errorf("%s: feature %d spans [%g, %g] after scaling to [%g, %g] (params %v)", c.stage, i, f.AllMin, f.AllMax, c.lo, c.hi, p)
			}
		case "standard":
			if !runtimetest.Close(f.Variance, 1, 1e-4) || c.center && math.Abs(f.Mean) > 1e-5 {
				t.Errorf("%s: feature %d has mean %g variance %g after standard scaling", c.stage, i, f.Mean, f.Variance)
			}
		}
	}

	// The manifest records the parameters; they are the expected ones.
	for _, m := range []*manifest.Manifest{outTrain, outTest} {
		n := m.Normalization
		if n == nil || n.Method != c.method || n.Center != c.center || m.Features != inTrain.Features || m.Format.Name != inTrain.Format.Name {
			t.Fatalf("%s %s: normalization %+v, features %d", c.stage, m.Dataset, n, m.Features)
		}
	}
	if inTrain.Normalization != nil {
		return // the recorded parameters are composed with the input's; checked by the caller
	}
	params, err := outTrain.ReadParams(context.Background(), h.Store())
	if err != nil {
		t.Fatal(err)
	}
	identity := 0
	for i, p := range tr {
		if p[0] == 1 && p[1] == 0 {
			identity++
			continue
		}
		s, o := params.Lookup(i)
		if !runtimetest.Close(s, p[0], 1e-9) || !runtimetest.Close(o, p[1], 1e-9) {
			t.Errorf("%s: slot %d parameters %g, %g; want %g, %g", c.stage, i, s, o, p[0], p[1])
		}
	}
	if params.Len() != len(tr)-identity {
		t.Errorf("%s: %d parameters recorded, want %d", c.stage, params.Len(), len(tr)-identity)
	}
}

func TestNormalizeA9A(t *testing.T) {
	h := runtimetest.New(t, fmt.Sprintf(`
load "adult" {
  source      = %q
  test_source = %q
}
normalize "mm" {
  input  = load.adult
  method = "min_max"
}
normalize "wide" {
  input  = load.adult
  method = "min_max"
  range  = [-1, 1]
}
normalize "z" {
  input  = load.adult
  method = "standard"
}
normalize "zc" {
  input  = load.adult
  method = "standard"
  center = true
}
output "rows" { value = normalize.z.rows }
`, testdata(t, "a9a"), testdata(t, "a9a.t")))
	sum, rec := h.MustApply()
	if got := runtimetest.Int(sum.Outputs["rows"]); got != 32561+16281 {
		t.Errorf("rows %d", got)
	}
	for _, c := range []normCase{
		{stage: "normalize.mm", method: "min_max", lo: 0, hi: 1},
		{stage: "normalize.wide", method: "min_max", lo: -1, hi: 1},
		{stage: "normalize.z", method: "standard"},
		{stage: "normalize.zc", method: "standard", center: true},
	} {
		checkNormalize(t, h, "load.adult", c)
	}
	// a9a's features are 0/1: min_max to [0, 1] changes nothing, to [-1, 1]
	// maps every absent entry to -1.
	mm := h.Dataset(h.Output("normalize.mm").GetAttr("train"))
	in := h.Dataset(h.Output("load.adult").GetAttr("train"))
	if mm.NNZ != in.NNZ {
		t.Errorf("min_max [0,1] of 0/1 features changed the entries: %d, was %d", mm.NNZ, in.NNZ)
	}
	wide := h.Dataset(h.Output("normalize.wide").GetAttr("train"))
	if wide.Normalization.Densified != h.Stats(in).Len() || wide.NNZ != wide.Rows*int64(wide.Normalization.Densified) {
		t.Errorf("min_max [-1,1]: %d densified of %d features, %d entries for %d rows", wide.Normalization.Densified, h.Stats(in).Len(), wide.NNZ, wide.Rows)
	}
	if notes := strings.Join(rec.Notes("normalize.z"), "\n"); !strings.Contains(notes, "standard: ") {
		t.Errorf("notes: %s", notes)
	}
}

// TestNormalizeRealValues normalizes heart_scale (real values in [-1, 1],
// some features negative) split into train and test, and a normalized
// dataset again (the recorded parameters compose).
func TestNormalizeRealValues(t *testing.T) {
	h := runtimetest.New(t, fmt.Sprintf(`
load "heart" {
  source = %q
  split  = { test = 0.3, seed = 4 }
}
normalize "mm" {
  input  = load.heart
  method = "min_max"
  range  = [2, 5]
}
normalize "z" {
  input  = load.heart
  method = "standard"
}
normalize "zc" {
  input  = load.heart
  method = "standard"
  center = true
}
normalize "again" {
  input  = normalize.zc
  method = "min_max"
}
`, testdata(t, "heart_scale")))
	h.MustApply()
	for _, c := range []normCase{
		{stage: "normalize.mm", method: "min_max", lo: 2, hi: 5},
		{stage: "normalize.z", method: "standard"},
		{stage: "normalize.zc", method: "standard", center: true},
	} {
		checkNormalize(t, h, "load.heart", c)
	}
	checkNormalize(t, h, "normalize.zc", normCase{stage: "normalize.again", method: "min_max", lo: 0, hi: 1})

	// normalize.again's recorded parameters map the raw rows to its rows.
	raw := h.Dataset(h.Output("load.heart").GetAttr("test"))
	again := h.Dataset(h.Output("normalize.again").GetAttr("test"))
	params, err := again.ReadParams(context.Background(), h.Store())
	if err != nil {
		t.Fatal(err)
	}
	tr := manifest.NewTransformer(params)
	got := h.Rows(again)
	for n, r := range h.Rows(raw) {
		var y dataset.Row
		if err := tr.Transform(&y, r.Label, r.Indices, r.Values); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(y.Indices) != fmt.Sprint(got[n].Indices) {
			t.Fatalf("row %d: composed parameters give slots %v, the dataset has %v", n, y.Indices, got[n].Indices)
		}
		for k := range y.Values {
			if !runtimetest.Close(float64(y.Values[k]), float64(got[n].Values[k]), 1e-5) {
				t.Fatalf("row %d: composed parameters give %v, the dataset has %v", n, y.Values, got[n].Values)
			}
		}
	}
}

// TestNormalizeCache: a second apply is fully cached; changing method reruns
// normalize only.
func TestNormalizeCache(t *testing.T) {
	src := `
load "adult" {
  source      = %q
  test_source = %q
}
normalize "adult" {
  input  = load.adult
  method = %q
}
output "m" { value = normalize.adult.train.manifest }
`
	a, at := testdata(t, "a9a"), testdata(t, "a9a.t")
	h := runtimetest.New(t, fmt.Sprintf(src, a, at, "min_max"))
	sum, _ := h.MustApply()
	if got := runtimetest.Actions(sum); got != "load.adult=ran normalize.adult=ran" {
		t.Errorf("first apply: %s", got)
	}
	first := sum.Outputs["m"].AsString()

	sum, rec := h.MustApply()
	if got := runtimetest.Actions(sum); got != "load.adult=cached normalize.adult=cached" {
		t.Errorf("second apply: %s", got)
	}
	if n := rec.Count(executor.TaskStarted, ""); n != 0 {
		t.Errorf("second apply started %d tasks", n)
	}
	if sum.Outputs["m"].AsString() != first {
		t.Errorf("cached output %s, was %s", sum.Outputs["m"].AsString(), first)
	}

	h.Write("main.hcl", fmt.Sprintf(src, a, at, "standard"))
	sum, rec = h.MustApply()
	if got := runtimetest.Actions(sum); got != "load.adult=cached normalize.adult=ran" {
		t.Errorf("after changing method: %s", got)
	}
	if n := rec.Count(executor.TaskStarted, "load.adult"); n != 0 {
		t.Errorf("load started %d tasks", n)
	}
	m := h.Dataset(h.Output("normalize.adult").GetAttr("train"))
	if m.Normalization.Method != "standard" {
		t.Errorf("method %s", m.Normalization.Method)
	}
}

// TestNormalizeCorruptPartition damages a partition load wrote: normalize
// fails with a checksum error naming the object.
func TestNormalizeCorruptPartition(t *testing.T) {
	src := fmt.Sprintf(`
load "adult" {
  source = %q
}
`, testdata(t, "a9a"))
	h := runtimetest.New(t, src)
	h.MustApply()
	m := h.Dataset(h.Output("load.adult").GetAttr("train"))
	uri := h.Store().URI(m.Partitions[0].Key)
	path := strings.TrimPrefix(uri, "file://")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	h.Write("main.hcl", src+`
normalize "adult" {
  input  = load.adult
  method = "standard"
}
`)
	sum, _, err := h.Apply()
	if err == nil {
		t.Fatal("normalize read a damaged partition without error")
	}
	var msg string
	for _, s := range sum.Stages {
		if s.Address == "normalize.adult" {
			msg = s.Error
		}
	}
	if !strings.Contains(msg, uri) || !strings.Contains(msg, "checksum mismatch") {
		t.Errorf("error does not name %s and the checksum:\n%s", uri, msg)
	}
}

// TestNormalizeInput: input must be a stage with datasets.
func TestNormalizeInput(t *testing.T) {
	h := runtimetest.New(t, fmt.Sprintf(`
load "adult" {
  source = %q
}
normalize "adult" {
  input  = load.adult.train
  method = "standard"
}
`, testdata(t, "a9a")))
	sum, _, err := h.Apply()
	if err == nil {
		t.Fatal("normalize accepted a dataset as input")
	}
	var msg string
	for _, s := range sum.Stages {
		if s.Address == "normalize.adult" {
			msg = s.Error
		}
	}
	if !strings.Contains(msg, "input must be a stage with train and test datasets, such as load.adult") {
		t.Errorf("error: %s", msg)
	}
}

func TestNormalizeSchemaCheck(t *testing.T) {
	h := runtimetest.New(t, fmt.Sprintf(`
load "adult" {
  source = %q
}
normalize "adult" {
  input  = load.adult
  method = "min_max"
  center = true
}
`, testdata(t, "a9a")))
	_, diags := h.Plan()
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "center applies to method = \"standard\" only") {
		t.Errorf("diagnostics: %v", diags)
	}
}
