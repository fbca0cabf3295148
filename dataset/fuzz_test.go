package dataset_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stratus-ml/stratus/dataset"
)

// checkRow asserts the invariants every parser guarantees.
func checkRow(t *testing.T, f dataset.Format, r *dataset.Row) {
	t.Helper()
	if math.IsNaN(float64(r.Label)) || math.IsInf(float64(r.Label), 0) {
		t.Fatalf("label %v", r.Label)
	}
	if len(r.Indices) != len(r.Values) {
		t.Fatalf("%d indices, %d values", len(r.Indices), len(r.Values))
	}
	for k, ix := range r.Indices {
		if k > 0 && ix <= r.Indices[k-1] {
			t.Fatalf("indices not increasing: %v", r.Indices)
		}
		if n := f.Features(); n > 0 && int(ix) >= n {
			t.Fatalf("slot %d >= %d features", ix, n)
		}
		if v := float64(r.Values[k]); v != v || v > 3.5e38 || v < -3.5e38 {
			t.Fatalf("value %v", v)
		}
	}
}

func checkErr(t *testing.T, err error) {
	t.Helper()
	var pe *dataset.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a ParseError", err)
	}
	if pe.Reason == "" || pe.Column < 1 || len(pe.Text) > 70 || !utf8.ValidString(pe.Error()) {
		t.Fatalf("bad ParseError %+v", pe)
	}
}

func FuzzLIBSVM(f *testing.F) {
	for _, s := range []string{
		"-1 3:1 11:1 14:1 19:1 39:1 42:1 55:1 64:1 67:1 73:1 75:1 76:1 80:1 83:1 ",
		"+1 1:0.708333 2:1 3:1 4:-0.320755 5:-0.105023 6:-1 7:1 8:-0.419847 9:-1 10:-0.225806 12:1 13:-1 ",
		"1 5:1 2:3 9:-1", "1 qid:3 2:1 # c", "# comment", "", "2 1:1", "1 0:1", "1 -3:1", "1 2:1 2:1",
		"1 3:NaN", "1 3:1e39", "1 4294967297:1", "1 3:1.2.3", "\xff 2:1", "1 2:\xff", "1\t2:.5e-3\t3:7.",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		p := dataset.NewLIBSVM()
		var row dataset.Row
		ok, err := p.ParseLine(line, &row)
		if err != nil {
			checkErr(t, err)
			return
		}
		if !ok {
			return
		}
		checkRow(t, p, &row)
		// Printing the row back and parsing it gives the same row.
		var b strings.Builder
		b.WriteString(strconv.Itoa(int(row.Label)))
		for k := range row.Indices {
			b.WriteString(" " + strconv.FormatUint(uint64(row.Indices[k])+1, 10) + ":" + strconv.FormatFloat(float64(row.Values[k]), 'g', -1, 32))
		}
		var again dataset.Row
		if ok, err := p.ParseLine([]byte(b.String()), &again); !ok || err != nil || rowString(again) != rowString(row) {
			t.Fatalf("round trip of %q: %q gave %v %v", line, b.String(), rowString(again), err)
		}
	})
}

func FuzzCriteo(f *testing.F) {
	good := criteoLine("0", fill(13, "1"), fill(26, "68fd1e64"))
	for _, s := range []string{good, criteoLine("1", fill(13, ""), fill(26, "")), good + "\tx", good[2:], "",
		strings.Replace(good, "1", "NaN", 1), strings.Replace(good, "68fd1e64", "\xff", 3)} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, line []byte, log1p bool) {
		c, _ := dataset.NewCriteo(dataset.CriteoOptions{HashBits: 10, Log1p: log1p})
		var row dataset.Row
		ok, err := c.ParseLine(line, &row)
		if err != nil {
			checkErr(t, err)
			return
		}
		if ok {
			checkRow(t, c, &row)
		}
	})
}

func FuzzCSV(f *testing.F) {
	f.Add([]byte("id,age,city,label"), []byte(`1,39,"New York, NY",1`))
	f.Add([]byte("a,b,label"), []byte(`1,"x""y",0`))
	f.Add([]byte("a,b,label"), []byte(`1,"x,1`))
	f.Add([]byte("a,\"b"), []byte(`1,2`))
	f.Add([]byte("a,b,label"), []byte("\xff,\xfe,1"))
	f.Fuzz(func(t *testing.T, header, line []byte) {
		c, err := dataset.NewCSV(header, dataset.CSVOptions{Label: "label", HashBits: 8})
		if err != nil {
			return
		}
		cols := c.Columns()
		if len(cols) > 1 {
			c, err = dataset.NewCSV(header, dataset.CSVOptions{Label: "label", Categorical: cols[len(cols)-1:], HashBits: 8})
			if err != nil {
				c, _ = dataset.NewCSV(header, dataset.CSVOptions{Label: "label", HashBits: 8})
			}
		}
		var row dataset.Row
		ok, err := c.ParseLine(line, &row)
		if err != nil {
			checkErr(t, err)
			return
		}
		if ok {
			checkRow(t, c, &row)
		}
		_, _ = dataset.InferCSVCategorical(append(append(header, '\n'), line...), "label", 0)
	})
}

// FuzzScanner feeds arbitrary bytes through the Scanner with small buffers
// and line limits: it must never panic, and it must consume every line.
func FuzzScanner(f *testing.F) {
	f.Add([]byte("1 1:1\n-1 2:1\r\n# c\n\n1 3:x"), uint16(7), uint16(16))
	f.Add([]byte(strings.Repeat("1 1:1 ", 50)+"\n1 2:1"), uint16(1), uint16(10))
	f.Add([]byte{}, uint16(0), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, bufSize, maxLine uint16) {
		sc := dataset.NewScanner(bytes.NewReader(data), dataset.NewLIBSVM(), dataset.ScanOptions{
			BufferSize: int(bufSize), MaxLineBytes: int(maxLine),
		})
		var row dataset.Row
		for i := 0; ; i++ {
			if i > len(data)+1 {
				t.Fatal("scanner does not terminate")
			}
			err := sc.Next(&row)
			if err == io.EOF {
				break
			}
			if err != nil {
				checkErr(t, err)
			}
		}
		want := int64(bytes.Count(data, []byte{'\n'}))
		if len(data) > 0 && data[len(data)-1] != '\n' {
			want++
		}
		if sc.Lines() != want || sc.Pos() != int64(len(data)) {
			t.Fatalf("consumed %d lines to %d; the input has %d lines, %d bytes", sc.Lines(), sc.Pos(), want, len(data))
		}
	})
}
