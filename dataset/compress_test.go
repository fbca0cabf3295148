package dataset_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/stratus-ml/stratus/blob/fileblob"
	"github.com/stratus-ml/stratus/dataset"
)

func TestSniff(t *testing.T) {
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte("1 1:1\n"))
	w.Close()
	zw, _ := zstd.NewWriter(nil)
	zst := zw.EncodeAll([]byte("1 1:1\n"), nil)
	tar := make([]byte, 512)
	copy(tar[257:], "ustar\x0000")
	for _, c := range []struct {
		name, head, codec, kind string
	}{
		{"libsvm", "+1 3:1 5:0.5\n", "", ""},
		{"csv latin-1", "name,label\ncaf\xe9,1\n", "", ""},
		{"empty", "", "", ""},
		{"gzip", gz.String(), "gzip", ""},
		{"zstd", string(zst), "zstd", ""},
		{"bzip2", "BZh91AY&SY", "bzip2", ""},
		{"parquet", "PAR1\x15\x00", "", "a Parquet file"},
		{"xz", "\xfd7zXZ\x00\x00", "", "xz-compressed data"},
		{"zip", "PK\x03\x04\x14\x00", "", "a zip archive"},
		{"tar", string(tar), "", "a tar archive"},
		{"utf-16le bom", "\xff\xfea\x00,\x00", "", "UTF-16 text"},
		{"utf-16le no bom", "a\x00,\x00b\x00\n\x001\x00", "", "UTF-16 text"},
		{"nul", "1 1:1\n\x00\x01", "", "binary data"},
		{"random", strings.Repeat("\xc3\x28\x9f\xa1", 40), "", "binary data"},
	} {
		got := dataset.Sniff([]byte(c.head))
		if got.Codec != c.codec || got.Kind != c.kind {
			t.Errorf("%s: Sniff = %+v, want codec %q kind %q", c.name, got, c.codec, c.kind)
		}
		if got.Kind != "" && got.Advice == "" {
			t.Errorf("%s: no advice", c.name)
		}
	}
}

// TestDecompressConcatenated: gzip files of several members (pigz, bgzip,
// cat a.gz b.gz) decode whole.
func TestDecompressConcatenated(t *testing.T) {
	var buf bytes.Buffer
	for _, s := range []string{"1 1:1\n", "-1 2:1\n"} {
		w := gzip.NewWriter(&buf)
		w.Write([]byte(s))
		w.Close()
	}
	zr, err := dataset.Decompress(&buf, dataset.CodecGzip)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	b, err := io.ReadAll(zr)
	if err != nil || string(b) != "1 1:1\n-1 2:1\n" {
		t.Fatalf("got %q, %v", b, err)
	}
}

// TestOpenObjectCorrupt: truncated or damaged compressed objects give a
// CorruptError, and closing mid-stream stops the decoder's goroutine.
func TestOpenObjectCorrupt(t *testing.T) {
	dir := t.TempDir()
	st, err := fileblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	content := bytes.Repeat([]byte("+1 1:1 2:0.5 3:1\n"), 200000)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(content)
	w.Close()
	zw, _ := zstd.NewWriter(nil)
	zst := zw.EncodeAll(content, nil)
	flipped := append([]byte(nil), gz.Bytes()...)
	flipped[len(flipped)-6] ^= 0xff // the CRC-32
	for name, b := range map[string][]byte{"cut.gz": gz.Bytes()[:gz.Len()/2], "crc.gz": flipped, "cut.zst": zst[:len(zst)/2]} {
		codec := dataset.CodecGzip
		if strings.HasSuffix(name, ".zst") {
			codec = dataset.CodecZstd
		}
		if err := st.Put(ctx, name, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		rc, err := dataset.OpenObject(ctx, st, name, codec)
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
		var ce *dataset.CorruptError
		if !errors.As(err, &ce) || ce.Codec != codec {
			t.Errorf("%s: %v, want a CorruptError", name, err)
		}
	}

	if err := st.Put(ctx, "ok.gz", bytes.NewReader(gz.Bytes())); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		rc, err := dataset.OpenObject(ctx, st, "ok.gz", dataset.CodecGzip)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.Read(make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	// Close waits for the read-ahead goroutine, so none is left behind.
	// (Counting goroutines was flaky: the runtime counts its finalizer
	// goroutine while it runs a finalizer, such as a closed file's.)
	stacks := make([]byte, 1<<20)
	if n := runtime.Stack(stacks, true); bytes.Contains(stacks[:n], []byte("dataset.readAhead")) {
		t.Fatalf("a read-ahead goroutine is left after closing 20 readers:\n%s", stacks[:n])
	}
}
