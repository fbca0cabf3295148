package train_test

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/blobs"
	"github.com/stratus-ml/stratus/dataset/gen"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
	"github.com/stratus-ml/stratus/operators/train"
)

// logloss scores probabilities (one per line) against labels.
func logloss(t *testing.T, probs []byte, labels []float64) float64 {
	t.Helper()
	lines := strings.Fields(string(probs))
	if len(lines) != len(labels) {
		t.Fatalf("%d probabilities for %d rows", len(lines), len(labels))
	}
	var sum float64
	for i, l := range lines {
		p, err := strconv.ParseFloat(l, 64)
		if err != nil {
			t.Fatal(err)
		}
		p = math.Min(math.Max(p, 1e-15), 1-1e-15)
		if labels[i] > 0 {
			sum -= math.Log(p)
		} else {
			sum -= math.Log(1 - p)
		}
	}
	return sum / float64(len(labels))
}

// predict scores the file at path with the model an apply produced.
func predict(t *testing.T, h *runtimetest.Harness, modelURI, path string) []byte {
	t.Helper()
	st := h.Store()
	key := strings.TrimPrefix(modelURI, strings.TrimSuffix(st.URI(""), "/")+"/")
	art, w, err := train.ReadArtifact(context.Background(), st, key)
	if err != nil {
		t.Fatal(err)
	}
	p, err := train.NewPredictor(context.Background(), art, w, func(ctx context.Context, uri string) (blob.Store, error) {
		return blobs.Open(ctx, uri, blobs.Options{})
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	if _, err := p.Predict(context.Background(), f, &out, path); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestPredictCriteo trains on Criteo-format data (hashed categoricals, log1p,
// standard scaling) and scores the raw held-out file with predict: reading it the
// way training did gives exactly the evaluator's test log loss.
func TestPredictCriteo(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, rows int64, seed uint64) (string, []float64) {
		var b bytes.Buffer
		if _, err := gen.Generate(context.Background(), &b, gen.Config{Rows: rows, Seed: seed, HashBits: 14}); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		var labels []float64
		for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
			labels = append(labels, float64(l[0]-'0'))
		}
		return p, labels
	}
	trainFile, _ := write("train.tsv", 20000, 1)
	testFile, labels := write("test.tsv", 3000, 2)
	h := runtimetest.New(t, `
load "clicks" {
  source      = "`+trainFile+`"
  test_source = "`+testFile+`"
  format      = "criteo"
  hash_bits   = 14
  log1p       = true
}

normalize "clicks" {
  input  = load.clicks
  method = "standard"
}

train "ctr" {
  input         = normalize.clicks
  workers       = 2
  learning_rate = 0.05
  epochs        = 2
}

output "metrics" { value = train.ctr.metrics }
output "model"   { value = train.ctr.model }
`)
	sum, _ := h.MustApply()
	want, _ := sum.Outputs["metrics"].GetAttr("test_logloss").AsBigFloat().Float64()
	got := logloss(t, predict(t, h, sum.Outputs["model"].AsString(), testFile), labels)
	t.Logf("criteo: evaluator test logloss %.6f, predict on the raw file %.6f", want, got)
	if math.Abs(got-want) > 1e-4 {
		t.Errorf("predict's log loss %.6f differs from the evaluator's %.6f: the input is not read as in training", got, want)
	}
	// The generator's Bayes logloss is about 0.40, its base rate about 0.565.
	if want > 0.5 {
		t.Errorf("test logloss %.4f: barely better than the base rate", want)
	}
}

// TestPredictA9A scores a9a.t with the a9a model: the evaluator's figures again.
func TestPredictA9A(t *testing.T) {
	h := runtimetest.New(t, a9aPipeline(`
  workers = 2
  epochs  = 3
`))
	sum, _ := h.MustApply()
	var labels []float64
	b, err := os.ReadFile(testdata("a9a.t"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.HasPrefix(l, "+1") {
			labels = append(labels, 1)
		} else {
			labels = append(labels, 0)
		}
	}
	want, _ := sum.Outputs["metrics"].GetAttr("test_logloss").AsBigFloat().Float64()
	got := logloss(t, predict(t, h, sum.Outputs["model"].AsString(), testdata("a9a.t")), labels)
	if math.Abs(got-want) > 1e-4 {
		t.Errorf("predict's log loss %.6f, the evaluator's %.6f", got, want)
	}
}
