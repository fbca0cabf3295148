package dataset

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// A footer whose first list claims 2^31-1 row groups is refused before the
// Parquet library would allocate them, and reading it allocates little.
func TestParquetFooterListBounded(t *testing.T) {
	// Struct field 4 (row_groups) of FileMetaData: a list (type 9) of
	// structs (12) with 2^31-1 elements, then nothing.
	footer := []byte{0x49, 0xfc, 0xff, 0xff, 0xff, 0x07, 0x00}
	file := append([]byte("PAR1"), footer...)
	file = binary.LittleEndian.AppendUint32(file, uint32(len(footer)))
	file = append(file, "PAR1"...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadParquetBytes(file, ParquetOptions{Label: "y"}, func(*Row) {})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrParquetBounds) || !strings.Contains(err.Error(), "footer does not decode") {
		t.Fatalf("got %v, want the footer refused", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
		t.Errorf("refusing the footer allocated %d bytes", n)
	}
}

func TestThriftCheck(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"empty struct", []byte{0}, true},
		{"i32 field and stop", []byte{0x15, 0x04, 0x00}, true},
		{"binary of 3", []byte{0x18, 0x03, 'a', 'b', 'c', 0x00}, true},
		{"binary claims 1 GiB", []byte{0x18, 0x80, 0x80, 0x80, 0x80, 0x04, 0x00}, false},
		{"list of 2 i32", []byte{0x19, 0x25, 0x02, 0x04, 0x00}, true},
		{"map claims 2^31", []byte{0x1b, 0xff, 0xff, 0xff, 0xff, 0x07, 0x55, 0x00}, false},
		{"no stop", []byte{0x15, 0x04}, false},
		{"varint too long", []byte{0x15, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, false},
	} {
		_, err := thriftCheck(c.b)
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok = %v", c.name, err, c.ok)
		}
	}
}

// Page headers that claim more than their chunk holds, more than their
// codec can expand to, or more values than a page may hold are refused
// with the row group, column and page named.
func TestParquetPageBounds(t *testing.T) {
	for _, c := range []struct {
		name  string
		h     format.PageHeader
		codec format.CompressionCodec
		want  string
	}{
		{"2 GiB compressed", format.PageHeader{Type: format.DataPage, CompressedPageSize: 1<<31 - 1, UncompressedPageSize: 100}, format.Uncompressed, "past the end of the column chunk"},
		{"snappy 1 KiB to 1 MiB", format.PageHeader{Type: format.DataPage, CompressedPageSize: 16, UncompressedPageSize: 1 << 20}, format.Snappy, "more than that codec can produce"},
		{"zstd to 1 GiB", format.PageHeader{Type: format.DataPage, CompressedPageSize: 16, UncompressedPageSize: 1 << 30}, format.Zstd, "more than the 134217728 a page may hold"},
		{"2^30 values", format.PageHeader{Type: format.DataPage, CompressedPageSize: 16, UncompressedPageSize: 16,
			DataPageHeader: thrift.Null[format.DataPageHeader]{Valid: true, V: format.DataPageHeader{NumValues: 1 << 30}}}, format.Uncompressed, "values, more than"},
	} {
		hdr, err := thrift.Marshal(new(thrift.CompactProtocol), &c.h)
		if err != nil {
			t.Fatal(err)
		}
		file := append(append([]byte("PAR1"), hdr...), make([]byte, 16)...)
		md := &format.FileMetaData{NumRows: 10, RowGroups: []format.RowGroup{{NumRows: 10, Columns: []format.ColumnChunk{{
			MetaData: format.ColumnMetaData{PathInSchema: []string{"x"}, Codec: c.codec, NumValues: 10, DataPageOffset: 4, TotalCompressedSize: int64(len(hdr) + 16)},
		}}}}}
		if err := checkParquetFooter(md, int64(len(file))); err != nil {
			t.Fatalf("%s: footer: %v", c.name, err)
		}
		err = checkRowGroup(bytes.NewReader(file), md, 0, nil)
		if !errors.Is(err, ErrParquetBounds) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `row group 0, column "x", page 1`) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

// Chunks outside the file and row counts that disagree are refused from the
// footer alone.
func TestParquetFooterBounds(t *testing.T) {
	chunk := func(off, n int64) format.ColumnChunk {
		return format.ColumnChunk{MetaData: format.ColumnMetaData{PathInSchema: []string{"x"}, NumValues: 1, DataPageOffset: off, TotalCompressedSize: n}}
	}
	for _, c := range []struct {
		name string
		md   format.FileMetaData
		want string
	}{
		{"past the end", format.FileMetaData{NumRows: 1, RowGroups: []format.RowGroup{{NumRows: 1, Columns: []format.ColumnChunk{chunk(4, 1<<40)}}}}, "in a file of 100 bytes"},
		{"before the magic", format.FileMetaData{NumRows: 1, RowGroups: []format.RowGroup{{NumRows: 1, Columns: []format.ColumnChunk{chunk(0, 10)}}}}, "bytes 0 to 10"},
		{"rows disagree", format.FileMetaData{NumRows: 7, RowGroups: []format.RowGroup{{NumRows: 1, Columns: []format.ColumnChunk{chunk(4, 10)}}}}, "counts 7 rows, its row groups 1"},
		{"negative rows", format.FileMetaData{NumRows: -1, RowGroups: []format.RowGroup{{NumRows: -1}}}, "-1 rows"},
	} {
		err := checkParquetFooter(&c.md, 100)
		if !errors.Is(err, ErrParquetBounds) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

// The test file passes every check, and its pages are read in one window.
func TestParquetBoundsAcceptGoodFile(t *testing.T) {
	good, err := os.ReadFile("testdata/people.parquet")
	if err != nil {
		t.Fatal(err)
	}
	n, err := ReadParquetBytes(good, ParquetOptions{Label: "clicked", Ignore: []string{"id"}}, func(*Row) {})
	if err != nil || n == 0 {
		t.Fatalf("read %d rows: %v", n, err)
	}
}

// readFuzzSeed returns the bytes of a corpus file of go test -fuzz.
func readFuzzSeed(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, "[]byte("), strings.LastIndex(s, ")")
	if i < 0 || j < i {
		t.Fatalf("%s: not a fuzz corpus file", path)
	}
	data, err := strconv.Unquote(s[i+len("[]byte(") : j])
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(data)
}

// FuzzParquet's seed 1cc2ab53ee9d1a2d is the test file with one page's
// dictionary indices claiming a bit-packed run of 805 million values:
// parquet-go allocated 3 GiB for them before finding the run's bytes
// missing. It is refused from the page's decompressed bytes, naming the row
// group, column and page, in a few kilobytes.
func TestParquetPageRunsBounded(t *testing.T) {
	data := readFuzzSeed(t, "testdata/fuzz/FuzzParquet/1cc2ab53ee9d1a2d")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadParquetBytes(data, ParquetOptions{Label: "clicked", Ignore: []string{"id"}, HashBits: 8}, func(*Row) {})
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
		t.Errorf("reading the file allocated %d bytes", n)
	}
	want := `row group 0, column "income", page 2 (at byte 1775): dictionary indices: a bit-packed run of 805306472 values, in a page of 100`
	if !errors.Is(err, ErrParquetBounds) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
}

func TestCheckRuns(t *testing.T) {
	for _, c := range []struct {
		name  string
		b     []byte
		width int
		nv    int64
		want  string // "" for accepted
	}{
		{"rle run of 100", []byte{100 << 1, 1}, 1, 100, ""},
		{"bit-packed 2 groups", []byte{2<<1 | 1, 0xff, 0x00}, 1, 16, ""},
		{"padded last group", []byte{2<<1 | 1, 0xff, 0x01}, 1, 9, ""},
		{"rle run of 2^30", []byte{0x80, 0x80, 0x80, 0x80, 0x08, 1}, 1, 100, "runs of 1073741824 or more values"},
		{"two runs past the page", []byte{60 << 1, 1, 60 << 1, 0}, 1, 100, "runs of 120 or more values"},
		{"bit-packed past the bytes", []byte{4<<1 | 1, 0xff}, 8, 100, "a bit-packed run of 32 bytes, 1 left"},
		{"cut header", []byte{0x80}, 1, 100, ""}, // parquet-go refuses it without allocating
	} {
		err := checkRuns(c.b, c.width, c.nv, "levels")
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

func TestCheckDelta(t *testing.T) {
	// block size 128, 4 mini-blocks, 1 value (the first, 7): no blocks.
	one := []byte{0x80, 0x01, 4, 1, 14}
	if rest, err := checkDelta(append(one, 0xaa), 1, "values"); err != nil || !bytes.Equal(rest, []byte{0xaa}) {
		t.Errorf("one value: rest %x, %v", rest, err)
	}
	huge := []byte{0x80, 0x01, 4, 0xff, 0xff, 0xff, 0xff, 0x07, 14}
	if _, err := checkDelta(huge, 100, "values"); err == nil || !strings.Contains(err.Error(), "2147483647 values claimed, in a page of 100") {
		t.Errorf("2^31 values: %v", err)
	}
	// DELTA_BYTE_ARRAY: the prefix lengths are fine, the suffix lengths
	// claim 2^31.
	hdr := func(total byte) []byte { return []byte{0x80, 0x01, 4, total, 0} }
	prefix := append(hdr(3), 0, 0, 0, 0, 0) // min delta 0, four widths 0
	err := checkValues(format.DeltaByteArray, append(prefix, huge...), 3)
	if err == nil || !strings.Contains(err.Error(), "suffix lengths: 2147483647 values claimed") {
		t.Errorf("delta byte array: %v", err)
	}
}

// Compressed pages must decompress to exactly their header's size, and a
// codec's own claims beyond it are refused before anything is allocated.
func TestPageDecompressBounded(t *testing.T) {
	plain := bytes.Repeat([]byte("abcdefgh"), 1000)
	var k pageChecker
	sn := snappy.Encode(nil, plain)
	if out, err := k.decompress(format.Snappy, sn, len(plain)); err != nil || !bytes.Equal(out, plain) {
		t.Fatalf("snappy: %v", err)
	}
	if _, err := k.decompress(format.Snappy, sn, len(plain)-1); err == nil || !strings.Contains(err.Error(), "the snappy data claims 8000 bytes, the page header 7999") {
		t.Errorf("snappy, short header: %v", err)
	}
	claim := append(binary.AppendUvarint(nil, 1<<31), sn[2:]...)
	if _, err := k.decompress(format.Snappy, claim, 100); err == nil {
		t.Errorf("snappy claiming 2 GiB: accepted")
	}
	lz := make([]byte, lz4.CompressBlockBound(len(plain)))
	n, err := lz4.CompressBlock(plain, lz, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := k.decompress(format.Lz4Raw, lz[:n], len(plain)); err != nil || !bytes.Equal(out, plain) {
		t.Fatalf("lz4: %v", err)
	}
	bad := append([]byte(nil), lz[:n]...)
	bad[len(bad)/2] ^= 0xff
	bad = bad[:len(bad)-3]
	if _, err := k.decompress(format.Lz4Raw, bad, len(plain)); err == nil {
		t.Errorf("corrupt lz4: accepted") // parquet-go doubles its buffer until this decodes
	}
	zw, _ := zstd.NewWriter(nil)
	zs := zw.EncodeAll(plain, nil)
	if _, err := k.decompress(format.Zstd, zs, len(plain)/2); err == nil || !strings.Contains(err.Error(), "zstd") {
		t.Errorf("zstd to twice its header: %v", err)
	}
	if cap(k.buf) > 2*len(plain) {
		t.Errorf("the checker holds %d bytes for pages of %d", cap(k.buf), len(plain))
	}
}
