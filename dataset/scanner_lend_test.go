package dataset

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// lineRecorder is a Format that keeps each line it is given; a line
// holding "BAD" is a bad line.
type lineRecorder struct{ lines []string }

func (*lineRecorder) Name() string  { return "lines" }
func (*lineRecorder) Features() int { return 0 }
func (l *lineRecorder) ParseLine(line []byte, _ *Row) (bool, error) {
	if strings.Contains(string(line), "BAD") {
		return false, &ParseError{Column: 1, Text: snippet(line), Reason: ReasonLabel}
	}
	l.lines = append(l.lines, string(line))
	return len(line) > 0, nil
}

// loans lends data in pieces of random sizes (overwriting the previous
// piece's bytes when it lends the next, as a decoder reusing its buffer
// does).
type loans struct {
	data string
	rng  *rand.Rand
	max  int
	buf  []byte
}

func (l *loans) Read(p []byte) (int, error) { panic("the Scanner reads a lender by loans") }

func (l *loans) lender() func() ([]byte, error) {
	return func() ([]byte, error) {
		for i := range l.buf {
			l.buf[i] = 'Z' // the last loan is no longer valid
		}
		if len(l.data) == 0 {
			return nil, io.EOF
		}
		n := min(1+l.rng.IntN(l.max), len(l.data))
		l.buf = append(l.buf[:0], l.data[:n]...)
		l.data = l.data[n:]
		return l.buf, nil
	}
}

// scanTrace is everything a scan gives: lines, errors with their places,
// and the Scanner's position after each.
func scanTrace(r io.Reader, opts ScanOptions) string {
	f := &lineRecorder{}
	sc := NewScanner(r, f, opts)
	var b strings.Builder
	var row Row
	for {
		n := len(f.lines)
		err := sc.Next(&row)
		if len(f.lines) > n {
			fmt.Fprintf(&b, "%q@%d ", f.lines[len(f.lines)-1], sc.Pos())
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintf(&b, "[%v]@%d ", err, sc.Pos())
			if _, ok := err.(*ParseError); !ok {
				break
			}
		}
	}
	fmt.Fprintf(&b, "lines=%d", sc.Lines())
	return b.String()
}

// Lines found in place in lent bytes are those read from a copy: however
// the loans cut the lines, with long lines, CRLF, a missing final newline,
// bad lines, and ranges that skip a partial line or end early.
func TestScannerLoansMatchReads(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var text strings.Builder
	for i := 0; i < 400; i++ {
		switch rng.IntN(10) {
		case 0:
			text.WriteString(strings.Repeat("long", 10+rng.IntN(40)) + "\n")
		case 1:
			text.WriteString("BAD line\n")
		case 2:
			text.WriteString("\r\n")
		case 3:
			text.WriteString("crlf line\r\n")
		default:
			fmt.Fprintf(&text, "%d %s\n", i, strings.Repeat("x", rng.IntN(20)))
		}
	}
	text.WriteString("last line without newline")
	data := text.String()
	for _, opts := range []ScanOptions{
		{},
		{BufferSize: 16},
		{MaxLineBytes: 50, BufferSize: 16},
		{MaxLineBytes: 120},
		{SkipPartialLine: true, Offset: 100},
		{SkipPartialLine: true, Offset: 100, End: 2000},
		{End: 3000, FirstLine: 7},
	} {
		want := scanTrace(strings.NewReader(data), opts)
		for _, maxLoan := range []int{1, 3, 17, 200, 5000} {
			got := scanTrace(&loans{data: data, rng: rand.New(rand.NewPCG(uint64(maxLoan), 9)), max: maxLoan}, opts)
			if got != want {
				i := 0
				for i < len(got) && i < len(want) && got[i] == want[i] {
					i++
				}
				from := max(0, i-150)
				t.Errorf("%+v, loans of up to %d bytes, from byte %d:\n got %.300s\nwant %.300s", opts, maxLoan, from, got[from:], want[from:])
			}
		}
	}
}
