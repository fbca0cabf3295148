package dataset_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/dataset"
)

// criteoLine builds a line from a label, 13 ints and 26 categoricals.
func criteoLine(label string, ints []string, cats []string) string {
	return label + "\t" + strings.Join(ints, "\t") + "\t" + strings.Join(cats, "\t")
}

func fill(n int, v string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestCriteoLine(t *testing.T) {
	c, err := dataset.NewCriteo(dataset.CriteoOptions{HashBits: 16})
	if err != nil {
		t.Fatal(err)
	}
	if c.Features() != 13+65536 {
		t.Errorf("Features = %d", c.Features())
	}
	ints := fill(13, "")
	ints[0], ints[1], ints[12] = "5", "-1", "0"
	cats := fill(26, "")
	cats[0], cats[25] = "68fd1e64", "9727dd16"
	var row dataset.Row
	ok, err := c.ParseLine([]byte(criteoLine("1", ints, cats)), &row)
	if err != nil || !ok {
		t.Fatalf("ParseLine: %v", err)
	}
	s0, s25 := c.Slot(0, []byte("68fd1e64")), c.Slot(25, []byte("9727dd16"))
	if s0 < 13 || s0 >= 13+65536 || s25 < 13 || s25 >= 13+65536 {
		t.Fatalf("slots %d %d out of range", s0, s25)
	}
	want := dataset.Row{Label: 1, Indices: []uint32{0, 1, 12}, Values: []float32{5, -1, 0}}
	lo, hi := min(s0, s25), max(s0, s25)
	want.Indices = append(want.Indices, lo, hi)
	want.Values = append(want.Values, 1, 1)
	if rowString(row) != rowString(want) {
		t.Errorf("row %s, want %s", rowString(row), rowString(want))
	}

	// The same value in another column lands elsewhere (keyed by column).
	if c.Slot(0, []byte("68fd1e64")) == c.Slot(1, []byte("68fd1e64")) {
		t.Error("the hash is not keyed by column")
	}

	// log1p of max(x, 0).
	cl, _ := dataset.NewCriteo(dataset.CriteoOptions{HashBits: 16, Log1p: true})
	ok, err = cl.ParseLine([]byte(criteoLine("0", ints, cats)), &row)
	if err != nil || !ok {
		t.Fatal(err)
	}
	if row.Label != 0 || row.Values[0] != float32(math.Log1p(5)) || row.Values[1] != 0 || row.Values[2] != 0 {
		t.Errorf("log1p row %s", rowString(row))
	}
}

func TestCriteoCollisionsAddUp(t *testing.T) {
	// With 1 hash bit, 26 categorical values fall into 2 slots.
	c, _ := dataset.NewCriteo(dataset.CriteoOptions{HashBits: 1})
	cats := make([]string, 26)
	for i := range cats {
		cats[i] = "v"
	}
	var row dataset.Row
	if _, err := c.ParseLine([]byte(criteoLine("1", fill(13, ""), cats)), &row); err != nil {
		t.Fatal(err)
	}
	var sum float32
	for k, ix := range row.Indices {
		if ix < 13 || ix > 14 || (k > 0 && ix <= row.Indices[k-1]) {
			t.Errorf("bad slots %v", row.Indices)
		}
		sum += row.Values[k]
	}
	if sum != 26 {
		t.Errorf("values add to %v, want 26", sum)
	}
}

func TestCriteoBadLines(t *testing.T) {
	c, _ := dataset.NewCriteo(dataset.CriteoOptions{})
	ints, cats := fill(13, "1"), fill(26, "abc")
	good := criteoLine("0", ints, cats)
	for _, tc := range []struct {
		name, line, reason string
		column             int
	}{
		{"too few columns", strings.TrimSuffix(good, "\tabc"), dataset.ReasonColumns, 1},
		{"too many columns", good + "\textra", dataset.ReasonColumns, len(good) + 2},
		{"space separated", strings.ReplaceAll(good, "\t", " "), dataset.ReasonColumns, 1},
		{"label 2", "2" + good[1:], dataset.ReasonLabel, 1},
		{"empty label", good[1:], dataset.ReasonLabel, 1},
		{"not a number", "0\tx" + good[3:], dataset.ReasonValue, 3},
		{"NaN", "0\tNaN" + good[3:], dataset.ReasonNonFinite, 3},
		{"Inf", "0\t1\t+Inf" + good[5:], dataset.ReasonNonFinite, 5},
		{"non-UTF-8 number", "0\t\xff\xfe" + good[3:], dataset.ReasonValue, 3},
	} {
		var row dataset.Row
		_, err := c.ParseLine([]byte(tc.line), &row)
		var pe *dataset.ParseError
		if !errors.As(err, &pe) || pe.Reason != tc.reason || pe.Column != tc.column {
			t.Errorf("%s: %v (%+v); want reason %q at column %d", tc.name, err, pe, tc.reason, tc.column)
		}
	}
	var row dataset.Row
	_, err := c.ParseLine([]byte(strings.TrimSuffix(good, "\tabc")), &row)
	if !strings.Contains(err.Error(), "found 39 tab-separated columns, want 40") {
		t.Errorf("column count message: %v", err)
	}
	// Categorical values are opaque bytes: non-UTF-8 ones are hashed.
	cats[3] = "\xff\xfe"
	if ok, err := c.ParseLine([]byte(criteoLine("1", ints, cats)), &row); err != nil || !ok {
		t.Errorf("non-UTF-8 categorical value: %v", err)
	}
	if _, err := dataset.NewCriteo(dataset.CriteoOptions{HashBits: 31}); err == nil {
		t.Error("hash_bits 31 accepted")
	}
}

// TestCriteoSample checks the parser against the first 1,000 rows of the
// Criteo Kaggle training set (not shipped with Stratus: see testdata/README.md).
func TestCriteoSample(t *testing.T) {
	data, err := os.ReadFile(criteoSamplePath())
	if err != nil {
		t.Skipf("Criteo sample not available (%v): set STRATUS_CRITEO_SAMPLE to its path", err)
	}
	c, _ := dataset.NewCriteo(dataset.CriteoOptions{HashBits: 20})
	rows, errs := parseAll(t, data, c, dataset.ScanOptions{Object: "criteo_sample.tsv"})
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	// awk -F'\t' '$1==1' | wc -l gives 205 positives.
	if s := summarize(rows); s.rows != 1000 || s.positives != 205 {
		t.Errorf("%d rows, %d positives; want 1000 and 205", s.rows, s.positives)
	}
	// Row 1: 0 | 1 1 5 0 1382 4 15 2 181 1 2 <empty> 2 | 68fd1e64 ... (the 23rd categorical is empty)
	r := rows[0]
	wantInts := []float32{1, 1, 5, 0, 1382, 4, 15, 2, 181, 1, 2}
	for k, v := range wantInts {
		if r.Indices[k] != uint32(k) || r.Values[k] != v {
			t.Fatalf("row 1 entry %d = %d:%v, want %d:%v", k, r.Indices[k], r.Values[k], k, v)
		}
	}
	if r.Indices[11] != 12 || r.Values[11] != 2 {
		t.Errorf("row 1: I12 is missing, so entry 11 should be slot 12 = 2; got %d:%v", r.Indices[11], r.Values[11])
	}
	var catSum float32
	hasFirst := false
	for k := 12; k < len(r.Indices); k++ {
		catSum += r.Values[k]
		if r.Indices[k] == c.Slot(0, []byte("68fd1e64")) {
			hasFirst = true
		}
	}
	if catSum != 25 || !hasFirst {
		t.Errorf("row 1: categorical values sum to %v (want 25: one of 26 is empty); C1 slot present: %v", catSum, hasFirst)
	}
}

// criteoSamplePath returns $STRATUS_CRITEO_SAMPLE, or else the first
// shared/data/criteo_sample.tsv found beside the repository or its parents.
func criteoSamplePath() string {
	if p := os.Getenv("STRATUS_CRITEO_SAMPLE"); p != "" {
		return p
	}
	dir := ".."
	for i := 0; i < 4; i++ {
		dir = filepath.Join(dir, "..")
		p := filepath.Join(dir, "shared", "data", "criteo_sample.tsv")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "criteo_sample.tsv (not found beside the repository)"
}
