package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// lineDigest is a Format whose row is its line's length and first bytes; a
// line holding "BAD" is a bad line, a blank one holds no row.
type lineDigest struct{}

func (lineDigest) Name() string  { return "digest" }
func (lineDigest) Features() int { return 0 }
func (lineDigest) ParseLine(line []byte, row *Row) (bool, error) {
	if bytes.Contains(line, []byte("BAD")) {
		return false, &ParseError{Column: 1 + bytes.Index(line, []byte("BAD")), Text: snippet(line), Reason: ReasonValue}
	}
	if len(line) == 0 {
		return false, nil
	}
	row.Label = float32(len(line))
	row.Indices, row.Values = row.Indices[:0], row.Values[:0]
	for i, c := range line[:min(len(line), 4)] {
		row.Indices = append(row.Indices, uint32(i))
		row.Values = append(row.Values, float32(c))
	}
	return true, nil
}

// traceOf is every Next of sc: the row and its offset, or the error with
// its line and offset, then Lines; at the end, Pos.
func traceOf(sc RowReader) string {
	var b strings.Builder
	var row Row
	for {
		err := sc.Next(&row)
		var pe *ParseError
		switch {
		case err == io.EOF:
			fmt.Fprintf(&b, "EOF %d %d\n", sc.Lines(), sc.Pos())
			return b.String()
		case errors.As(err, &pe):
			fmt.Fprintf(&b, "bad %s @%d row@%d (%d)\n", pe, pe.Offset, sc.RowOffset(), sc.Lines())
		case err != nil:
			fmt.Fprintf(&b, "error %v\n", err)
			return b.String()
		default:
			fmt.Fprintf(&b, "%g %v %v @%d (%d)\n", row.Label, row.Indices, row.Values, sc.RowOffset(), sc.Lines())
		}
	}
}

// FuzzStreamScanner: a StreamScanner cutting a gzip stream into chunks of
// any size gives what a Scanner of the plain content gives (rows, errors,
// line numbers, offsets, too-long lines), parsing on several goroutines.
// The seeds run as an ordinary test.
func FuzzStreamScanner(f *testing.F) {
	for _, seed := range []struct {
		data          string
		chunk, maxLen uint8
	}{
		{"a\nbb\nccc\n", 1, 8},
		{"a\r\nBAD\n\nlast", 3, 8},
		{"short\n" + strings.Repeat("x", 40) + "\nafter\n", 4, 16},
		{strings.Repeat("y", 40), 5, 16},
		{"ok\n" + strings.Repeat("z", 17) + "\n" + strings.Repeat("w", 16) + "\nBAD line\n", 2, 16},
		{"\n\n\n", 1, 1},
		{"", 1, 4},
	} {
		f.Add([]byte(seed.data), seed.chunk, seed.maxLen)
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk, maxLen uint8) {
		opts := ScanOptions{Object: "f", MaxLineBytes: 1 + int(maxLen)}
		want := traceOf(NewScanner(bytes.NewReader(data), lineDigest{}, opts))
		var gz bytes.Buffer
		w := gzip.NewWriter(&gz)
		w.Write(data)
		w.Close()
		sc, err := NewStreamScanner(bytes.NewReader(gz.Bytes()), CodecGzip, func() (Format, error) { return lineDigest{}, nil }, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		sc.chunk = 1 + int(chunk%64)
		if got := traceOf(sc); got != want {
			t.Errorf("chunks of %d, lines up to %d bytes: got\n%s\nwant\n%s", sc.chunk, opts.MaxLineBytes, got, want)
		}
		if runtime.GOMAXPROCS(0) > 1 && sc.Workers() < 2 {
			t.Errorf("%d parser goroutine(s)", sc.Workers())
		}
	})
}
