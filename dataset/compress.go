package dataset

import (
	"bytes"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/stratus-ml/stratus/blob"
)

// Compression codecs load reads, detected by content (magic bytes), never by
// file name.
const (
	CodecGzip  = "gzip"
	CodecZstd  = "zstd"
	CodecBzip2 = "bzip2"
)

// SniffBytes is how much of an object's start Sniff looks at: enough for
// every magic number and for a binary file's NUL bytes to show.
const SniffBytes = 64 << 10

// Content is what the first bytes of an object seem to be.
type Content struct {
	// Codec is the compression a reader can undo (CodecGzip, CodecZstd,
	// CodecBzip2), or "" for none.
	Codec string
	// Kind is set when the bytes are not text load can read: what they
	// seem to be ("xz-compressed data", "a Parquet file", "UTF-16 text",
	// "binary data"), and Advice what to do about it.
	Kind, Advice string
	// Format is the load format that reads the content, when there is one
	// ("parquet").
	Format string
	// Line and Column locate the first binary byte (binary data only).
	Line   int64
	Column int
}

// magic numbers of containers load does not read, and what to do instead.
var foreign = []struct {
	magic  []byte
	kind   string
	advice string
}{
	{[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, "xz-compressed data", "decompress it (xz -d), or recompress it with gzip, zstd or bzip2, which load reads"},
	{[]byte{0x04, 0x22, 0x4d, 0x18}, "LZ4-compressed data", "decompress it (lz4 -d), or recompress it with gzip, zstd or bzip2, which load reads"},
	{[]byte{0xff, 0x06, 0, 0, 's', 'N', 'a', 'P', 'p', 'Y'}, "Snappy-framed data", "decompress it, or recompress it with gzip, zstd or bzip2, which load reads"},
	{[]byte{'P', 'K', 3, 4}, "a zip archive", "unzip it and point source at the extracted files; load reads single gzip, zstd or bzip2 streams, not archives"},
	{[]byte{'7', 'z', 0xbc, 0xaf, 0x27, 0x1c}, "a 7-Zip archive", "extract it and point source at the files; load reads single gzip, zstd or bzip2 streams, not archives"},
	{[]byte{'O', 'R', 'C'}, "an ORC file", "convert it to Parquet (format = \"parquet\") or CSV"},
	{[]byte{'O', 'b', 'j', 1}, "an Avro file", "convert it to Parquet (format = \"parquet\") or CSV"},
	{[]byte("ARROW1"), "an Arrow IPC file", "convert it to Parquet (format = \"parquet\") or CSV"},
	{[]byte{0x93, 'N', 'U', 'M', 'P', 'Y'}, "a NumPy array file", "write it as CSV, LIBSVM or Parquet"},
	{[]byte{0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'}, "an HDF5 file", "write it as CSV, LIBSVM or Parquet"},
	{[]byte("SQLite format 3\x00"), "an SQLite database", "export the table as CSV or Parquet"},
}

// Sniff says what head, the first bytes of an object (up to SniffBytes),
// seems to be. It recognises the codecs load reads, containers and
// compressions it does not, Parquet, UTF-16 text, and binary data (a NUL
// byte, or mostly invalid UTF-8). Anything else is text (Content{}).
func Sniff(head []byte) Content {
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		return Content{Codec: CodecGzip}
	case len(head) >= 4 && bytes.Equal(head[:4], zstdMagic):
		return Content{Codec: CodecZstd}
	case skippableFrame(head):
		// A skippable frame (pzstd starts every frame with one; the
		// seekable format ends with one): zstd's decoder skips it.
		return Content{Codec: CodecZstd}
	case len(head) >= 4 && head[0] == 'B' && head[1] == 'Z' && head[2] == 'h' && head[3] >= '1' && head[3] <= '9':
		return Content{Codec: CodecBzip2}
	case len(head) >= 4 && bytes.Equal(head[:4], []byte("PAR1")):
		return Content{Kind: "a Parquet file", Format: "parquet", Advice: `set format = "parquet"`}
	}
	for _, f := range foreign {
		if bytes.HasPrefix(head, f.magic) {
			return Content{Kind: f.kind, Advice: f.advice}
		}
	}
	if len(head) >= 263 && bytes.Equal(head[257:262], []byte("ustar")) {
		return Content{Kind: "a tar archive", Advice: "extract it (tar -xf) and point source at the files"}
	}
	if bytes.HasPrefix(head, []byte{0xff, 0xfe}) || bytes.HasPrefix(head, []byte{0xfe, 0xff}) || utf16ish(head) {
		return Content{Kind: "UTF-16 text", Advice: "convert it to UTF-8 (iconv -f UTF-16 -t UTF-8), which load reads"}
	}
	if i := bytes.IndexByte(head, 0); i >= 0 {
		return binaryAt(head, i)
	}
	// Mostly invalid UTF-8 (a Latin-1 file has a few bad bytes; a binary
	// format without NULs has many).
	if bad, i := invalidUTF8(head); bad*8 > len(head) && len(head) >= 64 {
		return binaryAt(head, i)
	}
	return Content{}
}

func binaryAt(head []byte, i int) Content {
	line := int64(bytes.Count(head[:i], []byte{'\n'})) + 1
	col := i - (bytes.LastIndexByte(head[:i], '\n') + 1) + 1
	return Content{Kind: "binary data", Line: line, Column: col,
		Advice: fmt.Sprintf("byte %#02x at offset %d is not text; check that source names the data files (not an archive or a model), or use format = \"parquet\" for Parquet", head[i], i)}
}

// utf16ish reports text in UTF-16 without a byte-order mark: NULs in every
// other byte of the first characters.
func utf16ish(head []byte) bool {
	n := min(len(head), 64) &^ 1
	if n < 8 {
		return false
	}
	even, odd := 0, 0
	for i := 0; i < n; i += 2 {
		if head[i] == 0 && head[i+1] != 0 {
			even++
		}
		if head[i] != 0 && head[i+1] == 0 {
			odd++
		}
	}
	return even == n/2 || odd == n/2
}

// invalidUTF8 counts the invalid bytes of b (a rune cut at the end of b is
// not counted) and returns the offset of the first.
func invalidUTF8(b []byte) (int, int) {
	bad, first := 0, -1
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			if len(b)-i < utf8.UTFMax && !utf8.FullRune(b[i:]) {
				break
			}
			if first < 0 {
				first = i
			}
			bad++
		}
		i += n
	}
	return bad, first
}

// Describe is a one-line account of what Sniff found, for errors.
func (c Content) Describe() string {
	if c.Kind == "" {
		return "text"
	}
	return c.Kind
}

// Decompress returns a reader of r's content undone by codec ("" returns r
// itself). Gzip (including concatenated members, as pigz and bgzip write)
// and zstd use klauspost/compress; bzip2 the standard library. When
// GOMAXPROCS > 1, every codec is decoded on a goroutine of its own ahead of
// the reader, so decoding and parsing overlap. zstd is decoded frame by
// frame, each frame that states its size whole, which takes a third less
// CPU than streaming (see MaxWholeFrame) — the work that counts when every
// core has a file to load — unless this stream has a core to spare: while
// fewer than half the cores have a compressed stream of this process to
// decode (one file on two cores), zstd streams through the read-ahead
// goroutine instead, whose overlap with parsing wins there (0.51× the plain
// file's throughput against 0.35× for whole frames, which decode before
// parsing starts). Close stops that goroutine (it does not close r).
func Decompress(r io.Reader, codec string) (io.ReadCloser, error) {
	if codec == "" {
		return io.NopCloser(r), nil
	}
	procs := runtime.GOMAXPROCS(0)
	openStreams.Add(1)
	rc, err := decompress(r, codec, procs > 1, true)
	if err != nil {
		openStreams.Add(-1)
		return nil, err
	}
	if z, ok := rc.(*zstdCloser); ok && procs > 1 {
		if f, ok := z.r.(*zstdFrames); ok {
			// Asked at the first frame, once the streams a wave opens
			// together are open.
			f.spare = func() bool { return spareCore(openStreams.Load(), procs) }
		}
	}
	return &countedStream{ReadCloser: rc}, nil
}

// openStreams counts the compressed streams Decompress has open in this
// process.
var openStreams atomic.Int64

// spareCore reports whether n open streams in a process with procs cores
// leave each a core beside its parser's: 2n ≤ procs.
func spareCore(n int64, procs int) bool { return 2*n <= int64(procs) }

// countedStream is an open stream of Decompress: Close counts it out, once.
type countedStream struct {
	io.ReadCloser
	closed atomic.Bool
}

func (c *countedStream) Close() error {
	err := c.ReadCloser.Close()
	if !c.closed.Swap(true) {
		openStreams.Add(-1)
	}
	return err
}

// lender lends what the decoder lends (see lender).
func (c *countedStream) lender() func() ([]byte, error) {
	if l, ok := c.ReadCloser.(lender); ok {
		return l.lender()
	}
	return nil
}

// decompress is Decompress, decoding on a goroutine ahead of the reader if
// ahead, and zstd frame by frame if frames (see zstdFrames).
func decompress(r io.Reader, codec string, ahead, frames bool) (io.ReadCloser, error) {
	switch codec {
	case "":
		return io.NopCloser(r), nil
	case CodecGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if !ahead {
			return zr, nil
		}
		return readAhead(zr, zr.Close), nil
	case CodecZstd:
		zr, _ := zstdDecoders.Get().(*zstd.Decoder)
		if zr == nil {
			var err error
			// Concurrency 1 decodes synchronously in Read: the decoder's
			// own goroutines (concurrency 2 or more) hand every block
			// between them, which made a stream decode at 1.0 GB/s where
			// one goroutine does 1.45 GB/s, on one core and on two alike.
			// The overlap with parsing comes from readAhead instead.
			// Lowmem(false) keeps whole blocks rather than growing them
			// (0.8 GB/s with Lowmem(true)).
			if zr, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(false)); err != nil {
				return nil, fmt.Errorf("zstd: %w", err)
			}
		}
		z := &zstdCloser{d: zr, r: zr}
		if frames {
			z.r = newZstdFrames(r, zr, ahead)
			return z, nil
		}
		if err := zr.Reset(r); err != nil {
			zstdDecoders.Put(zr)
			return nil, fmt.Errorf("zstd: %w", err)
		}
		if !ahead {
			return z, nil
		}
		return readAhead(z, z.Close), nil
	case CodecBzip2:
		if !ahead {
			return io.NopCloser(bzip2.NewReader(r)), nil
		}
		return readAhead(bzip2.NewReader(r), nil), nil
	}
	return nil, fmt.Errorf("unknown compression %q", codec)
}

// zstdDecoders keeps idle zstd decoders: a new one allocates its buffers
// (tens of MB), which costs more than decoding a small file.
var zstdDecoders sync.Pool

// zstdCloser is one stream's use of a pooled decoder. Like any reader here,
// it is used by one goroutine.
type zstdCloser struct {
	d *zstd.Decoder // nil once closed
	r io.Reader     // d, or frames read through d
}

// Close stops the decoder's goroutines (Reset(nil)) and keeps it for reuse.
func (z *zstdCloser) Close() error {
	if f, ok := z.r.(*zstdFrames); ok {
		f.release()
	}
	if d := z.d; d != nil {
		z.d = nil
		if d.Reset(nil) == nil {
			zstdDecoders.Put(d)
		}
	}
	return nil
}

func (z *zstdCloser) lender() func() ([]byte, error) {
	if f, ok := z.r.(*zstdFrames); ok {
		return func() ([]byte, error) {
			if z.d == nil {
				return nil, io.ErrClosedPipe
			}
			return f.lend()
		}
	}
	return nil
}

func (z *zstdCloser) Read(p []byte) (int, error) {
	if z.d == nil {
		return 0, io.ErrClosedPipe
	}
	return z.r.Read(p)
}

// readAhead reads r on a goroutine into a few blocks ahead of the caller.
const (
	aheadBlock  = 1 << 20
	aheadBlocks = 4
)

type block struct {
	b   []byte
	err error
}

type aheadReader struct {
	ch      chan block
	free    chan []byte
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	closeFn func() error
	cur     []byte
	buf     []byte // cur's backing block, returned to free when used up
	err     error
}

func readAhead(r io.Reader, closeFn func() error) *aheadReader {
	a := &aheadReader{ch: make(chan block, aheadBlocks), free: make(chan []byte, aheadBlocks+1), done: make(chan struct{}), closeFn: closeFn}
	for range aheadBlocks + 1 {
		a.free <- make([]byte, aheadBlock)
	}
	a.wg.Add(1)
	go func() { // owned by a: Close stops it and waits for it
		defer a.wg.Done()
		defer close(a.ch)
		for {
			var b []byte
			select {
			case b = <-a.free:
			case <-a.done:
				return
			}
			n, err := fill(r, b)
			select {
			case a.ch <- block{b[:n], err}:
			case <-a.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return a
}

// fill reads into b until it is full or r fails (io.EOF included), and
// returns r's error as it is (unlike io.ReadFull, which turns an early EOF
// into io.ErrUnexpectedEOF, as a truncated stream's decoder also reports).
func fill(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (a *aheadReader) Read(p []byte) (int, error) {
	for len(a.cur) == 0 {
		if a.err != nil {
			return 0, a.err
		}
		if a.buf != nil {
			a.free <- a.buf[:cap(a.buf)]
			a.buf = nil
		}
		blk, ok := <-a.ch
		if !ok {
			return 0, io.ErrClosedPipe
		}
		a.cur, a.buf, a.err = blk.b, blk.b, blk.err
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// lender lends the read-ahead blocks: each stays valid until the next
// loan, when it goes back to be filled again.
func (a *aheadReader) lender() func() ([]byte, error) {
	return func() ([]byte, error) {
		for len(a.cur) == 0 {
			if a.err != nil {
				return nil, a.err
			}
			if a.buf != nil {
				a.free <- a.buf[:cap(a.buf)]
				a.buf = nil
			}
			blk, ok := <-a.ch
			if !ok {
				return nil, io.ErrClosedPipe
			}
			a.cur, a.buf, a.err = blk.b, blk.b, blk.err
		}
		c := a.cur
		a.cur = nil
		return c, nil
	}
}

func (a *aheadReader) Close() error {
	a.once.Do(func() { close(a.done) })
	a.wg.Wait()
	if a.closeFn != nil {
		return a.closeFn()
	}
	return nil
}

// OpenObject opens the object at key for reading from its start, its
// content decompressed by codec (see Decompress). Compressed objects cannot
// be read from the middle, so there is no range: a task reads a compressed
// object whole. A read error that the decoder raises, rather than the store,
// is a *CorruptError. Close closes the object, then stops the decoder.
func OpenObject(ctx context.Context, st blob.Store, key, codec string) (io.ReadCloser, error) {
	rc, err := st.GetRange(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	if codec == "" {
		return rc, nil
	}
	body := &recorder{r: rc}
	zr, err := Decompress(body, codec)
	if err != nil {
		rc.Close()
		if body.failed() == nil {
			return nil, &CorruptError{Codec: codec, Err: err}
		}
		return nil, err
	}
	return &decompressed{zr: zr, body: rc, rec: body, codec: codec}, nil
}

// OpenFramedRange opens the frames of the object at key (compressed with
// codec, framed as framing: see Framing) that start in the byte range
// [start, end), as OpenFrames reads them, and returns the reader and the
// ScanOptions to scan it with. A read error that the decoder or the
// framing raises, rather than the store, is a *CorruptError. Close closes
// the object, then stops the decoders.
func OpenFramedRange(ctx context.Context, st blob.Store, key, codec, framing string, start, end int64) (io.ReadCloser, ScanOptions, error) {
	opts := ScanOptions{Object: st.URI(key)}
	rc, err := st.GetRange(ctx, key, start, -1)
	if err != nil {
		return nil, opts, err
	}
	body := &recorder{r: rc}
	zr, fo, err := OpenFrames(body, codec, framing, start, end)
	if err != nil {
		rc.Close()
		if serr := body.failed(); serr != nil {
			return nil, opts, serr
		}
		return nil, opts, err
	}
	fo.Object = opts.Object
	return &decompressed{zr: zr, body: rc, rec: body, codec: codec}, fo, nil
}

// CorruptError is compressed data that does not decode: a truncated file, a
// bad checksum, or bytes that are not of the codec.
type CorruptError struct {
	Codec string
	Err   error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("the %s data does not decode (%v): the file is truncated or corrupt", e.Codec, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// recorder remembers the first error of the reader it wraps (other than EOF).
type recorder struct {
	r   io.Reader
	mu  sync.Mutex
	err error
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.mu.Lock()
		if r.err == nil {
			r.err = err
		}
		r.mu.Unlock()
	}
	return n, err
}

func (r *recorder) failed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

type decompressed struct {
	zr    io.ReadCloser
	body  io.Closer
	rec   *recorder
	codec string
}

func (d *decompressed) Read(p []byte) (int, error) {
	n, err := d.zr.Read(p)
	return n, d.corrupt(err)
}

func (d *decompressed) lender() func() ([]byte, error) {
	l, ok := d.zr.(lender)
	if !ok {
		return nil
	}
	lend := l.lender()
	if lend == nil {
		return nil
	}
	return func() ([]byte, error) {
		c, err := lend()
		return c, d.corrupt(err)
	}
}

// corrupt is err as Read returns it: a decoder's error is a *CorruptError.
func (d *decompressed) corrupt(err error) error {
	var ce *CorruptError
	if err != nil && err != io.EOF && d.rec.failed() == nil && !errors.As(err, &ce) {
		err = &CorruptError{Codec: d.codec, Err: err}
	}
	return err
}

// Close closes the body first, so that a decoder goroutine blocked reading it
// returns at once.
func (d *decompressed) Close() error {
	err := d.body.Close()
	if e := d.zr.Close(); err == nil {
		err = e
	}
	return err
}

// ContentSize returns the size of a compressed stream's content as the
// stream states it, or 0 when it does not: for zstd, the content size in
// the header of the first frame (head, the stream's first bytes), which is
// the stream's when it is one frame, as the zstd tool writes a file; for
// gzip, ISIZE, the last member's content size modulo 2^32, from trailer
// (the stream's last 4 bytes), taken (for a stream that could hold 4 GiB)
// as the smallest such size of at least the stream's own; bzip2 states none. It is a hint: a stream of
// several frames or members, or a gzip stream compressed more than that,
// holds another size, which only decoding it tells.
func ContentSize(codec string, head, trailer []byte, size int64) int64 {
	switch codec {
	case CodecZstd:
		var h zstd.Header
		if len(head) < 4 || !bytes.Equal(head[:4], zstdMagic) || h.Decode(head) != nil || !h.HasFCS {
			return 0
		}
		return int64(h.FrameContentSize)
	case CodecGzip:
		if len(trailer) != 4 || size < 18 {
			return 0
		}
		n := int64(trailer[0]) | int64(trailer[1])<<8 | int64(trailer[2])<<16 | int64(trailer[3])<<24
		// Deflate expands at most 1032 times: a smaller stream holds less
		// than 4 GiB.
		for size > (1<<32)/1032 && n < size {
			n += 1 << 32
		}
		return n
	}
	return 0
}
