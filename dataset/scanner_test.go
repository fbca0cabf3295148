package dataset_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/fileblob"
	"github.com/stratus-ml/stratus/dataset"
)

func TestScannerLineEndings(t *testing.T) {
	for name, data := range map[string]string{
		"LF":                  "1 1:1\n-1 2:1\n",
		"CRLF":                "1 1:1\r\n-1 2:1\r\n",
		"no final newline":    "1 1:1\n-1 2:1",
		"CRLF, no final":      "1 1:1\r\n-1 2:1\r",
		"blank lines":         "\n1 1:1\n\n\r\n-1 2:1\n\n",
		"trailing blanks":     "1 1:1 \t \n-1 2:1   \n",
		"comments in between": "# head\n1 1:1\n# mid\n-1 2:1\n# tail",
	} {
		rows, errs := parseAll(t, []byte(data), dataset.NewLIBSVM(), dataset.ScanOptions{})
		if len(errs) > 0 {
			t.Errorf("%s: %v", name, errs[0])
		}
		var got []string
		for _, r := range rows {
			got = append(got, rowString(r))
		}
		if want := "[1 0:1 -1 1:1]"; fmt.Sprint(got) != want {
			t.Errorf("%s: rows %v, want %v", name, got, want)
		}
	}
}

func TestScannerEmptyAndCommentOnly(t *testing.T) {
	for name, data := range map[string]string{
		"empty file":           "",
		"only comments":        "# a comment\n#another\n   # indented\n",
		"only blank lines":     "\n\n\r\n  \n",
		"comments, no newline": "# x",
	} {
		sc := dataset.NewScanner(strings.NewReader(data), dataset.NewLIBSVM(), dataset.ScanOptions{})
		var row dataset.Row
		if err := sc.Next(&row); err != io.EOF {
			t.Errorf("%s: Next = %v, want io.EOF", name, err)
		}
	}
}

func TestScannerLineNumbersAndSkipping(t *testing.T) {
	data := "1 1:1\n1 0:1\n# c\n1 2:x\n1 3:1\n"
	sc := dataset.NewScanner(strings.NewReader(data), dataset.NewLIBSVM(), dataset.ScanOptions{Object: "o", FirstLine: 10})
	var row dataset.Row
	var lines []int64
	var reasons []string
	good := 0
	for {
		err := sc.Next(&row)
		if err == io.EOF {
			break
		}
		var pe *dataset.ParseError
		if errors.As(err, &pe) {
			lines = append(lines, pe.Line)
			reasons = append(reasons, pe.Reason)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		good++
	}
	if good != 2 || fmt.Sprint(lines) != "[11 13]" || reasons[0] != dataset.ReasonIndex || reasons[1] != dataset.ReasonValue {
		t.Errorf("good %d, bad lines %v %v", good, lines, reasons)
	}
	if sc.Lines() != 5 || sc.Pos() != int64(len(data)) {
		t.Errorf("Lines %d Pos %d, want 5 and %d", sc.Lines(), sc.Pos(), len(data))
	}
}

// TestScannerRangesTile checks that byte ranges cut anywhere give every line
// to exactly one range, in order, whatever the buffer size.
func TestScannerRangesTile(t *testing.T) {
	var b bytes.Buffer
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&b, "%d %d:1 %d:%d\n", i%2, i+1, i+2, i)
		if i%37 == 0 {
			b.WriteString("# comment\n\n")
		}
	}
	b.WriteString("1 1:7") // no final newline
	data := b.Bytes()
	want, _ := parseAll(t, data, dataset.NewLIBSVM(), dataset.ScanOptions{})
	rng := rand.New(rand.NewPCG(7, 7))
	for trial := 0; trial < 50; trial++ {
		cuts := []int64{0}
		for k := 0; k < 1+rng.IntN(8); k++ {
			cuts = append(cuts, rng.Int64N(int64(len(data))))
		}
		cuts = append(cuts, int64(len(data)))
		sortInt64(cuts)
		var got []dataset.Row
		var lines int64
		for k := 0; k+1 < len(cuts); k++ {
			start, end := cuts[k], cuts[k+1]
			from := start
			opts := dataset.ScanOptions{Offset: start, End: end, BufferSize: 1 + rng.IntN(64)}
			if start > 0 {
				from = start - 1
				opts.Offset, opts.SkipPartialLine = from, true
			}
			rows, errs := parseAll(t, data[from:], dataset.NewLIBSVM(), opts)
			if len(errs) > 0 {
				t.Fatalf("range %d-%d: %v", start, end, errs[0])
			}
			got = append(got, rows...)
			sc := dataset.NewScanner(bytes.NewReader(data[from:]), dataset.NewLIBSVM(), opts)
			for sc.Next(&dataset.Row{}) != io.EOF {
			}
			lines += sc.Lines()
		}
		if len(got) != len(want) {
			t.Fatalf("cuts %v: %d rows, want %d", cuts, len(got), len(want))
		}
		for i := range got {
			if rowString(got[i]) != rowString(want[i]) {
				t.Fatalf("cuts %v: row %d = %s, want %s", cuts, i, rowString(got[i]), rowString(want[i]))
			}
		}
		if total := int64(bytes.Count(data, []byte{'\n'}) + 1); lines != total {
			t.Fatalf("cuts %v: ranges consumed %d lines, the file has %d", cuts, lines, total)
		}
	}
}

func sortInt64(xs []int64) {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j] < xs[j-1]; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

func TestOpenRangeOnAStore(t *testing.T) {
	ctx := context.Background()
	st, _ := fileblob.New(t.TempDir())
	data := readTestdata(t, "heart_scale")
	if err := st.Put(ctx, "heart", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	size := int64(len(data))
	total := 0
	for _, r := range [][2]int64{{0, size / 3}, {size / 3, 2 * size / 3}, {2 * size / 3, size}} {
		rc, opts, err := dataset.OpenRange(ctx, st, "heart", r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		rows, errs := parseAll(t, mustRead(t, rc), dataset.NewLIBSVM(), opts)
		rc.Close()
		if len(errs) > 0 {
			t.Fatal(errs[0])
		}
		if !strings.HasSuffix(opts.Object, "/heart") {
			t.Errorf("Object = %q", opts.Object)
		}
		total += len(rows)
	}
	if total != 270 {
		t.Errorf("three ranges gave %d rows, want 270", total)
	}
	// A missing object is reported before any parsing.
	_, _, err := dataset.OpenRange(ctx, st, "missing.svm", 0, 10)
	if !errors.Is(err, blob.ErrNotFound) || !strings.Contains(err.Error(), "missing.svm") {
		t.Errorf("OpenRange of a missing object: %v", err)
	}
}

func mustRead(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestScannerReadError(t *testing.T) {
	boom := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("1 1:1\n1 2:"), iotest.ErrReader(boom))
	sc := dataset.NewScanner(r, dataset.NewLIBSVM(), dataset.ScanOptions{Object: "s3://b/k"})
	var row dataset.Row
	if err := sc.Next(&row); err != nil {
		t.Fatal(err)
	}
	err := sc.Next(&row)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "s3://b/k") {
		t.Errorf("Next after a read error = %v, want the error naming the object", err)
	}
}

// TestLongLines: a valid 10 MB line parses; a line over the limit is
// reported (cut short) and skipped, and scanning goes on.
func TestLongLines(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("1")
	n := 0
	for b.Len() < 10<<20 {
		n++
		fmt.Fprintf(&b, " %d:0.5", n)
	}
	long := b.Bytes()
	data := append(append([]byte("0 1:1\n"), long...), "\n1 2:1\n"...)
	rows, errs := parseAll(t, data, dataset.NewLIBSVM(), dataset.ScanOptions{BufferSize: 4096})
	if len(errs) > 0 || len(rows) != 3 || len(rows[1].Indices) != n {
		t.Fatalf("10 MB line: %d rows, %d errors, middle row has %d entries (want %d)", len(rows), len(errs), len(rows[1].Indices), n)
	}

	rows, errs = parseAll(t, data, dataset.NewLIBSVM(), dataset.ScanOptions{Object: "big.svm", MaxLineBytes: 1 << 20, BufferSize: 4096})
	if len(rows) != 2 || len(errs) != 1 {
		t.Fatalf("with a 1 MiB limit: %d rows, %d errors; want 2 and 1", len(rows), len(errs))
	}
	pe := errs[0]
	if pe.Reason != dataset.ReasonLineTooLong || pe.Line != 2 || pe.Offset != 6 || len(pe.Text) > 70 {
		t.Errorf("too-long error: %+v", pe)
	}
	if !strings.Contains(pe.Error(), "big.svm:2:") || !strings.Contains(pe.Error(), "1048576 bytes") {
		t.Errorf("message: %s", pe.Error())
	}
	// A too-long last line without a newline.
	rows, errs = parseAll(t, append([]byte("0 1:1\n"), long...), dataset.NewLIBSVM(), dataset.ScanOptions{MaxLineBytes: 1 << 20})
	if len(rows) != 1 || len(errs) != 1 {
		t.Errorf("too-long last line: %d rows, %d errors", len(rows), len(errs))
	}
}

func TestCountLines(t *testing.T) {
	for data, want := range map[string]int64{"": 0, "a": 1, "a\n": 1, "a\nb": 2, "\n\n": 2} {
		got, err := dataset.CountLines(strings.NewReader(data))
		if err != nil || got != want {
			t.Errorf("CountLines(%q) = %d, %v; want %d", data, got, err, want)
		}
	}
}

func TestMissingFile(t *testing.T) {
	st, _ := fileblob.New(filepath.Join(t.TempDir(), "nowhere"))
	_, err := st.Get(context.Background(), "train.svm")
	if !errors.Is(err, blob.ErrNotFound) || !strings.Contains(err.Error(), "train.svm") {
		t.Errorf("Get of a missing file: %v", err)
	}
}
