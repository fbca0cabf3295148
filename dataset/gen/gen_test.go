package gen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"testing"

	"github.com/stratus-ml/stratus/dataset"
)

func generate(t testing.TB, cfg Config) ([]byte, Stats) {
	t.Helper()
	var b bytes.Buffer
	st, err := Generate(context.Background(), &b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), st
}

func parse(t testing.TB, data []byte, f dataset.Format) []dataset.Row {
	t.Helper()
	sc := dataset.NewScanner(bytes.NewReader(data), f, dataset.ScanOptions{Object: "generated"})
	var rows []dataset.Row
	var row dataset.Row
	for {
		err := sc.Next(&row)
		if err == io.EOF {
			return rows
		}
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row.Clone())
	}
}

func TestDeterministic(t *testing.T) {
	a, sa := generate(t, Config{Rows: 5000, Seed: 7, ChunkRows: 700, Workers: 1})
	b, sb := generate(t, Config{Rows: 5000, Seed: 7, ChunkRows: 700, Workers: 4})
	if !bytes.Equal(a, b) || sa != sb {
		t.Error("output depends on the number of workers")
	}
	c, _ := generate(t, Config{Rows: 5000, Seed: 8, ChunkRows: 700})
	if bytes.Equal(a, c) {
		t.Error("different seeds gave the same data")
	}
	if sa.Rows != 5000 || int64(len(a)) != sa.Bytes || int64(bytes.Count(a, []byte{'\n'})) != 5000 {
		t.Errorf("stats %+v for %d bytes", sa, len(a))
	}
}

// TestFormatsAgree: the LIBSVM output holds exactly the features the Criteo
// parser (with log1p) makes of the TSV output.
func TestFormatsAgree(t *testing.T) {
	cfg := Config{Rows: 3000, Seed: 3, HashBits: 12}
	tsv, st := generate(t, cfg)
	cfg.Format = FormatLIBSVM
	svm, st2 := generate(t, cfg)
	c, _ := dataset.NewCriteo(dataset.CriteoOptions{HashBits: 12, Log1p: true})
	a, b := parse(t, tsv, c), parse(t, svm, dataset.NewLIBSVM())
	if len(a) != 3000 || len(b) != 3000 {
		t.Fatalf("%d and %d rows", len(a), len(b))
	}
	var nnz int64
	for i := range a {
		if a[i].Label != b[i].Label || len(a[i].Indices) != len(b[i].Indices) {
			t.Fatalf("row %d differs: %v vs %v", i, a[i], b[i])
		}
		for k := range a[i].Indices {
			if a[i].Indices[k] != b[i].Indices[k] || a[i].Values[k] != b[i].Values[k] {
				t.Fatalf("row %d entry %d: %d:%v vs %d:%v", i, k, a[i].Indices[k], a[i].Values[k], b[i].Indices[k], b[i].Values[k])
			}
		}
		nnz += int64(len(a[i].Indices))
	}
	if st.NNZ != nnz || st2.NNZ != nnz || st.Positives != st2.Positives || st.BayesLogloss != st2.BayesLogloss {
		t.Errorf("stats disagree: %+v vs %+v (parsed nnz %d)", st, st2, nnz)
	}
	if per := float64(nnz) / 3000; per < 30 || per > 39 {
		t.Errorf("%.1f entries per row, want about 35", per)
	}
}

// TestGroundTruth recomputes P(click) from the parsed features with the
// model's weights: the mean entropy must be the reported Bayes logloss, and
// the labels must follow the probabilities.
func TestGroundTruth(t *testing.T) {
	const bits = 16
	data, st := generate(t, Config{Rows: 40000, Seed: 11, ModelSeed: 11, HashBits: bits})
	m, err := newModel(11, bits)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := dataset.NewCriteo(dataset.CriteoOptions{HashBits: bits, Log1p: true})
	rows := parse(t, data, c)
	var bayes, ll float64
	var pos int64
	var bucketP, bucketY [10]float64
	var bucketN [10]int
	for _, r := range rows {
		z := m.bias
		for k, ix := range r.Indices {
			if ix < dataset.CriteoIntColumns {
				z += m.intWeight[ix] * float64(r.Values[k])
			} else {
				z += m.slotWeight(ix) * float64(r.Values[k])
			}
		}
		p := sigmoid(z)
		bayes += entropy(p)
		if r.Label == 1 {
			pos++
			ll -= math.Log(p)
		} else {
			ll -= math.Log(1 - p)
		}
		b := min(int(p*10), 9)
		bucketP[b] += p
		bucketY[b] += float64(r.Label)
		bucketN[b]++
	}
	n := float64(len(rows))
	if math.Abs(bayes/n-st.BayesLogloss) > 1e-6 || math.Abs(ll/n-st.TrueModelLogloss) > 1e-6 || pos != st.Positives {
		t.Errorf("recomputed Bayes logloss %.6f, true-model logloss %.6f, positives %d; Generate reported %+v", bayes/n, ll/n, pos, st)
	}
	if rate := float64(pos) / n; math.Abs(rate-targetCTR) > 0.02 {
		t.Errorf("positive rate %.3f, want about %.2f", rate, targetCTR)
	}
	if !(st.BayesLogloss < st.BaseRateLogloss-0.05) || math.Abs(st.TrueModelLogloss-st.BayesLogloss) > 0.01 {
		t.Errorf("Bayes %.4f, true model %.4f, base rate %.4f: the truth should beat the base rate and match its expectation",
			st.BayesLogloss, st.TrueModelLogloss, st.BaseRateLogloss)
	}
	// Calibration: in each probability decile with enough rows, the click
	// rate matches the mean probability.
	for b := range bucketN {
		if bucketN[b] < 500 {
			continue
		}
		mp, my := bucketP[b]/float64(bucketN[b]), bucketY[b]/float64(bucketN[b])
		if se := math.Sqrt(mp * (1 - mp) / float64(bucketN[b])); math.Abs(mp-my) > 4*se+0.005 {
			t.Errorf("decile %d: mean P %.3f but click rate %.3f over %d rows", b, mp, my, bucketN[b])
		}
	}
	t.Logf("rows %d, CTR %.3f, Bayes logloss %.4f, base-rate logloss %.4f, intercept %.3f", st.Rows, float64(pos)/n, st.BayesLogloss, st.BaseRateLogloss, st.Intercept)
}

func TestZipfCategoricals(t *testing.T) {
	data, _ := generate(t, Config{Rows: 20000, Seed: 5})
	counts := map[string]int{}
	for _, line := range bytes.Split(bytes.TrimSuffix(data, []byte{'\n'}), []byte{'\n'}) {
		f := bytes.Split(line, []byte{'\t'})
		if len(f) != dataset.CriteoColumns {
			t.Fatalf("%d columns", len(f))
		}
		counts[string(f[1+dataset.CriteoIntColumns+2])]++ // C3: 1,000,000 values, Zipf 1.05
	}
	top := 0
	for _, n := range counts {
		top = max(top, n)
	}
	// Heavy head, long tail: the commonest value is frequent, yet most
	// values seen are rare.
	if top < 1000 || len(counts) < 3000 {
		t.Errorf("C3: top value %d times, %d distinct values", top, len(counts))
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Generate(ctx, io.Discard, Config{Rows: 10, Format: "parquet"}); err == nil {
		t.Error("unknown format accepted")
	}
	if _, err := Generate(ctx, io.Discard, Config{Rows: 10, HashBits: 40}); err == nil {
		t.Error("hash bits 40 accepted")
	}
	_, err := Generate(ctx, &failWriter{n: 3 << 20}, Config{Rows: 100000, ChunkRows: 1000})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("disk full")) {
		t.Errorf("write error: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Generate(cctx, io.Discard, Config{Rows: 100000, ChunkRows: 1000}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	st, err := Generate(ctx, io.Discard, Config{Rows: 0})
	if err != nil || st.Rows != 0 {
		t.Errorf("zero rows: %+v %v", st, err)
	}
}

func BenchmarkGenerate(b *testing.B) {
	for _, format := range []string{FormatCriteo, FormatLIBSVM} {
		b.Run(format, func(b *testing.B) {
			var n int64
			for i := 0; i < b.N; i++ {
				st, err := Generate(context.Background(), io.Discard, Config{Rows: 100000, Seed: uint64(i), Format: format})
				if err != nil {
					b.Fatal(err)
				}
				n = st.Bytes
			}
			b.SetBytes(n)
		})
	}
}
