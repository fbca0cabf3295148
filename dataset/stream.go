package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/stratus-ml/stratus/blob"
)

// RowReader is what parses rows from an input: a Scanner, or a
// StreamScanner.
type RowReader interface {
	// Next parses the next row into row (see Scanner.Next).
	Next(row *Row) error
	// Lines returns the number of lines consumed so far (see
	// Scanner.Lines).
	Lines() int64
	// RowOffset returns the object offset of the last row's line (see
	// Scanner.RowOffset).
	RowOffset() int64
	// Pos returns the object offset just past the lines consumed (see
	// Scanner.Pos).
	Pos() int64
}

// StreamScanner reads the rows of one whole compressed stream, as a
// Scanner of its decompressed content would, in the same order, with the
// same line numbers, offsets and errors; but when the process has cores to
// spare (fewer than half of them with a compressed stream of its own to
// decode, as Decompress judges it), it parses on several goroutines while
// the stream is decoded: one goroutine decodes the stream into chunks of
// whole lines (streamChunk bytes), parser goroutines parse the chunks into
// rows, and Next hands them out in the stream's order. Otherwise it is a
// Scanner of Decompress's reader (decoded ahead on another goroutine when
// GOMAXPROCS > 1). The choice is made at the first Next, once the streams
// that a wave of tasks opens together are open.
//
// A StreamScanner is used by one goroutine; Close stops its goroutines and
// must be called.
type StreamScanner struct {
	zr        io.ReadCloser // the decoder (see decompress)
	body      io.Closer     // the compressed object, closed first (nil for a reader)
	rec       *recorder     // tells the store's errors from the decoder's
	codec     string
	newFormat func() (Format, error)
	opts      ScanOptions
	started   bool
	counted   bool // in openStreams until Close

	seq *Scanner // sequential: a Scanner of the decoded stream

	// parallel:
	r       io.Reader              // the decoded stream (corrupt errors mapped)
	lend    func() ([]byte, error) // r's lend, when it lends
	loan    []byte                 // the unread part of the current loan
	order   chan *chunkJob         // chunks in stream order, to Next
	work    chan *chunkJob         // the same chunks, to the parsers
	free    chan *chunkJob         // chunks Next is done with
	done    chan struct{}          // closed by Close
	wg      sync.WaitGroup         // the chunker and the parsers
	cur     *chunkJob              // the chunk Next is reading
	i       int                    // its next item
	base    int64                  // lines of the chunks before cur
	lines   int64
	rowOff  int64 // see RowOffset
	pos     int64 // object offset past the chunks read
	err     error // sticky
	closed  bool
	workers int
	chunk   int // streamChunk; less in tests
}

// streamChunk is the size of the chunks a StreamScanner parses in
// parallel: large enough that handing one over costs nothing next to
// parsing it (a few milliseconds), small enough that a few per parser in
// flight hold little memory.
const streamChunk = 1 << 20

// chunkJob is a chunk of whole lines and, once done is closed, its rows.
type chunkJob struct {
	buf  []byte // the lines (the last may lack "\n" at the end of the stream)
	off  int64  // object offset of buf[0]
	end  int64  // object offset past its lines (more than off+len(buf) when a line too long was cut)
	err  error  // set instead of buf: the read error that ends the stream
	done chan struct{}

	labels []float32
	ends   []int // row k's entries are idx[ends[k-1]:ends[k]]
	idx    []uint32
	val    []float32
	items  []chunkItem
	lines  int64 // lines in buf
}

// chunkItem is a row or a bad line of a chunk, in order.
type chunkItem struct {
	lines int64 // the chunk's lines consumed through this one
	off   int64 // object offset of its line
	row   int   // index of the row, or -1 for err
	err   error
}

// NewStreamScanner returns a StreamScanner of r, compressed with codec
// (not ""), its lines parsed with formats newFormat makes (one per
// goroutine). opts.Object, FirstLine, Offset and MaxLineBytes apply; a
// stream is read whole, so SkipPartialLine and End must not be set.
func NewStreamScanner(r io.Reader, codec string, newFormat func() (Format, error), opts ScanOptions) (*StreamScanner, error) {
	rec := &recorder{r: r}
	return newStreamScanner(rec, nil, codec, newFormat, opts)
}

// ScanObject opens the object at key whole, decompressed by codec (not
// ""), and returns a StreamScanner of its rows (see OpenObject: a decoder's
// read error is a *CorruptError). Close closes the object.
func ScanObject(ctx context.Context, st blob.Store, key, codec string, newFormat func() (Format, error), opts ScanOptions) (*StreamScanner, error) {
	rc, err := st.GetRange(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	if opts.Object == "" {
		opts.Object = st.URI(key)
	}
	s, err := newStreamScanner(&recorder{r: rc}, rc, codec, newFormat, opts)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return s, nil
}

func newStreamScanner(rec *recorder, body io.Closer, codec string, newFormat func() (Format, error), opts ScanOptions) (*StreamScanner, error) {
	if codec == "" {
		return nil, errors.New("dataset: a StreamScanner reads a compressed stream")
	}
	if opts.SkipPartialLine || opts.End > 0 {
		return nil, errors.New("dataset: a StreamScanner reads a whole stream, not a range")
	}
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = DefaultMaxLineBytes
	}
	if opts.FirstLine <= 0 {
		opts.FirstLine = 1
	}
	zr, err := decompress(rec, codec, false, true)
	if err != nil {
		if rec.failed() == nil {
			return nil, &CorruptError{Codec: codec, Err: err}
		}
		return nil, err
	}
	openStreams.Add(1)
	return &StreamScanner{zr: zr, body: body, rec: rec, codec: codec, newFormat: newFormat, opts: opts, counted: true, chunk: streamChunk}, nil
}

// Workers returns the number of parser goroutines (0 before the first
// Next; 1 when the stream is parsed by the caller's goroutine).
func (s *StreamScanner) Workers() int { return s.workers }

// start chooses between parsing in parallel and a Scanner (see
// StreamScanner).
func (s *StreamScanner) start() error {
	s.started = true
	procs := runtime.GOMAXPROCS(0)
	if procs < 2 || !spareCore(openStreams.Load(), procs) {
		s.workers = 1
		if procs > 1 {
			// Decode ahead of the parser, as Decompress does.
			switch z := s.zr.(type) {
			case *zstdCloser:
				if f, ok := z.r.(*zstdFrames); ok {
					f.ahead = true
				}
			default:
				s.zr = readAhead(z, z.Close)
			}
		}
		f, err := s.newFormat()
		if err != nil {
			return err
		}
		s.seq = NewScanner(&decompressed{zr: s.zr, rec: s.rec, codec: s.codec}, f, s.opts)
		return nil
	}
	// Every process with streams to decode shares the cores: with n
	// streams open, each gets procs/n parsers beside its decoder.
	s.workers = max(2, procs/int(max(1, openStreams.Load())))
	formats := make([]Format, s.workers)
	for i := range formats {
		f, err := s.newFormat()
		if err != nil {
			return err
		}
		formats[i] = f
	}
	d := &decompressed{zr: s.zr, rec: s.rec, codec: s.codec}
	s.r = d
	s.lend = d.lender()
	pending := 2 * s.workers
	s.order = make(chan *chunkJob, pending)
	s.work = make(chan *chunkJob, s.workers)
	s.free = make(chan *chunkJob, pending+s.workers+3)
	s.done = make(chan struct{})
	s.wg.Add(1 + s.workers)
	go s.chunker() // owned by s: Close stops it and waits
	for _, f := range formats {
		go s.parser(f) // owned by s: Close stops it and waits
	}
	return nil
}

// Next implements RowReader.
func (s *StreamScanner) Next(row *Row) error {
	if !s.started {
		if err := s.start(); err != nil {
			s.err = err
		}
	}
	if s.seq != nil {
		return s.seq.Next(row)
	}
	for {
		if j := s.cur; j != nil {
			if s.i < len(j.items) {
				it := j.items[s.i]
				s.i++
				s.lines = s.base + it.lines
				if it.err != nil {
					var pe *ParseError
					if errors.As(it.err, &pe) {
						pe.Line += s.opts.FirstLine - 1 + s.base
						if pe.Reason != ReasonLineTooLong {
							// A Scanner's row offset moves to a line it parsed,
							// good or bad (not to one too long to parse).
							s.rowOff = pe.Offset
						}
					}
					return it.err
				}
				s.rowOff = it.off
				k, a := it.row, 0
				if k > 0 {
					a = j.ends[k-1]
				}
				b := j.ends[k]
				row.Label = j.labels[k]
				row.Indices = append(row.Indices[:0], j.idx[a:b]...)
				row.Values = append(row.Values[:0], j.val[a:b]...)
				return nil
			}
			s.base += j.lines
			s.lines = s.base
			s.pos = j.end
			s.cur = nil
			select {
			case s.free <- j:
			default:
			}
		}
		if s.err != nil {
			return s.err
		}
		j, ok := <-s.order
		if !ok {
			return io.EOF
		}
		<-j.done
		if j.err != nil {
			s.err = fmt.Errorf("reading %s: %w", s.opts.Object, j.err)
			return s.err
		}
		s.cur, s.i = j, 0
	}
}

// Lines implements RowReader.
func (s *StreamScanner) Lines() int64 {
	if s.seq != nil {
		return s.seq.Lines()
	}
	return s.lines
}

// RowOffset implements RowReader: the offset in the decompressed content.
func (s *StreamScanner) RowOffset() int64 {
	if s.seq != nil {
		return s.seq.RowOffset()
	}
	return s.rowOff
}

// Pos returns the offset in the decompressed content just past the lines
// consumed; after io.EOF, the content's size.
func (s *StreamScanner) Pos() int64 {
	if s.seq != nil {
		return s.seq.Pos()
	}
	return s.pos
}

// Close stops the goroutines, closes the object (if ScanObject opened
// it) and then the decoder.
func (s *StreamScanner) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.done != nil {
		close(s.done)
	}
	var err error
	if s.body != nil {
		// First, so that a decoder blocked reading it returns at once.
		err = s.body.Close()
	}
	s.wg.Wait()
	if e := s.zr.Close(); err == nil {
		err = e
	}
	if s.free != nil {
		// The goroutines are done: what Next had and gave back is free.
		if s.cur != nil {
			putChunk(s.cur)
			s.cur = nil
		}
		for len(s.free) > 0 {
			putChunk(<-s.free)
		}
	}
	if s.counted {
		s.counted = false
		openStreams.Add(-1)
	}
	return err
}

// putChunk keeps a chunk for the next stream unless it grew past four times
// streamChunk (to hold a long line): the pool lives as long as the process.
func putChunk(j *chunkJob) {
	if cap(j.buf) <= 4*streamChunk {
		chunkJobs.Put(j)
	}
}

// read fills p from the decoded stream, copying from the decoder's loans
// when it lends (a whole zstd frame), as fill does.
func (s *StreamScanner) read(p []byte) (int, error) {
	if s.lend == nil {
		return fill(s.r, p)
	}
	n := 0
	for n < len(p) {
		if len(s.loan) == 0 {
			c, err := s.lend()
			if err != nil {
				return n, err
			}
			s.loan = c
		}
		m := copy(p[n:], s.loan)
		s.loan = s.loan[m:]
		n += m
	}
	return n, nil
}

// job returns a chunk to fill, a used one if there is one.
func (s *StreamScanner) job() *chunkJob {
	select {
	case j := <-s.free:
		return j
	default:
		return chunkJobs.Get().(*chunkJob)
	}
}

// chunkJobs keeps the chunks of closed streams: allocating (and clearing)
// a few MB of them for every stream cost a tenth of its CPU time.
var chunkJobs = sync.Pool{New: func() any { return &chunkJob{buf: make([]byte, 0, streamChunk)} }}

// send hands j to Next and to a parser (unless it is done already); false
// once Close was called.
func (s *StreamScanner) send(j *chunkJob, parse bool) bool {
	select {
	case s.order <- j:
	case <-s.done:
		return false
	}
	if !parse {
		return true
	}
	select {
	case s.work <- j:
		return true
	case <-s.done:
		return false
	}
}

// chunker decodes the stream into chunks of whole lines. A line longer
// than MaxLineBytes is cut to MaxLineBytes+1 bytes and ends its chunk, so
// its parser reports it too long (as a Scanner does, from its first bytes)
// and the next chunk's offset is the stream's.
func (s *StreamScanner) chunker() {
	defer s.wg.Done()
	defer close(s.work)
	defer close(s.order)
	maxLine := s.opts.MaxLineBytes
	off := s.opts.Offset // object offset of carry[0]
	var carry []byte     // the start of a line the last chunk did not end
	ended := false       // the stream ended after carry
	for {
		j := s.job()
		buf := append(j.buf[:0], carry...)
		carry = carry[:0]
		size := max(s.chunk, len(buf)) // what buf holds, more for a long line
		if cap(buf) < size {
			buf = make([]byte, len(buf), size)
		}
		var err error
		nl := bytes.LastIndexByte(buf, '\n') // the last "\n" in buf (the carry after a line too long may hold some)
		skip := 0                            // bytes of an overlong line dropped
		for {
			if ended {
				err = io.EOF
				break
			}
			if len(buf) == size {
				// One line fills the chunk: grow it, up to the line limit.
				size = min(2*size, maxLine+1+s.chunk)
				if cap(buf) < size {
					nb := make([]byte, len(buf), size)
					copy(nb, buf)
					buf = nb
				}
			}
			start := len(buf)
			var n int
			n, err = s.read(buf[start:size])
			buf = buf[:start+n]
			if i := bytes.LastIndexByte(buf[start:], '\n'); i >= 0 {
				nl = start + i
			}
			if nl < 0 && len(buf) > maxLine+1 {
				// An overlong line (buf holds no "\n", so it is one line):
				// keep its first maxLine+1 bytes, drop the rest through its "\n".
				skip += len(buf) - (maxLine + 1)
				buf = buf[:maxLine+1]
				for err == nil {
					var m int
					tail := buf[maxLine+1 : size]
					m, err = s.read(tail)
					if i := bytes.IndexByte(tail[:m], '\n'); i >= 0 {
						skip += i
						carry = append(carry, tail[i+1:m]...)
						buf = append(buf, '\n')
						nl = len(buf) - 1
						break
					}
					skip += m
				}
				break
			}
			if nl >= 0 && (skip > 0 || len(buf) == size) || err != nil {
				break
			}
		}
		if err != nil && err != io.EOF {
			// Only whole lines before a read error are parsed.
			if nl >= 0 {
				buf = buf[:nl+1]
			} else {
				buf = buf[:0]
			}
		} else if err == nil {
			carry = append(carry, buf[nl+1:]...)
			buf = buf[:nl+1]
		}
		j.buf, j.off, j.err, j.done = buf, off, nil, make(chan struct{})
		off += int64(len(buf) + skip)
		j.end = off
		if len(buf) > 0 && !s.send(j, true) {
			return
		}
		if err == io.EOF {
			if len(carry) > 0 {
				// The end came with the line after a line too long.
				ended = true
				continue
			}
			return
		}
		if err != nil {
			e := &chunkJob{err: err, done: make(chan struct{})}
			close(e.done)
			s.send(e, false)
			return
		}
	}
}

// parser parses the chunks it is given, with f.
func (s *StreamScanner) parser(f Format) {
	defer s.wg.Done()
	var row Row
	for {
		var j *chunkJob
		var ok bool
		select {
		case j, ok = <-s.work:
			if !ok {
				return
			}
		case <-s.done:
			return
		}
		j.labels, j.ends, j.idx, j.val, j.items = j.labels[:0], j.ends[:0], j.idx[:0], j.val[:0], j.items[:0]
		sc := NewScanner(&loanReader{b: j.buf}, f, ScanOptions{Object: s.opts.Object, Offset: j.off, MaxLineBytes: s.opts.MaxLineBytes})
		for {
			err := sc.Next(&row)
			if err == io.EOF {
				break
			}
			if err != nil {
				j.items = append(j.items, chunkItem{lines: sc.Lines(), row: -1, err: err})
				var pe *ParseError
				if !errors.As(err, &pe) {
					break // not a line's error: Next returns it, as a Scanner would
				}
				continue
			}
			j.items = append(j.items, chunkItem{lines: sc.Lines(), off: sc.RowOffset(), row: len(j.labels)})
			j.labels = append(j.labels, row.Label)
			j.idx = append(j.idx, row.Indices...)
			j.val = append(j.val, row.Values...)
			j.ends = append(j.ends, len(j.idx))
		}
		j.lines = sc.Lines()
		close(j.done)
	}
}

// loanReader lends one buffer whole, then io.EOF.
type loanReader struct {
	b    []byte
	lent bool
}

func (l *loanReader) Read(p []byte) (int, error) {
	if len(l.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, l.b)
	l.b = l.b[n:]
	return n, nil
}

func (l *loanReader) lender() func() ([]byte, error) {
	return func() ([]byte, error) {
		if l.lent || len(l.b) == 0 {
			return nil, io.EOF
		}
		l.lent = true
		return l.b, nil
	}
}
