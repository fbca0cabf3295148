package dataset_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stratus-ml/stratus/dataset"
)

// parseAll scans data with f and returns the rows and the parse errors.
func parseAll(t testing.TB, data []byte, f dataset.Format, opts dataset.ScanOptions) ([]dataset.Row, []*dataset.ParseError) {
	t.Helper()
	sc := dataset.NewScanner(bytes.NewReader(data), f, opts)
	var rows []dataset.Row
	var errs []*dataset.ParseError
	var row dataset.Row
	for {
		err := sc.Next(&row)
		if err == io.EOF {
			return rows, errs
		}
		var pe *dataset.ParseError
		if errors.As(err, &pe) {
			errs = append(errs, pe)
			continue
		}
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		rows = append(rows, row.Clone())
	}
}

func f32(s string) float32 {
	v, err := strconv.ParseFloat(s, 32)
	if err != nil {
		panic(err)
	}
	return float32(v)
}

func rowString(r dataset.Row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%g", r.Label)
	for k := range r.Indices {
		fmt.Fprintf(&b, " %d:%g", r.Indices[k], r.Values[k])
	}
	return b.String()
}

func TestLIBSVMLines(t *testing.T) {
	for _, tc := range []struct {
		line string
		want string // rowString with 0-based slots, or "" for no row
	}{
		{"+1 1:0.5 3:2", "1 0:0.5 2:2"},
		{"-1 3:1 11:1 14:1 ", "-1 2:1 10:1 13:1"},
		{"1 2:1", "1 1:1"},
		{"0 2:1", "0 1:1"},
		{"1.0 2:1", "1 1:1"},
		{"-1.0 2:1", "-1 1:1"},
		{"2 1:1", "2 0:1"},       // a class of a multiclass file
		{"-2.5 1:1", "-2.5 0:1"}, // a regression target,
		{"+1", "1"},              // no features
		{"-1   ", "-1"},          // no features, trailing spaces
		{"1 # comment", "1"},     // inline comment
		{"1 5:1 # 7:1", "1 4:1"},
		{"1\t2:3\t4:5", "1 1:3 3:5"},
		{"  1 2:3", "1 1:3"},
		{"1 5:1 2:3 9:-1", "1 1:3 4:1 8:-1"}, // unsorted
		{"1 qid:3 2:1", "1 1:1"},
		{"1 123:0", "1 122:0"}, // explicit zero kept
		{"1 1:1e-3 2:2.5E2 3:-0.125 4:.5 5:7.", "1 0:0.001 1:250 2:-0.125 3:0.5 4:7"},
		{"1 4294967296:1", "1 4294967295:1"},
		{"", ""},
		{"   ", ""},
		{"# only a comment", ""},
		{"#", ""},
	} {
		var row dataset.Row
		ok, err := dataset.NewLIBSVM().ParseLine([]byte(tc.line), &row)
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		got := ""
		if ok {
			got = rowString(row)
		}
		if got != tc.want {
			t.Errorf("%q = %q, want %q", tc.line, got, tc.want)
		}
	}
}

func TestLIBSVMBadLines(t *testing.T) {
	for _, tc := range []struct {
		line   string
		reason string
		column int
		text   string
	}{
		{"x 1:1", dataset.ReasonLabel, 1, "x"},
		{"inf 1:1", dataset.ReasonLabel, 1, "inf"},
		{"1e99 1:1", dataset.ReasonLabel, 1, "1e99"},
		{"yes 1:1", dataset.ReasonLabel, 1, "yes"},
		{"nan 1:1", dataset.ReasonLabel, 1, "nan"},
		{"1 0:1", dataset.ReasonIndex, 3, "0:1"},
		{"1 2:1 -3:1", dataset.ReasonIndex, 7, "-3:1"},
		{"1 x:1", dataset.ReasonIndex, 3, "x:1"},
		{"1 1.5:1", dataset.ReasonIndex, 3, "1.5:1"},
		{"1 4294967297:1", dataset.ReasonIndex, 3, "4294967297:1"},
		{"1 99999999999999999999999:1", dataset.ReasonIndex, 3, "99999999999999999999999:1"},
		{"1 3", dataset.ReasonSyntax, 3, "3"},
		{"1 3:", dataset.ReasonValue, 3, "3:"},
		{"1 3:abc", dataset.ReasonValue, 3, "3:abc"},
		{"1 3:1.2.3", dataset.ReasonValue, 3, "3:1.2.3"},
		{"1 3:1,5", dataset.ReasonValue, 3, "3:1,5"},
		{"1 3:NaN", dataset.ReasonNonFinite, 3, "3:NaN"},
		{"1 3:nan", dataset.ReasonNonFinite, 3, "3:nan"},
		{"1 3:Inf", dataset.ReasonNonFinite, 3, "3:Inf"},
		{"1 3:-inf", dataset.ReasonNonFinite, 3, "3:-inf"},
		{"1 3:1e39", dataset.ReasonNonFinite, 3, "3:1e39"}, // overflows float32
		{"1 2:1 2:1", dataset.ReasonDuplicate, 7, "2:1"},
		{"1 5:1 2:1 5:2", dataset.ReasonDuplicate, 11, "5:2"}, // found after sorting
		{"1 2:1 \xff\xfe:1", dataset.ReasonIndex, 7, "\xff\xfe:1"},
		{"\xff 2:1", dataset.ReasonLabel, 1, "\xff"},
	} {
		var row dataset.Row
		_, err := dataset.NewLIBSVM().ParseLine([]byte(tc.line), &row)
		var pe *dataset.ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%q: err = %v, want a ParseError", tc.line, err)
			continue
		}
		if pe.Reason != tc.reason || pe.Column != tc.column || pe.Text != tc.text {
			t.Errorf("%q: reason %q column %d text %q; want %q %d %q", tc.line, pe.Reason, pe.Column, pe.Text, tc.reason, tc.column, tc.text)
		}
		if msg := pe.Error(); !utf8.ValidString(msg) {
			t.Errorf("%q: message is not valid UTF-8: %q", tc.line, msg)
		}
	}
}

func TestParseErrorMessage(t *testing.T) {
	data := []byte("1 1:1\n# comment\n1 2:1 0:3\n")
	_, errs := parseAll(t, data, dataset.NewLIBSVM(), dataset.ScanOptions{Object: "file:///data/train.svm"})
	if len(errs) != 1 {
		t.Fatalf("got %d errors, want 1", len(errs))
	}
	want := `file:///data/train.svm:3:7: invalid feature index "0:3": indices are 1-based: index 0 is not allowed`
	if got := errs[0].Error(); got != want {
		t.Errorf("message\n got %s\nwant %s", got, want)
	}
	if errs[0].Offset != 16 || errs[0].Line != 3 {
		t.Errorf("offset %d line %d, want 16 and 3", errs[0].Offset, errs[0].Line)
	}
	// Long offending text is cut; raw bytes are quoted in the message.
	long := "1 1:" + strings.Repeat("x", 200) + "\xff"
	_, errs = parseAll(t, []byte(long), dataset.NewLIBSVM(), dataset.ScanOptions{Object: "o"})
	if len(errs) != 1 || len(errs[0].Text) > 70 || !strings.HasSuffix(errs[0].Text, "...") {
		t.Fatalf("long text not cut: %+v", errs)
	}
	if msg := errs[0].Error(); !utf8.ValidString(msg) || len(msg) > 200 {
		t.Errorf("message %q", msg)
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type summary struct {
	rows, positives, nnz int
	features             int // 1 + the largest slot
}

func summarize(rows []dataset.Row) summary {
	var s summary
	for _, r := range rows {
		s.rows++
		if r.Label == 1 {
			s.positives++
		}
		s.nnz += len(r.Indices)
		if n := len(r.Indices); n > 0 && int(r.Indices[n-1])+1 > s.features {
			s.features = int(r.Indices[n-1]) + 1
		}
	}
	return s
}

func TestReferenceLIBSVMFiles(t *testing.T) {
	for _, tc := range []struct {
		file string
		want summary
	}{
		// Rows and positives counted with wc -l and grep -c '^+1'; nnz with
		// awk '{n += NF-1} END {print n}'.
		{"a9a", summary{rows: 32561, positives: 7841, nnz: 451592, features: 123}},
		{"a9a.t", summary{rows: 16281, positives: 3846, nnz: 225732, features: 123}},
		{"heart_scale", summary{rows: 270, positives: 120, nnz: 3378, features: 13}},
	} {
		rows, errs := parseAll(t, readTestdata(t, tc.file), dataset.NewLIBSVM(), dataset.ScanOptions{Object: tc.file})
		if len(errs) > 0 {
			t.Fatalf("%s: %v", tc.file, errs[0])
		}
		if got := summarize(rows); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.file, got, tc.want)
		}
	}

	a9a, _ := parseAll(t, readTestdata(t, "a9a"), dataset.NewLIBSVM(), dataset.ScanOptions{})
	// Line 1: "-1 3:1 11:1 14:1 19:1 39:1 42:1 55:1 64:1 67:1 73:1 75:1 76:1 80:1 83:1 "
	if got, want := rowString(a9a[0]), "-1 2:1 10:1 13:1 18:1 38:1 41:1 54:1 63:1 66:1 72:1 74:1 75:1 79:1 82:1"; got != want {
		t.Errorf("a9a line 1 = %s, want %s", got, want)
	}
	// Last line: "+1 5:1 8:1 18:1 22:1 36:1 40:1 51:1 61:1 67:1 72:1 75:1 76:1 80:1 83:1 "
	if got, want := rowString(a9a[len(a9a)-1]), "1 4:1 7:1 17:1 21:1 35:1 39:1 50:1 60:1 66:1 71:1 74:1 75:1 79:1 82:1"; got != want {
		t.Errorf("a9a last line = %s, want %s", got, want)
	}
	a9at, _ := parseAll(t, readTestdata(t, "a9a.t"), dataset.NewLIBSVM(), dataset.ScanOptions{})
	// a9a.t line 1 ends with an explicit "123:0".
	r := a9at[0]
	if n := len(r.Indices); r.Indices[n-1] != 122 || r.Values[n-1] != 0 || n != 15 {
		t.Errorf("a9a.t line 1 = %s, want 15 entries ending 122:0", rowString(r))
	}
	heart, _ := parseAll(t, readTestdata(t, "heart_scale"), dataset.NewLIBSVM(), dataset.ScanOptions{})
	// "+1 1:0.708333 2:1 3:1 4:-0.320755 5:-0.105023 6:-1 7:1 8:-0.419847 9:-1 10:-0.225806 12:1 13:-1 "
	h := heart[0]
	want := dataset.Row{Label: 1, Indices: []uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12},
		Values: []float32{f32("0.708333"), 1, 1, f32("-0.320755"), f32("-0.105023"), -1, 1, f32("-0.419847"), -1, f32("-0.225806"), 1, -1}}
	if rowString(h) != rowString(want) {
		t.Errorf("heart_scale line 1 = %s, want %s", rowString(h), rowString(want))
	}
	for k := range h.Values {
		if h.Values[k] != want.Values[k] {
			t.Errorf("heart_scale line 1 value %d = %v, want exactly %v", k, h.Values[k], want.Values[k])
		}
	}
}

func TestFloatParserMatchesStrconv(t *testing.T) {
	// Every value must be the correctly rounded float32, whether it takes
	// the fast path or not.
	cases := []string{"0", "1", "7", "12", "0.1", "0.3", "1.5", "3.14159", "16777216", "16777217", "16777219",
		"0.708333", "-0.320755", "123456789", "0.000001", "1e-7", "9.999999e9", "1.17549435e-38", "1e-45", "3.4028235e38",
		"0.30000001192092896", "2.5e-3", "100", "1e10", "1e11", "+5", "-0", "0.0000000000001", "8388609.5", "33554431"}
	for i := 0; i < 20000; i++ {
		// Pseudo-random decimals with up to 9 digits and small exponents.
		x := uint64(i)*2654435761 + 12345
		digits := strconv.FormatUint(x%1_000_000_000, 10)
		dot := int(x>>20) % (len(digits) + 1)
		s := digits[:dot] + "." + digits[dot:]
		if x>>40&1 == 1 {
			s = "-" + s
		}
		if x>>41&3 == 0 {
			s += "e" + strconv.Itoa(int(x>>43%25)-12)
		}
		cases = append(cases, s)
	}
	for _, s := range cases {
		want, err := strconv.ParseFloat(s, 32)
		if err != nil {
			continue
		}
		var row dataset.Row
		ok, perr := dataset.NewLIBSVM().ParseLine([]byte("1 1:"+s), &row)
		if perr != nil || !ok {
			if !(want > 3.4e38 || want < -3.4e38) {
				t.Errorf("%s: %v", s, perr)
			}
			continue
		}
		if row.Values[0] != float32(want) {
			t.Errorf("%s parsed as %v, want %v", s, row.Values[0], float32(want))
		}
	}
}

// TestLIBSVMHashed: indices go to their hashed slots, colliding values add
// up, duplicates are checked on the indices as written, and rows stay
// sorted.
func TestLIBSVMHashed(t *testing.T) {
	p, err := dataset.NewLIBSVMHashed(2)
	if err != nil {
		t.Fatal(err)
	}
	if p.Features() != 4 {
		t.Fatalf("features %d", p.Features())
	}
	slot := func(i uint64) uint32 { return uint32(dataset.Fmix64(i^dataset.LIBSVMHashKey) & 3) }
	var r dataset.Row
	ok, err := p.ParseLine([]byte("+1 1:0.5 2:1 3:2 4:4 5:8 9:16"), &r)
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	want := map[uint32]float32{}
	for i, v := range map[uint64]float32{1: 0.5, 2: 1, 3: 2, 4: 4, 5: 8, 9: 16} {
		want[slot(i)] += v
	}
	if len(r.Indices) != len(want) {
		t.Fatalf("row %v %v, want %v", r.Indices, r.Values, want)
	}
	for k, i := range r.Indices {
		if k > 0 && i <= r.Indices[k-1] || r.Values[k] != want[i] {
			t.Fatalf("row %v %v, want %v", r.Indices, r.Values, want)
		}
	}
	if _, err := p.ParseLine([]byte("+1 7:1 7:2"), &r); err == nil || !strings.Contains(err.Error(), dataset.ReasonDuplicate) {
		t.Errorf("duplicate index: %v", err)
	}
	if _, err := dataset.NewLIBSVMHashed(31); err == nil {
		t.Error("hash_bits 31 accepted")
	}
}
