package dataset

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// Frame by frame, a stream of frames that state their size, skippable
// frames and a frame that does not state its size (streamed from there on)
// decodes to its content, and a cut frame is an unexpected end.
func TestZstdFrames(t *testing.T) {
	part := func(i int) []byte { return []byte(strings.Repeat(string(rune('a'+i))+" 1:2\n", 100000+i)) }
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer // a frame without a content size, as zstd writes from a pipe
	sw, _ := zstd.NewWriter(&stream, zstd.WithWindowSize(1<<17))
	for p := part(2); len(p) > 0; p = p[min(len(p), 1000):] {
		sw.Write(p[:min(len(p), 1000)])
	}
	sw.Close()
	var h zstd.Header
	if h.Decode(stream.Bytes()) != nil || h.HasFCS {
		t.Fatalf("the streamed frame states its size: %+v", h)
	}
	var obj, want []byte
	obj = enc.EncodeAll(part(0), obj)
	obj = append(obj, 0x5e, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 'x', 'y', 'z') // skippable
	obj = enc.EncodeAll(part(1), obj)
	obj = append(obj, stream.Bytes()...)
	obj = enc.EncodeAll(part(3), obj)
	for i := 0; i < 4; i++ {
		want = append(want, part(i)...)
	}
	for _, c := range []struct{ frames, ahead bool }{{true, false}, {true, true}, {false, false}, {false, true}} {
		frames := c.frames
		r, err := decompress(bytes.NewReader(obj), CodecZstd, c.ahead, frames)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("frames=%v: %d bytes, %v; want %d bytes", frames, len(got), err, len(want))
		}
		r, _ = decompress(bytes.NewReader(obj[:len(obj)/3]), CodecZstd, c.ahead, frames)
		_, err = io.ReadAll(r)
		r.Close()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("frames=%v, cut: %v", frames, err)
		}
	}
}

// TestDecompressSpareCore: a zstd stream with a core to spare beside its parser
// (fewer than half the cores decoding when it reads its first frame) streams
// on a read-ahead goroutine, for the overlap; when every core has a stream,
// streams decode whole frames, which take less CPU. Both read the same content,
// and Close counts a stream out once.
func TestDecompressSpareCore(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	content := []byte(strings.Repeat("1 3:1 7:0.5\n", 1000))
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	obj := enc.EncodeAll(content, nil)
	base := openStreams.Load()
	frames := func(r io.ReadCloser) *zstdFrames {
		t.Helper()
		f, ok := r.(*countedStream).ReadCloser.(*zstdCloser).r.(*zstdFrames)
		if !ok {
			t.Fatalf("a zstd stream reads %T, want frames", r.(*countedStream).ReadCloser.(*zstdCloser).r)
		}
		return f
	}
	read := func(r io.ReadCloser) {
		t.Helper()
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, content) {
			t.Errorf("decoded %d bytes (%v), want %d", len(got), err, len(content))
		}
	}
	// Alone on two cores: streamed ahead.
	alone, err := Decompress(bytes.NewReader(obj), CodecZstd)
	if err != nil {
		t.Fatal(err)
	}
	read(alone)
	if f := frames(alone); f.ra == nil {
		t.Error("a stream alone on 2 cores decoded whole frames, want streaming ahead")
	}
	alone.Close()
	alone.Close()
	// Two at once on two cores: whole frames for both.
	a, err := Decompress(bytes.NewReader(obj), CodecZstd)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Decompress(bytes.NewReader(obj), CodecZstd)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []io.ReadCloser{a, b} {
		read(r)
		if f := frames(r); f.ra != nil || f.stream {
			t.Error("one of two streams on 2 cores streamed, want whole frames")
		}
	}
	a.Close()
	b.Close()
	if n := openStreams.Load(); n != base {
		t.Errorf("%d streams open after closing them, want %d", n, base)
	}
}
