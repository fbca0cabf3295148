package dataset_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/stratus-ml/stratus/dataset"
)

// rowTrace is everything a RowReader gives, one line per Next: the row and
// its line's offset (or the error, with its object, line and offset) and
// Lines after it; at the end, Pos.
func rowTrace(t *testing.T, sc dataset.RowReader) string {
	t.Helper()
	var b strings.Builder
	var row dataset.Row
	for {
		err := sc.Next(&row)
		if err == io.EOF {
			fmt.Fprintf(&b, "EOF %d at %d\n", sc.Lines(), sc.Pos())
			return b.String()
		}
		var pe *dataset.ParseError
		switch {
		case errors.As(err, &pe):
			fmt.Fprintf(&b, "bad %s @%d row@%d (%d)\n", pe, pe.Offset, sc.RowOffset(), sc.Lines())
		case err != nil:
			fmt.Fprintf(&b, "error %v (%d)\n", err, sc.Lines())
			return b.String()
		default:
			fmt.Fprintf(&b, "%g %v %v @%d (%d)\n", row.Label, row.Indices, row.Values, sc.RowOffset(), sc.Lines())
		}
	}
}

// streamContent is a9a three times over (several chunks of a
// StreamScanner), with bad lines, blank and comment lines, CRLF endings,
// a line longer than the 1 MiB chunk a StreamScanner starts with, lines
// over the 64 KiB limit (one across chunks), and a last line without "\n".
func streamContent(t *testing.T) []byte {
	a9a, err := os.ReadFile("../testdata/a9a")
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(bytes.Repeat(a9a, 3), []byte("\n"))
	lines = lines[:len(lines)-1]
	long := func(n int) []byte { return []byte("+1 " + strings.Repeat("1:1 ", n/4) + "\n") }
	for _, c := range []struct {
		at   int
		line []byte
	}{
		{5, []byte("+1 3:x\n")},
		{100, []byte("\n")},
		{101, []byte("# comment\n")},
		{200, []byte("-1 5:1 9:1\r\n")},
		{7000, long(80 << 10)},          // too long
		{15000, long(3 << 20)},          // too long, across chunks
		{30000, []byte("-1 2:1 2:1\n")}, // duplicate index
		{60000, long(60 << 10)},         // under the limit
	} {
		lines[c.at] = c.line
	}
	out := bytes.Join(lines, nil)
	return append(out, "+1 7:1"...)
}

// TestStreamScanner: a StreamScanner of gzip, zstd (one frame decoded whole,
// several frames, a frame streamed) and bzip2 streams gives what a Scanner
// of the plain content gives, row by row, error by error, with the same line
// numbers, offsets and line counts, on 1, 2 and 4 cores (GOMAXPROCS); on
// more than one it parses on several goroutines.
func TestStreamScanner(t *testing.T) {
	plain := streamContent(t)
	opts := dataset.ScanOptions{Object: "data", MaxLineBytes: 64 << 10}
	want := rowTrace(t, dataset.NewScanner(bytes.NewReader(plain), dataset.NewLIBSVM(), opts))
	for _, w := range []string{"bad data:6:", "bad data:7001:1: line too long", "bad data:30001:", "EOF 97684 at "} {
		if !strings.Contains(want, w) {
			t.Fatalf("the plain trace lacks %q", w)
		}
	}
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	var streamed bytes.Buffer
	zw, _ := zstd.NewWriter(&streamed)
	zw.Write(plain)
	zw.Close()
	half := bytes.LastIndexByte(plain[:len(plain)/2], '\n') + 1
	heart, err := os.ReadFile("../testdata/heart_scale")
	if err != nil {
		t.Fatal(err)
	}
	heartBz2, err := os.ReadFile("../operators/load/testdata/heart_scale.bz2")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, codec string
		data, plain []byte
	}{
		{"gzip", dataset.CodecGzip, gzipped(plain), plain},
		{"zstd", dataset.CodecZstd, enc.EncodeAll(plain, nil), plain},
		{"zstd frames", dataset.CodecZstd, append(enc.EncodeAll(plain[:half], nil), enc.EncodeAll(plain[half:], nil)...), plain},
		{"zstd streamed", dataset.CodecZstd, streamed.Bytes(), plain},
		{"bzip2", dataset.CodecBzip2, heartBz2, heart},
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 2, 4} {
		runtime.GOMAXPROCS(procs)
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/procs=%d", c.name, procs), func(t *testing.T) {
				want := want
				if c.codec == dataset.CodecBzip2 {
					want = rowTrace(t, dataset.NewScanner(bytes.NewReader(c.plain), dataset.NewLIBSVM(), opts))
				}
				sc, err := dataset.NewStreamScanner(bytes.NewReader(c.data), c.codec, func() (dataset.Format, error) { return dataset.NewLIBSVM(), nil }, opts)
				if err != nil {
					t.Fatal(err)
				}
				defer sc.Close()
				got := rowTrace(t, sc)
				if got != want {
					t.Errorf("the stream's rows differ from the plain file's:\n%s", firstDiff(got, want))
				}
				if procs > 1 && sc.Workers() < 2 || procs == 1 && sc.Workers() != 1 {
					t.Errorf("GOMAXPROCS %d: %d parser goroutine(s)", procs, sc.Workers())
				}
			})
		}
	}
}

// TestStreamScannerCorrupt: a truncated stream gives a prefix of the plain
// rows, then the decoder's error; Close in the middle of a stream stops its
// goroutines (and waits for them: -race sees their writes end).
func TestStreamScannerCorrupt(t *testing.T) {
	plain := streamContent(t)
	opts := dataset.ScanOptions{Object: "data", MaxLineBytes: 64 << 10}
	want := rowTrace(t, dataset.NewScanner(bytes.NewReader(plain), dataset.NewLIBSVM(), opts))
	libsvm := func() (dataset.Format, error) { return dataset.NewLIBSVM(), nil }
	gz := gzipped(plain)
	sc, err := dataset.NewStreamScanner(bytes.NewReader(gz[:len(gz)/2]), dataset.CodecGzip, libsvm, opts)
	if err != nil {
		t.Fatal(err)
	}
	got := rowTrace(t, sc)
	sc.Close()
	i := strings.LastIndexByte(strings.TrimSuffix(got, "\n"), '\n') + 1
	if last := got[i:]; !strings.HasPrefix(last, "error reading data: ") || !strings.HasPrefix(want, got[:i]) || i < len(want)/4 {
		t.Errorf("a truncated stream gave %d bytes of trace (a prefix: %v), ending %q", i, strings.HasPrefix(want, got[:i]), last)
	}

	sc, err = dataset.NewStreamScanner(bytes.NewReader(gz), dataset.CodecGzip, libsvm, opts)
	if err != nil {
		t.Fatal(err)
	}
	var row dataset.Row
	for range 1000 {
		if err := sc.Next(&row); err != nil {
			var pe *dataset.ParseError
			if !errors.As(err, &pe) {
				t.Fatal(err)
			}
		}
	}
	if err := sc.Close(); err != nil { // waits for its goroutines
		t.Fatal(err)
	}
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// firstDiff shows where two traces part.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d:\n got %.200s\nwant %.200s", i+1, g[i], w[i])
		}
	}
	return fmt.Sprintf("got %d lines, want %d", len(g), len(w))
}
