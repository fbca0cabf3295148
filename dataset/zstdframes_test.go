package dataset

import (
	"bytes"
	"errors"
	"io"
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
