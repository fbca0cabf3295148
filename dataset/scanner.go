package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/stratus-ml/stratus/blob"
)

// Format parses one line of a text format.
type Format interface {
	// Name is the format's name in pipelines: "libsvm", "criteo" or "csv".
	Name() string
	// Features is the size of the feature space (every slot is below it),
	// or 0 when the data decides (LIBSVM).
	Features() int
	// ParseLine parses line (without its "\n" or "\r\n") into row, reusing
	// row's slices. It returns false, nil for a line that holds no row (a
	// blank line, a comment, a CSV header). A bad line gives a *ParseError
	// with Column, Text, Reason and Detail set; row is then unspecified.
	ParseLine(line []byte, row *Row) (bool, error)
}

const (
	// DefaultMaxLineBytes bounds a line's length; longer lines are rejected
	// with ReasonLineTooLong (and skipped in skip mode).
	DefaultMaxLineBytes = 64 << 20
	// DefaultBufferSize is the Scanner's initial read buffer.
	DefaultBufferSize = 1 << 20
)

// ScanOptions say where a Scanner's input sits in its object.
type ScanOptions struct {
	// Object names the object in errors (its URI or file name).
	Object string
	// FirstLine is the line number of the first line read; 0 means 1.
	// A range that starts mid-object does not know its line numbers; leave
	// it 0 and add the lines of the earlier ranges to ParseError.Line, or
	// count them with CountLines.
	FirstLine int64
	// Offset is the object offset of the reader's first byte.
	Offset int64
	// SkipPartialLine discards everything up to and including the first
	// "\n": the reader starts one byte before a range that begins mid-object
	// (see OpenRange), so the line in progress belongs to the range before.
	SkipPartialLine bool
	// End, if positive, is the object offset where the range ends: a line
	// that starts at or after End belongs to the next range and is not read
	// (a line that starts before End is read to its end, past End).
	End int64
	// MaxLineBytes defaults to DefaultMaxLineBytes.
	MaxLineBytes int
	// BufferSize is the initial read buffer; it defaults to
	// DefaultBufferSize and grows for longer lines.
	BufferSize int
}

// Scanner reads rows from a line-oriented stream.
//
//	for {
//		err := sc.Next(&row)
//		if err == io.EOF {
//			break
//		}
//		if err != nil {
//			var pe *dataset.ParseError
//			if errors.As(err, &pe) { // a bad line: fail, or count pe.Reason and go on
//				continue
//			}
//			return err // reading failed
//		}
//		use(row)
//	}
type Scanner struct {
	r      io.Reader
	f      Format
	opts   ScanOptions
	lend   func() ([]byte, error) // r's lend, when it lends (see lender)
	own    []byte                 // the Scanner's buffer, when buf is lent
	next   []byte                 // lent bytes not yet in buf
	lent   bool                   // buf is lent (read only, valid until the next lend)
	buf    []byte
	lo, hi int   // unread bytes are buf[lo:hi]
	pos    int64 // object offset of buf[lo]
	line   int64 // number of the next line
	lines  int64 // lines consumed
	rowOff int64 // object offset of the last row's line
	eof    bool
	err    error // sticky read error
	skip   bool  // SkipPartialLine still pending
}

// NewScanner returns a Scanner reading f-formatted lines from r.
func NewScanner(r io.Reader, f Format, opts ScanOptions) *Scanner {
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = DefaultMaxLineBytes
	}
	if opts.BufferSize <= 0 {
		opts.BufferSize = DefaultBufferSize
	}
	if opts.BufferSize > opts.MaxLineBytes+1 {
		opts.BufferSize = opts.MaxLineBytes + 1
	}
	first := opts.FirstLine
	if first <= 0 {
		first = 1
	}
	s := &Scanner{r: r, f: f, opts: opts, pos: opts.Offset, line: first, skip: opts.SkipPartialLine}
	if l, ok := r.(lender); ok {
		s.lend = l.lender()
	}
	if s.lend == nil {
		s.buf = make([]byte, opts.BufferSize)
	}
	return s
}

// lender is a reader that can lend the bytes it holds rather than copy
// them into the caller's buffer (a decoder's decoded frame or read-ahead
// block): the Scanner then finds lines in them in place, copying only a
// line cut between two loans. lender returns the function that lends, or
// nil if the reader cannot lend (it is then read as any reader). The
// function returns the next bytes (never empty), valid until its next
// call, or an error (io.EOF at the end).
type lender interface {
	lender() func() ([]byte, error)
}

// fillLent is fill for a lending reader.
func (s *Scanner) fillLent() bool {
	if s.eof || s.err != nil {
		return false
	}
	if s.lo == s.hi {
		// Nothing pending: look at the next loan in place.
		c := s.next
		if c == nil {
			var err error
			if c, err = s.borrow(); err != nil {
				return false
			}
		}
		s.buf, s.lo, s.hi, s.lent, s.next = c, 0, len(c), true, nil
		return true
	}
	// A line cut at the end of a loan: gather it in the Scanner's buffer,
	// then the next loan through its first "\n".
	room := s.opts.MaxLineBytes + 1 - (s.hi - s.lo)
	if room <= 0 {
		return false // the caller handles the long line
	}
	if s.lent {
		n := s.hi - s.lo
		if cap(s.own) < n {
			s.own = make([]byte, 0, max(n, s.opts.BufferSize))
		}
		s.own = append(s.own[:0], s.buf[s.lo:s.hi]...)
		s.buf, s.lo, s.hi, s.lent = s.own, 0, n, false
	} else if s.lo > 0 {
		n := copy(s.buf, s.buf[s.lo:s.hi])
		s.lo, s.hi = 0, n
	}
	c := s.next
	if c == nil {
		var err error
		if c, err = s.borrow(); err != nil {
			return false
		}
	}
	take := len(c)
	if i := bytes.IndexByte(c, '\n'); i >= 0 {
		take = i + 1
	}
	take = min(take, room)
	s.buf = append(s.buf[:s.hi], c[:take]...)
	s.own = s.buf
	s.hi += take
	if s.next = c[take:]; len(s.next) == 0 {
		s.next = nil
	}
	return true
}

// borrow calls s.lend, recording its end or error.
func (s *Scanner) borrow() ([]byte, error) {
	c, err := s.lend()
	if err == io.EOF {
		s.eof = true
	} else if err != nil {
		s.err = err
	}
	if err == nil && len(c) == 0 {
		err = io.ErrNoProgress
		s.err = err
	}
	return c, err
}

// Lines returns the number of lines consumed so far (rows, blank and
// comment lines and bad lines alike).
func (s *Scanner) Lines() int64 { return s.lines }

// RowOffset returns the object offset of the first byte of the line the
// last row Next returned was parsed from: the byte that decides which range
// of the object the row belongs to (see OpenRange).
func (s *Scanner) RowOffset() int64 { return s.rowOff }

// Pos returns the object offset just past the last line consumed.
func (s *Scanner) Pos() int64 { return s.pos }

// fill reads more input into buf, compacting or growing it first when full.
// It returns false at EOF or on a read error (in s.err).
func (s *Scanner) fill() bool {
	if s.lend != nil {
		return s.fillLent()
	}
	if s.eof || s.err != nil {
		return false
	}
	if s.lo > 0 && s.hi == len(s.buf) {
		copy(s.buf, s.buf[s.lo:s.hi])
		s.hi -= s.lo
		s.lo = 0
	}
	if s.hi == len(s.buf) {
		n := 2 * len(s.buf)
		if n > s.opts.MaxLineBytes+1 {
			n = s.opts.MaxLineBytes + 1
		}
		if n <= len(s.buf) {
			return false // cannot grow: the caller handles the long line
		}
		nb := make([]byte, n)
		copy(nb, s.buf[s.lo:s.hi])
		s.hi -= s.lo
		s.lo = 0
		s.buf = nb
	}
	for {
		n, err := s.r.Read(s.buf[s.hi:])
		s.hi += n
		if err == io.EOF {
			s.eof = true
			return n > 0
		}
		if err != nil {
			s.err = err
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
}

// rawLine returns the next line (without "\n") and its object offset. ok is
// false at the end of input. tooLong reports a line longer than
// MaxLineBytes, of which line holds the start; the rest has been skipped.
func (s *Scanner) rawLine() (line []byte, off int64, tooLong, ok bool) {
	searched := 0 // bytes of buf[lo:hi] known to hold no '\n'
	for {
		if i := bytes.IndexByte(s.buf[s.lo+searched:s.hi], '\n'); i >= 0 {
			end := s.lo + searched + i
			if end-s.lo > s.opts.MaxLineBytes {
				// Only a lent buffer holds a line this long whole.
				line, off = append([]byte(nil), s.buf[s.lo:s.lo+min(end-s.lo, maxText+1, s.opts.MaxLineBytes+1)]...), s.pos
				s.pos += int64(end + 1 - s.lo)
				s.lo = end + 1
				return line, off, true, true
			}
			line, off = s.buf[s.lo:end], s.pos
			s.pos += int64(end + 1 - s.lo)
			s.lo = end + 1
			return line, off, false, true
		}
		searched = s.hi - s.lo
		if searched > s.opts.MaxLineBytes {
			return s.skipLongLine()
		}
		if !s.fill() {
			if s.err != nil {
				return nil, s.pos, false, false // do not parse a cut line
			}
			if s.hi-s.lo > s.opts.MaxLineBytes {
				return s.skipLongLine()
			}
			if s.lo == s.hi {
				return nil, s.pos, false, false
			}
			// The last line has no "\n".
			line, off = s.buf[s.lo:s.hi], s.pos
			s.pos += int64(s.hi - s.lo)
			s.lo = s.hi
			return line, off, false, true
		}
		searched = max(0, min(searched, s.hi-s.lo))
	}
}

// skipLongLine consumes the rest of an overlong line, keeping its start.
func (s *Scanner) skipLongLine() ([]byte, int64, bool, bool) {
	head := append([]byte(nil), s.buf[s.lo:min(s.hi, s.lo+maxText+1, s.lo+s.opts.MaxLineBytes+1)]...)
	off := s.pos
	for {
		if i := bytes.IndexByte(s.buf[s.lo:s.hi], '\n'); i >= 0 {
			s.pos += int64(i + 1)
			s.lo += i + 1
			return head, off, true, true
		}
		s.pos += int64(s.hi - s.lo)
		s.lo, s.hi = 0, 0
		if !s.fill() {
			return head, off, true, true
		}
	}
}

// Next parses the next row into row. It returns io.EOF at the end of the
// input or range, a *ParseError for a bad line (the line is consumed, so
// calling Next again goes on with the next one), or a read error.
func (s *Scanner) Next(row *Row) error {
	if s.skip {
		s.skip = false
		if _, _, _, ok := s.rawLine(); !ok {
			return s.end()
		}
	}
	for {
		if s.opts.End > 0 && s.pos >= s.opts.End {
			return io.EOF
		}
		line, off, tooLong, ok := s.rawLine()
		if !ok {
			return s.end()
		}
		num := s.line
		s.line++
		s.lines++
		if tooLong {
			return &ParseError{Object: s.opts.Object, Line: num, Offset: off, Column: 1, Text: snippet(line),
				Reason: ReasonLineTooLong, Detail: fmt.Sprintf("lines are limited to %d bytes", s.opts.MaxLineBytes)}
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		got, err := s.f.ParseLine(line, row)
		s.rowOff = off
		if err != nil {
			var pe *ParseError
			if errors.As(err, &pe) {
				pe.Object, pe.Line, pe.Offset = s.opts.Object, num, off
			}
			return err
		}
		if got {
			return nil
		}
	}
}

func (s *Scanner) end() error {
	if s.err != nil {
		return fmt.Errorf("reading %s: %w", s.opts.Object, s.err)
	}
	return io.EOF
}

// OpenRange opens the part of an object that holds the lines starting in
// the byte range [start, end) (end <= 0: to the end of the object) and
// returns the reader and the ScanOptions to scan it with. Ranges that tile
// an object give every line to exactly one range. Line numbers in
// ParseErrors count from the range's first whole line: add the earlier
// ranges' Scanner.Lines to get the object's. The caller closes the reader.
func OpenRange(ctx context.Context, st blob.Store, key string, start, end int64) (io.ReadCloser, ScanOptions, error) {
	opts := ScanOptions{Object: st.URI(key), End: end}
	from := start
	if start > 0 {
		// Read from the byte before the range: if it is "\n", the range
		// starts on a line boundary and skipping through it loses nothing.
		from = start - 1
		opts.SkipPartialLine = true
	}
	opts.Offset = from
	rc, err := st.GetRange(ctx, key, from, -1)
	if err != nil {
		return nil, opts, err
	}
	return rc, opts, nil
}

// CountLines counts the lines in r (the "\n" bytes, plus one for a last line
// without "\n"). Use it to turn a range's line numbers into the object's
// (count the bytes before the range).
func CountLines(r io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	last := byte('\n')
	for {
		m, err := r.Read(buf)
		if m > 0 {
			n += int64(bytes.Count(buf[:m], []byte{'\n'}))
			last = buf[m-1]
		}
		if err == io.EOF {
			if last != '\n' {
				n++
			}
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
