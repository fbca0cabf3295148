package dataset

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// MaxWholeFrame bounds the content of a zstd frame that is decoded whole
// (zstdFrames): klauspost/compress decodes a frame into one buffer
// (DecodeAll) at about 1.4× the speed of its streaming reader (1.2 against
// 0.8 GB per CPU-second on LIBSVM at zstd's default level, where the zstd
// CLI does 1.3), at the cost of holding the frame's compressed bytes and
// content. A frame that does not state its size (zstd reading a pipe), or
// states more, is streamed.
const MaxWholeFrame = 64 << 20

// zstdFrames decodes a zstd stream frame by frame: each frame that states
// a content size of at most MaxWholeFrame is read whole (its blocks walked
// to find its end) and decoded with DecodeAll into a reused buffer;
// skippable frames are skipped; from the first frame that cannot be
// decoded whole, the rest of the stream is streamed by the decoder.
type zstdFrames struct {
	br *bufio.Reader
	d  *zstd.Decoder
	*frameBuf
	cur    []byte // the unread part of out
	stream bool   // d streams the rest of br
	ahead  bool   // stream on a goroutine ahead of the reader
	ra     *aheadReader
	raLend func() ([]byte, error)
	err    error
	// spare, when set, is asked at the first frame: true streams the whole
	// stream on the read-ahead goroutine (ahead), for its overlap with
	// parsing, rather than decoding frames whole (see Decompress).
	spare func() bool
	asked bool
}

// frameBuf holds a frame's compressed bytes and content. Idle ones are
// kept (frameBufs): a frame of tens of MB allocated afresh for every file
// costs page faults and clearing on the order of its decoding.
type frameBuf struct {
	raw, out []byte
}

var frameBufs = sync.Pool{New: func() any { return new(frameBuf) }}

// newZstdFrames reads r's frames with d; if ahead, the frames it streams
// are decoded on a goroutine ahead of the reader (ra). Frames decoded whole
// are lent as they are: copying them into read-ahead blocks would cost
// more than it overlaps.
func newZstdFrames(r io.Reader, d *zstd.Decoder, ahead bool) *zstdFrames {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 1<<16 {
		br = bufio.NewReaderSize(r, 1<<20)
	}
	return &zstdFrames{br: br, d: d, ahead: ahead, frameBuf: frameBufs.Get().(*frameBuf)}
}

// release stops the read-ahead goroutine and keeps z's buffers for another
// stream; z is not read again.
func (z *zstdFrames) release() {
	if z.ra != nil {
		z.ra.Close()
		z.ra = nil
	}
	if b := z.frameBuf; b != nil {
		z.frameBuf, z.cur, z.err = nil, nil, io.ErrClosedPipe
		frameBufs.Put(b)
	}
}

func (z *zstdFrames) Read(p []byte) (int, error) {
	for len(z.cur) == 0 {
		if z.ra != nil {
			return z.ra.Read(p)
		}
		if z.stream {
			return z.d.Read(p)
		}
		if z.err != nil {
			return 0, z.err
		}
		z.err = z.next()
	}
	n := copy(p, z.cur)
	z.cur = z.cur[n:]
	return n, nil
}

// lend returns the unread part of the current frame (or the next one's),
// valid until the next lend or Read. Once streaming, it lends the decoder's
// output read into z.out.
func (z *zstdFrames) lend() ([]byte, error) {
	for len(z.cur) == 0 {
		if z.ra != nil {
			return z.raLend()
		}
		if z.stream {
			if cap(z.out) < 1<<20 {
				z.out = make([]byte, 1<<20)
			}
			n, err := z.d.Read(z.out[:cap(z.out)])
			if n > 0 {
				return z.out[:n], nil
			}
			if err == nil {
				err = io.ErrNoProgress
			}
			return nil, err
		}
		if z.err != nil {
			return nil, z.err
		}
		z.err = z.next()
	}
	c := z.cur
	z.cur = nil
	return c, nil
}

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// skippableFrame reports whether b starts with a zstd skippable frame's
// header (magic 0x184D2A5?, then its 4-byte size).
func skippableFrame(b []byte) bool {
	return len(b) >= 8 && b[0]&0xf0 == 0x50 && b[1] == 0x2a && b[2] == 0x4d && b[3] == 0x18
}

// next decodes the next frame into z.cur, skips a skippable frame, or
// turns to streaming; io.EOF at the end of the stream.
func (z *zstdFrames) next() error {
	head, err := z.br.Peek(18)
	if len(head) == 0 {
		if err == io.EOF {
			return io.EOF
		}
		return err
	}
	if skippableFrame(head) {
		n := 8 + int(binary.LittleEndian.Uint32(head[4:]))
		if _, err := z.br.Discard(n); err != nil {
			return unexpected(err)
		}
		return nil
	}
	var h zstd.Header
	if len(head) < 4 || string(head[:4]) != string(zstdMagic) || h.Decode(head) != nil || h.Skippable {
		return z.streamRest() // the decoder says what is wrong
	}
	if !h.HasFCS || h.FrameContentSize > MaxWholeFrame || h.DictionaryID != 0 {
		return z.streamRest()
	}
	if z.ahead && z.spare != nil && !z.asked {
		z.asked = true
		if z.spare() {
			return z.streamRest()
		}
	}
	// Walk the frame's blocks to its end (and its checksum), holding it to
	// what a frame of that content can take (zstd's compress bound).
	limit := int(h.FrameContentSize) + int(h.FrameContentSize>>7) + 64<<10
	z.raw = z.raw[:0]
	if z.raw, err = readN(z.br, z.raw, h.HeaderSize); err != nil {
		return err
	}
	for {
		if z.raw, err = readN(z.br, z.raw, 3); err != nil {
			return err
		}
		bh := z.raw[len(z.raw)-3:]
		v := uint32(bh[0]) | uint32(bh[1])<<8 | uint32(bh[2])<<16
		size := int(v >> 3)
		switch (v >> 1) & 3 {
		case 1: // RLE: one byte
			size = 1
		case 3:
			return errors.New("zstd: a reserved block type")
		}
		if len(z.raw)+size > limit {
			return fmt.Errorf("zstd: a frame of %d bytes of content holds more than %d bytes of blocks", h.FrameContentSize, limit)
		}
		if z.raw, err = readN(z.br, z.raw, size); err != nil {
			return err
		}
		if v&1 != 0 {
			break
		}
	}
	if h.HasCheckSum {
		if z.raw, err = readN(z.br, z.raw, 4); err != nil {
			return err
		}
	}
	if z.out, err = z.d.DecodeAll(z.raw, z.out[:0]); err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	z.cur = z.out
	return nil
}

// streamRest hands the rest of the stream, from the frame at its head, to
// the streaming decoder.
func (z *zstdFrames) streamRest() error {
	if err := z.d.Reset(z.br); err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	z.stream = true
	if z.ahead {
		z.ra = readAhead(z.d, nil)
		z.raLend = z.ra.lender()
	}
	return nil
}

// readN appends n bytes of r to b.
func readN(r io.Reader, b []byte, n int) ([]byte, error) {
	l := len(b)
	b = slices.Grow(b, n)[:l+n]
	if _, err := io.ReadFull(r, b[l:]); err != nil {
		return b[:l], unexpected(err)
	}
	return b, nil
}

// unexpected turns the end of the input inside a frame into
// io.ErrUnexpectedEOF, as the streaming decoder reports a cut stream.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
