package dataset_test

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/dataset"
)

func FuzzJSONL(f *testing.F) {
	for _, s := range []string{
		`{"label": 1, "age": 39, "city": "New York", "meta": {"a": [1, "}"]}}`,
		`{"city":"x\"y\u00e9","label":false,"age":null}`,
		`{"label": "1", "age": 1e39}`, `{"label": 1, "age": 1, "age": 2}`, `{"label": 1,}`, `{"label": 1} x`,
		`[1]`, `{"label": 2}`, `{"label": 1, "age": "x"}`, `{"label": 1, "zip": 7}`, `{"label": 1, "age": tru}`,
		`{"label": 1, "city": "\xff"}`, `{"label": 1, "city": "unterminated}`, `  `, `{}`, `{"label`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		j, err := dataset.NewJSONL(dataset.JSONLOptions{Label: "label", Numeric: []string{"age", "income"}, Categorical: []string{"city"}, Ignore: []string{"meta"}, HashBits: 8})
		if err != nil {
			t.Fatal(err)
		}
		var row dataset.Row
		ok, err := j.ParseLine(line, &row)
		if err != nil {
			checkErr(t, err)
			return
		}
		if !ok {
			return
		}
		checkRow(t, j, &row)
		// What the parser accepts as an object, encoding/json does too
		// (except under an ignored key, which is skipped, not checked, and
		// numbers, which are read as LIBSVM and CSV read them: "+1", ".5").
		var obj map[string]any
		if err := json.Unmarshal(line, &obj); err != nil && !bytes.Contains(line, []byte(`"meta"`)) && !bytes.ContainsAny(line, "+.eE0123456789") {
			t.Fatalf("accepted %q, which encoding/json rejects: %v", line, err)
		}
		numeric, categorical, nested := dataset.InferJSONL(append(line, '\n'), "label", nil)
		_, _, _ = numeric, categorical, nested
	})
}

// FuzzCSVOptions: a tab delimiter and files without a header line.
func FuzzCSVOptions(f *testing.F) {
	f.Add([]byte("39\tNew York, NY\t1"), uint8(3))
	f.Add([]byte("1\t\"x\"\"y\"\t0"), uint8(2))
	f.Add([]byte("1\t\"x\t1"), uint8(3))
	f.Add([]byte("0\t1\t2"), uint8(3))
	f.Fuzz(func(t *testing.T, line []byte, n uint8) {
		cols := dataset.PositionColumns(1 + int(n%6))
		c, err := dataset.NewCSV(nil, dataset.CSVOptions{Label: "0", Categorical: cols[len(cols)-1:], HashBits: 8, Comma: '\t', Columns: cols})
		if err != nil {
			if len(cols) == 1 {
				return // the label cannot also be categorical
			}
			t.Fatal(err)
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
		_, _ = dataset.CountCSVFields(line, '\t')
	})
}

// FuzzSniff: Sniff takes any bytes, and decoding them with each codec ends
// (in an error or EOF) without panicking.
func FuzzSniff(f *testing.F) {
	for _, s := range []string{"\x1f\x8b\x08\x00\x00\x00\x00\x00", "\x28\xb5\x2f\xfd\x00", "BZh91AY&SY\x00", "PAR1", "\xff\xfea\x00", "1 1:1\n\x00", "a,b\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		c := dataset.Sniff(head)
		if c.Kind != "" && c.Advice == "" {
			t.Fatalf("%q: %+v without advice", head, c)
		}
		for _, codec := range []string{dataset.CodecGzip, dataset.CodecZstd, dataset.CodecBzip2} {
			zr, err := dataset.Decompress(bytes.NewReader(head), codec)
			if err != nil {
				continue
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(zr, 1<<20))
			zr.Close()
		}
	})
}

// FuzzParquet opens arbitrary bytes as a Parquet file, maps its schema
// (what the load coordinator does with every footer), checks every page a
// task would read and reads every row (what a task does): it must fail with
// an error or succeed, never panic, hang or allocate what a corrupt footer,
// page header or page claims (parquet_bounds.go and parquet_pagedata.go
// refuse such files before parquet-go decodes them; seed 1cc2ab53ee9d1a2d
// made it allocate 3 GiB). Memory is bounded by the page limits
// (MaxParquetPageBytes, MaxParquetPageValues), not by the input: a read
// allocating more than maxFuzzAlloc fails.
func FuzzParquet(f *testing.F) {
	good, err := os.ReadFile("testdata/people.parquet")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(append([]byte("PAR1"), good[len(good)-200:]...))
	for _, at := range []int{10, 500, len(good) - 300, len(good) - 9} {
		b := append([]byte(nil), good...)
		b[at] ^= 0x5a
		f.Add(b)
	}
	opts := dataset.ParquetOptions{Label: "clicked", Ignore: []string{"id"}, HashBits: 8}
	layout := dataset.NewLIBSVM() // row checks without a fixed feature count: a fuzzed schema decides it
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _ = dataset.ParquetFooter(data, opts)
		_, _ = dataset.ReadParquetBytes(data, opts, func(row *dataset.Row) { checkRow(t, layout, row) })
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > maxFuzzAlloc {
			t.Fatalf("reading %d bytes allocated %d", len(data), n)
		}
	})
}

// maxFuzzAlloc bounds what reading a fuzzed Parquet file may allocate: a
// page of the largest size allowed, decompressed by the check and by
// parquet-go, and its values.
const maxFuzzAlloc = 4*dataset.MaxParquetPageBytes + 8*dataset.MaxParquetPageValues

// TestParquetCorrupt reads every row of 300 damaged copies of the test file
// (bytes changed, lengths set huge, the file cut short): each read ends in
// rows or an error, never a panic.
func TestParquetCorrupt(t *testing.T) {
	good, err := os.ReadFile("testdata/people.parquet")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 300; i++ {
		b := append([]byte(nil), good...)
		for k := 0; k < 1+r.IntN(3); k++ {
			b[r.IntN(len(b))] = byte(r.IntN(256))
		}
		if r.IntN(4) == 0 {
			b = b[:r.IntN(len(b))]
		}
		_, _ = dataset.ReadParquetBytes(b, dataset.ParquetOptions{Label: "clicked", Ignore: []string{"id"}, HashBits: 8}, func(row *dataset.Row) {
			checkRow(t, dataset.ParquetLayout(nil, nil, 8), row)
		})
	}
}

// FuzzLIBSVMHashed: with hash_bits, a line parses exactly when it does
// without, into the unhashed row's slots hashed, values of shared slots
// added.
func FuzzLIBSVMHashed(f *testing.F) {
	for _, s := range []string{"+1 1:0.5 2:1 3:2 4:4 5:8 9:16", "1 5:1 2:3 9:-1", "1 2:1 2:1", "1 3:3e38 7:3e38", "# c", "2 1:1"} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, line []byte, bits uint8) {
		b := 1 + int(bits%dataset.MaxHashBits)
		h, err := dataset.NewLIBSVMHashed(b)
		if err != nil {
			t.Fatal(err)
		}
		var row, plain dataset.Row
		ok, err := h.ParseLine(line, &row)
		pok, perr := dataset.NewLIBSVM().ParseLine(line, &plain)
		if err != nil {
			checkErr(t, err)
			if perr == nil && !strings.Contains(err.Error(), dataset.ReasonNonFinite) {
				t.Fatalf("%q: hashed fails (%v), plain parses", line, err)
			}
			return
		}
		if perr != nil || ok != pok {
			t.Fatalf("%q: hashed %v %v, plain %v %v", line, ok, err, pok, perr)
		}
		if ok {
			checkRow(t, h, &row)
		}
	})
}
