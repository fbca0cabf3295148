package dataset

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"

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
