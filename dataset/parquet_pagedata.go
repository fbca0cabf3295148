package dataset

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/format"
	"github.com/pierrec/lz4/v4"
)

// A page's header is not all that parquet-go trusts: inside the page, once
// decompressed, the run-length headers of its definition levels and
// dictionary indices, and the value counts of its delta encodings, say how
// much to allocate, and parquet-go allocates it before reading the runs (a
// 2-byte run header claiming 2^30 values allocates 4 GiB); its LZ4 reader
// doubles its buffer for as long as a corrupt block fails to decode, and
// snappy and zstd allocate what their own headers claim. pageChecker
// decompresses each page the way parquet-go will, bounded by the page
// header's uncompressed size (already held to MaxParquetPageBytes), and
// walks those streams without allocating: the values they decode to must
// fit the page's values (already held to the row group's rows and
// MaxParquetPageValues). A page that passes decodes in memory bounded by
// those limits.

// runSlack is how many values past a page's count its run-length streams
// may decode to: writers pad the last bit-packed run to a group of 8.
const runSlack = 8

// pageChecker checks the data of pages (see above), reusing one buffer.
type pageChecker struct {
	buf []byte
}

// pageDataErr is what is wrong inside a page; checkRowGroup names the page.
type pageDataErr struct{ msg string }

func (e *pageDataErr) Error() string { return e.msg }

func dataErr(format string, args ...any) error {
	return &pageDataErr{fmt.Sprintf(format, args...)}
}

// check checks page, the compressed bytes of the page h describes, of a
// column chunk compressed with codec whose column has maxDef definition
// levels (and no repetition levels: load reads no repeated column).
func (k *pageChecker) check(h *format.PageHeader, codec format.CompressionCodec, page []byte, maxDef int) error {
	u := int(h.UncompressedPageSize)
	switch {
	case h.DictionaryPageHeader.Valid && h.Type == format.DictionaryPage:
		// PLAIN values, bounded by the page's bytes once decompressed.
		return k.bounded(codec, page, u)
	case h.DataPageHeader.Valid && h.Type == format.DataPage:
		v1 := &h.DataPageHeader.V
		if maxDef == 0 && !runEncoded(v1.Encoding) {
			return k.bounded(codec, page, u)
		}
		data, err := k.decompress(codec, page, u)
		if err != nil {
			return err
		}
		nv := int64(v1.NumValues)
		if maxDef > 0 {
			if len(data) < 4 {
				return dataErr("the definition levels' length is cut off")
			}
			n := int64(binary.LittleEndian.Uint32(data))
			if n > int64(len(data)-4) {
				return dataErr("definition levels of %d bytes in a page of %d", n, len(data))
			}
			if v1.DefinitionLevelEncoding == format.RLE {
				if err := checkRuns(data[4:4+n], bits.Len(uint(maxDef)), nv, "definition levels"); err != nil {
					return err
				}
			}
			data = data[4+n:]
		}
		return checkValues(v1.Encoding, data, nv)
	case h.DataPageHeaderV2.Valid && h.Type == format.DataPageV2:
		v2 := &h.DataPageHeaderV2.V
		rl, dl := int(v2.RepetitionLevelsByteLength), int(v2.DefinitionLevelsByteLength)
		if rl+dl > len(page) || rl+dl > u {
			return dataErr("levels of %d+%d bytes in a page of %d", rl, dl, len(page))
		}
		nv := int64(v2.NumValues)
		if maxDef > 0 && dl > 0 {
			if err := checkRuns(page[rl:rl+dl], bits.Len(uint(maxDef)), nv, "definition levels"); err != nil {
				return err
			}
		}
		data := page[rl+dl:]
		if !runEncoded(v2.Encoding) {
			if !v2.IsCompressed.Valid || v2.IsCompressed.V {
				return k.bounded(codec, data, u-rl-dl)
			}
			return nil
		}
		if !v2.IsCompressed.Valid || v2.IsCompressed.V {
			var err error
			if data, err = k.decompress(codec, data, u-rl-dl); err != nil {
				return err
			}
		}
		return checkValues(v2.Encoding, data, nv-int64(v2.NumNulls))
	}
	return nil // parquet-go refuses the page without reading it
}

// runEncoded reports whether values in encoding enc hold run lengths or
// counts that parquet-go allocates by (checkValues checks them).
func runEncoded(enc format.Encoding) bool {
	switch enc {
	//lint:ignore SA1019 older writers mark dictionary indices PLAIN_DICTIONARY
	case format.PlainDictionary, format.RLEDictionary, format.RLE, format.DeltaBinaryPacked, format.DeltaLengthByteArray, format.DeltaByteArray:
		return true
	}
	return false
}

// bounded checks that parquet-go's decompression of page (to the header's
// u bytes) allocates no more than u: for snappy, whose block states its
// length, by reading that length; otherwise by decompressing it
// (decompress).
func (k *pageChecker) bounded(codec format.CompressionCodec, page []byte, u int) error {
	switch codec {
	case format.Uncompressed:
		return nil
	case format.Snappy:
		claim, err := snappy.DecodedLen(page)
		if err != nil {
			return dataErr("the snappy data does not decompress (%v)", err)
		}
		if claim != u {
			return dataErr("the snappy data claims %d bytes, the page header %d", claim, u)
		}
		return nil
	}
	_, err := k.decompress(codec, page, u)
	return err
}

// decompress undoes codec on page, into k.buf, failing unless it gives
// exactly u bytes (as Arrow requires); it never holds more than u bytes.
// Codecs parquet-go does not read are left to it to refuse.
func (k *pageChecker) decompress(codec format.CompressionCodec, page []byte, u int) ([]byte, error) {
	if codec == format.Uncompressed {
		return page, nil
	}
	if cap(k.buf) < u {
		k.buf = make([]byte, u)
	}
	out := k.buf[:u]
	var n int
	var err error
	switch codec {
	case format.Snappy:
		var claim int
		if claim, err = snappy.DecodedLen(page); err == nil && claim != u {
			return nil, dataErr("the snappy data claims %d bytes, the page header %d", claim, u)
		}
		if err == nil {
			var got []byte
			got, err = snappy.Decode(out, page)
			n = len(got)
		}
	case format.Zstd:
		d := pageZstd.Get().(*zstd.Decoder)
		var got []byte
		got, err = d.DecodeAll(page, out[:0])
		pageZstd.Put(d)
		if n = len(got); n > u {
			return nil, dataErr("the zstd data decompresses to more than the page header's %d bytes", u)
		}
	case format.Gzip:
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(page)); err == nil {
			n, err = readExactly(zr, out)
		}
	case format.Brotli:
		n, err = readExactly(brotli.NewReader(bytes.NewReader(page)), out)
	case format.Lz4Raw:
		n, err = lz4.UncompressBlock(page, out)
	default:
		return nil, nil
	}
	if err != nil {
		return nil, dataErr("the %v data does not decompress (%v)", codec, err)
	}
	if n != u {
		return nil, dataErr("the %v data decompresses to %d bytes, the page header says %d", codec, n, u)
	}
	return out, nil
}

// readExactly fills out from r and fails if r holds more.
func readExactly(r io.Reader, out []byte) (int, error) {
	n, err := io.ReadFull(r, out)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return n, nil
	}
	if err != nil {
		return n, err
	}
	var one [1]byte
	if m, _ := r.Read(one[:]); m > 0 {
		return n + 1, nil // more than out: decompress reports the mismatch
	}
	return n, nil
}

// pageZstd decodes zstd pages with memory held to a page's limit (a frame
// may claim a window or content size of many GiB).
var pageZstd = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxParquetPageBytes), zstd.WithDecoderMaxWindow(MaxParquetPageBytes))
	if err != nil {
		panic(err) // only invalid options fail
	}
	return d
}}

// checkValues checks the value section of a data page holding nv values
// (non-null) in encoding enc.
func checkValues(enc format.Encoding, data []byte, nv int64) error {
	switch enc {
	//lint:ignore SA1019 older writers mark dictionary indices PLAIN_DICTIONARY
	case format.PlainDictionary, format.RLEDictionary:
		if len(data) == 0 {
			return nil
		}
		if data[0] > 32 {
			return dataErr("dictionary indices of %d bits", data[0])
		}
		return checkRuns(data[1:], int(data[0]), nv, "dictionary indices")
	case format.RLE: // booleans: a 4-byte length, then runs of 1 bit
		if len(data) < 4 {
			return nil // parquet-go refuses it
		}
		n := int64(binary.LittleEndian.Uint32(data))
		if n > int64(len(data)-4) {
			return dataErr("run-length booleans of %d bytes in %d", n, len(data)-4)
		}
		return checkRuns(data[4:4+n], 1, nv, "run-length booleans")
	case format.DeltaBinaryPacked, format.DeltaLengthByteArray:
		_, err := checkDelta(data, nv, "delta-encoded values")
		return err
	case format.DeltaByteArray:
		rest, err := checkDelta(data, nv, "delta-encoded prefix lengths")
		if err != nil {
			return err
		}
		_, err = checkDelta(rest, nv, "delta-encoded suffix lengths")
		return err
	}
	return nil // PLAIN, BYTE_STREAM_SPLIT: sized by the page's bytes
}

// checkRuns walks an RLE/bit-packed hybrid stream of width-bit values, as
// parquet-go decodes it (every run, to the end of b), and fails if it holds
// more than nv values (plus runSlack), or a bit-packed run longer than b.
func checkRuns(b []byte, width int, nv int64, what string) error {
	limit := uint64(nv) + runSlack
	var values uint64
	for i := 0; i < len(b); {
		h, n := binary.Uvarint(b[i:])
		if n <= 0 {
			return nil // parquet-go refuses a cut or overlong run header
		}
		i += n
		count := h >> 1
		if h&1 != 0 { // bit-packed: count groups of 8 values
			if count > limit {
				return dataErr("%s: a bit-packed run of %d values, in a page of %d", what, count*8, nv)
			}
			size := count * uint64(width)
			if size > uint64(len(b)-i) {
				return dataErr("%s: a bit-packed run of %d bytes, %d left in the page", what, size, len(b)-i)
			}
			values += 8 * count
			i += int(size)
		} else {
			values += count
			i += (width + 7) / 8
		}
		if values > limit {
			return dataErr("%s: runs of %d or more values, in a page of %d", what, values, nv)
		}
	}
	return nil
}

// checkDelta checks the header of a DELTA_BINARY_PACKED stream to claim at
// most nv values and returns the bytes after the stream (walked as
// parquet-go walks it).
func checkDelta(b []byte, nv int64, what string) ([]byte, error) {
	var hdr [3]uint64
	for k := range hdr {
		x, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, nil // parquet-go refuses it
		}
		hdr[k], b = x, b[n:]
	}
	if _, n := binary.Varint(b); n > 0 {
		b = b[n:]
	} else {
		return nil, nil
	}
	blockSize, minis, total := hdr[0], hdr[1], hdr[2]
	if total > uint64(nv)+runSlack {
		return nil, dataErr("%s: %d values claimed, in a page of %d", what, total, nv)
	}
	if minis == 0 || blockSize == 0 || blockSize%minis != 0 || blockSize > 1<<20 || total == 0 {
		return b, nil // parquet-go refuses a bad block shape; no values, no blocks
	}
	per := blockSize / minis
	left := total - 1
	for left > 0 && len(b) > 0 {
		if _, n := binary.Varint(b); n > 0 {
			b = b[n:]
		} else {
			return nil, nil
		}
		if uint64(len(b)) < minis {
			return nil, nil
		}
		widths := b[:minis]
		b = b[minis:]
		for _, w := range widths {
			n := min(per, left)
			if w != 0 {
				b = b[min(uint64(len(b)), per*uint64(w)/8):]
			}
			left -= n
			if left == 0 {
				break
			}
		}
	}
	return b, nil
}
