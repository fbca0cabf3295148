package dataset

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// The Parquet library allocates what a file's metadata claims before it
// reads the bytes that would prove it wrong: a page header saying 2 GiB
// allocates 2 GiB. Before any page is read, checkParquetFooter holds the
// footer, and checkRowGroup every page of the columns read, to the
// file's size and to these limits (far above what Arrow, pandas, Spark or
// DuckDB write: pages of about 1 MiB and 20,000 rows), so a corrupt or
// hostile file fails with an error saying which column and page is wrong.
const (
	// MaxParquetPageBytes bounds a page's uncompressed size.
	MaxParquetPageBytes = 128 << 20
	// MaxParquetPageValues bounds a page's values (a page of levels
	// allocates a byte per value).
	MaxParquetPageValues = 16 << 20
	// maxPageHeader is as much of a page header as is read to decode it
	// (statistics of long strings make headers long).
	maxPageHeader = 1 << 20
)

// ErrParquetBounds is matched by the errors of files whose metadata claims
// more than the file holds or the limits above allow.
var ErrParquetBounds = errors.New("the file's metadata or page contents are inconsistent")

func boundsErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s; the file is corrupt or was not written completely: write it again", ErrParquetBounds, fmt.Sprintf(format, args...))
}

// checkParquetFooter checks the row groups and column chunks of a footer
// against the size of the file: every chunk within the file, no negative
// counts, and each chunk's values within its row group's rows.
func checkParquetFooter(md *format.FileMetaData, size int64) error {
	var rows int64
	for gi := range md.RowGroups {
		rg := &md.RowGroups[gi]
		if rg.NumRows < 0 {
			return boundsErr("row group %d has %d rows", gi, rg.NumRows)
		}
		rows += rg.NumRows
		for ci := range rg.Columns {
			cc := &rg.Columns[ci]
			name := chunkName(cc, ci)
			if cc.FilePath != "" {
				return fmt.Errorf("parquet: row group %d, column %s is stored in another file (%q), which load does not read; write the data into one file", gi, name, cc.FilePath)
			}
			start, n := chunkRange(&cc.MetaData)
			if start < 4 || n < 0 || start > size || n > size-start {
				return boundsErr("row group %d, column %s: bytes %d to %d, in a file of %d bytes", gi, name, start, start+n, size)
			}
			if cc.MetaData.NumValues < 0 {
				return boundsErr("row group %d, column %s has %d values", gi, name, cc.MetaData.NumValues)
			}
		}
	}
	if md.NumRows != rows {
		return boundsErr("the footer counts %d rows, its row groups %d", md.NumRows, rows)
	}
	return nil
}

// readFooter reads the end of a Parquet file of size bytes from r: at
// least its footer and the 8 bytes after it, as one read of up to 64 KiB
// when the footer fits. It checks the footer's thrift encoding
// (thriftCheck) before the Parquet library decodes it, and returns the bytes
// read and their offset. A file that does not end in "PAR1" is returned
// unchecked, for the library to say what is wrong.
func readFooter(r io.ReaderAt, size int64) ([]byte, int64, error) {
	n := min(size, 64<<10)
	tail := make([]byte, n)
	if m, err := r.ReadAt(tail, size-n); int64(m) < n {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, 0, err
	}
	if n < 4 || string(tail[n-4:]) != "PAR1" {
		return tail, size - n, nil
	}
	if n < 12 {
		// parquet-go would take the leading "PAR1" for the footer's length
		// and allocate 789 MiB (fuzz seed e4ed33777d2ea00c).
		return nil, 0, boundsErr("a file of %d bytes, too short to hold a footer", size)
	}
	flen := int64(binary.LittleEndian.Uint32(tail[n-8:]))
	if flen > size-12 {
		return nil, 0, boundsErr("a footer of %d bytes, in a file of %d", flen, size)
	}
	if flen+8 > n {
		n = flen + 8
		tail = make([]byte, n)
		if m, err := r.ReadAt(tail, size-n); int64(m) < n {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return nil, 0, err
		}
	}
	footer := tail[n-8-flen : n-8]
	if _, err := thriftCheck(footer); err != nil {
		return nil, 0, boundsErr("the footer does not decode (%v)", err)
	}
	return tail, size - n, nil
}

// chunkRange is where a column chunk's pages are: from its dictionary page
// (when it has one) or first data page, for its compressed size (as the
// Parquet library reads it).
func chunkRange(m *format.ColumnMetaData) (start, n int64) {
	start = m.DataPageOffset
	if m.DictionaryPageOffset != 0 {
		start = m.DictionaryPageOffset
	}
	return start, m.TotalCompressedSize
}

func chunkName(cc *format.ColumnChunk, ci int) string {
	if len(cc.MetaData.PathInSchema) > 0 {
		return fmt.Sprintf("%q", cc.MetaData.PathInSchema[len(cc.MetaData.PathInSchema)-1])
	}
	return fmt.Sprint(ci)
}

// checkRowGroup reads every page of row group gi's columns for which read
// says ok (the columns a read will decode; it gives their definition
// levels) and checks each page to lie within its chunk, its uncompressed
// size to be one its codec can produce from its compressed size and within
// MaxParquetPageBytes, its values to be within its row group's rows and
// MaxParquetPageValues, and (pageChecker) its data to decompress to that
// size and its run-length and delta streams to hold no more than its
// values. read == nil checks every column's headers only. It reads r in
// windows of at least 1 MiB, so a chunk of small pages costs one read.
func checkRowGroup(r io.ReaderAt, md *format.FileMetaData, gi int, read func(ci int) (maxDef int, ok bool)) error {
	rg := &md.RowGroups[gi]
	var win pageWindow
	var pc pageChecker
	for ci := range rg.Columns {
		maxDef, ok := 0, true
		if read != nil {
			maxDef, ok = read(ci)
		}
		if !ok {
			continue
		}
		cc := &rg.Columns[ci]
		start, n := chunkRange(&cc.MetaData)
		end := start + n
		var values int64
		for off, page := start, 1; off < end; page++ {
			at := func(format string, args ...any) error {
				return boundsErr("row group %d, column %s, page %d (at byte %d): %s", gi, chunkName(cc, ci), page, off, fmt.Sprintf(format, args...))
			}
			var h format.PageHeader
			hn, err := win.header(r, off, end, &h)
			if err != nil {
				if errors.Is(err, ErrParquetBounds) {
					return err
				}
				var pe *pageHeaderError
				if errors.As(err, &pe) {
					return at("the page header does not decode (%v)", pe.err)
				}
				return err // the store's
			}
			c, u := int64(h.CompressedPageSize), int64(h.UncompressedPageSize)
			data := off + int64(hn)
			switch {
			case c < 0 || u < 0:
				return at("page sizes %d and %d", c, u)
			case c > end-data:
				return at("%d bytes, past the end of the column chunk (%d bytes left)", c, end-data)
			case u > MaxParquetPageBytes:
				return at("%d bytes uncompressed, more than the %d a page may hold", u, MaxParquetPageBytes)
			case u > maxExpansion(cc.MetaData.Codec, c):
				return at("%d bytes compressed with %v claim %d uncompressed, more than that codec can produce", c, cc.MetaData.Codec, u)
			}
			var nv int64
			switch {
			case h.DataPageHeader.Valid:
				nv = int64(h.DataPageHeader.V.NumValues)
			case h.DataPageHeaderV2.Valid:
				v2 := &h.DataPageHeaderV2.V
				nv = int64(v2.NumValues)
				if int64(v2.NumRows) > rg.NumRows || v2.NumNulls < 0 || v2.NumNulls > v2.NumValues ||
					v2.RepetitionLevelsByteLength < 0 || v2.DefinitionLevelsByteLength < 0 ||
					int64(v2.RepetitionLevelsByteLength)+int64(v2.DefinitionLevelsByteLength) > c {
					return at("a v2 data page of %d rows, %d nulls, levels of %d+%d bytes in %d", v2.NumRows, v2.NumNulls, v2.RepetitionLevelsByteLength, v2.DefinitionLevelsByteLength, c)
				}
			case h.DictionaryPageHeader.Valid:
				if d := int64(h.DictionaryPageHeader.V.NumValues); d < 0 || d > MaxParquetPageValues || d > 8*u+8 {
					return at("a dictionary of %d values in %d bytes", d, u)
				}
			}
			if nv < 0 || nv > MaxParquetPageValues {
				return at("%d values, more than the %d a page may hold", nv, MaxParquetPageValues)
			}
			values += nv
			if read != nil {
				page, err := win.span(r, data, c, end)
				if err != nil {
					return err
				}
				if err := pc.check(&h, cc.MetaData.Codec, page, maxDef); err != nil {
					var de *pageDataErr
					if errors.As(err, &de) {
						return at("%v", de)
					}
					return err
				}
			}
			off = data + c
		}
		if values > cc.MetaData.NumValues && cc.MetaData.NumValues > 0 {
			return boundsErr("row group %d, column %s: its pages hold %d values, its metadata %d", gi, chunkName(cc, ci), values, cc.MetaData.NumValues)
		}
	}
	return nil
}

// maxExpansion is the most that c compressed bytes of codec can decompress
// to: snappy copies at most 64 bytes per 3, LZ4 about 255 per byte,
// deflate 1032; zstd and brotli are bounded by MaxParquetPageBytes alone.
func maxExpansion(codec format.CompressionCodec, c int64) int64 {
	switch codec {
	case format.Uncompressed:
		return c
	case format.Snappy:
		return 22*c + 64
	case format.Gzip:
		return 1032*c + 64
	case format.Lz4, format.Lz4Raw:
		return 256*c + 64
	}
	return MaxParquetPageBytes
}

// pageHeaderError is a page header that does not decode.
type pageHeaderError struct{ err error }

func (e *pageHeaderError) Error() string { return e.err.Error() }

// pageWindow is a window of a file read ahead for page headers.
type pageWindow struct {
	buf []byte
	off int64 // file offset of buf[0]
}

// span returns the n bytes of the file at off (off+n <= end, the chunk's
// end), reading ahead to the chunk's end by up to 1 MiB.
func (w *pageWindow) span(r io.ReaderAt, off, n, end int64) ([]byte, error) {
	if off < w.off || off+n > w.off+int64(len(w.buf)) {
		size := min(max(n, 1<<20), end-off)
		if int64(cap(w.buf)) < size {
			w.buf = make([]byte, size)
		}
		w.buf = w.buf[:size]
		m, err := r.ReadAt(w.buf, off)
		if m < len(w.buf) {
			if err == nil || err == io.EOF {
				return nil, boundsErr("the file ends at byte %d, inside a column chunk that ends at %d", off+int64(m), end)
			}
			return nil, err
		}
		w.off = off
	}
	return w.buf[off-w.off : off-w.off+n], nil
}

// header decodes the page header at off (before end, the chunk's end) into
// h and returns its length.
func (w *pageWindow) header(r io.ReaderAt, off, end int64, h *format.PageHeader) (int, error) {
	for want := int64(64 << 10); ; want *= 4 {
		want = min(want, end-off, maxPageHeader)
		if off < w.off || off+want > w.off+int64(len(w.buf)) {
			n := min(max(want, 1<<20), end-off)
			if int64(cap(w.buf)) < n {
				w.buf = make([]byte, n)
			}
			w.buf = w.buf[:n]
			m, err := r.ReadAt(w.buf, off)
			if m < len(w.buf) {
				if err == nil || err == io.EOF {
					return 0, boundsErr("the file ends at byte %d, inside a column chunk that ends at %d", off+int64(m), end)
				}
				return 0, err
			}
			w.off = off
		}
		b := w.buf[off-w.off : off-w.off+want]
		n, err := thriftCheck(b)
		if err == nil {
			var p thrift.CompactProtocol
			*h = format.PageHeader{}
			if err = thrift.NewDecoder(p.NewReaderFromBytes(b[:n])).Decode(h); err == nil {
				return n, nil
			}
			return 0, &pageHeaderError{err}
		}
		if err != errThriftShort || want >= end-off || want >= maxPageHeader {
			return 0, &pageHeaderError{err}
		}
	}
}

// thriftCheck walks b as thrift compact-protocol struct fields, as far as
// the struct's stop byte, without allocating, and returns the length of the
// struct. Every list, set and map may hold at most as many elements as
// bytes remain, every binary as many bytes as remain: the Parquet library's
// decoder allocates what such a length claims (up to 2^31 elements) before
// it reads them, so this runs on every footer and page header first.
func thriftCheck(b []byte) (int, error) {
	w := thriftWalker{b: b}
	if err := w.structure(0); err != nil {
		return 0, err
	}
	return w.off, nil
}

type thriftWalker struct {
	b   []byte
	off int
}

var errThriftShort = errors.New("thrift: truncated")

func (w *thriftWalker) byte1() (byte, error) {
	if w.off >= len(w.b) {
		return 0, errThriftShort
	}
	c := w.b[w.off]
	w.off++
	return c, nil
}

func (w *thriftWalker) uvarint() (uint64, error) {
	var x uint64
	for shift := 0; shift < 64; shift += 7 {
		c, err := w.byte1()
		if err != nil {
			return 0, err
		}
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return x, nil
		}
	}
	return 0, errors.New("thrift: varint too long")
}

func (w *thriftWalker) count(n uint64, per int) error {
	if n > uint64(len(w.b)-w.off)/uint64(per) {
		return fmt.Errorf("thrift: %d elements claimed in %d bytes", n, len(w.b)-w.off)
	}
	return nil
}

func (w *thriftWalker) structure(depth int) error {
	if depth > 32 {
		return errors.New("thrift: structures nested too deep")
	}
	for {
		h, err := w.byte1()
		if err != nil {
			return err
		}
		if h == 0 {
			return nil
		}
		typ := h & 0x0f
		if h>>4 == 0 {
			if _, err := w.uvarint(); err != nil { // the field id
				return err
			}
		}
		if typ == 1 || typ == 2 { // a bool field's value is its type
			continue
		}
		if err := w.value(typ, depth); err != nil {
			return err
		}
	}
}

func (w *thriftWalker) value(typ byte, depth int) error {
	switch typ {
	case 1, 2, 3: // bool (in a list), byte
		_, err := w.byte1()
		return err
	case 4, 5, 6: // i16, i32, i64
		_, err := w.uvarint()
		return err
	case 7: // double
		if err := w.count(8, 1); err != nil {
			return err
		}
		w.off += 8
		return nil
	case 8: // binary
		n, err := w.uvarint()
		if err != nil {
			return err
		}
		if err := w.count(n, 1); err != nil {
			return err
		}
		w.off += int(n)
		return nil
	case 9, 10: // list, set
		h, err := w.byte1()
		if err != nil {
			return err
		}
		n := uint64(h >> 4)
		if n == 15 {
			if n, err = w.uvarint(); err != nil {
				return err
			}
		}
		if err := w.count(n, 1); err != nil {
			return err
		}
		for i := uint64(0); i < n; i++ {
			if err := w.value(h&0x0f, depth+1); err != nil {
				return err
			}
		}
		return nil
	case 11: // map
		n, err := w.uvarint()
		if err != nil || n == 0 {
			return err
		}
		kv, err := w.byte1()
		if err != nil {
			return err
		}
		if err := w.count(n, 2); err != nil {
			return err
		}
		for i := uint64(0); i < n; i++ {
			if err := w.value(kv>>4, depth+1); err != nil {
				return err
			}
			if err := w.value(kv&0x0f, depth+1); err != nil {
				return err
			}
		}
		return nil
	case 12: // struct
		return w.structure(depth + 1)
	}
	return fmt.Errorf("thrift: unknown type %d", typ)
}
