package dataset

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
)

// A compressed file is one stream, decoded from its start, unless it is cut
// into independent frames whose sizes it records: then byte ranges of it
// can be decoded in parallel, as plain files are. Two such framings are
// common and recognised by their first bytes:
//
//   - FramingPzstd: zstd frames each preceded by a skippable frame holding
//     its compressed size, as pzstd writes (zstd -T0 writes one frame).
//   - FramingBGZF: gzip members of at most 64 KiB each recording its size
//     in an extra field, as bgzip writes (BGZF, the format of BAM and
//     tabix-indexed files).
//
// A frame belongs to the range its first byte falls in. Lines cross frames,
// so a range is read as plain ranges are: a range that does not start the
// file skips its content's first line, which the range before reads, from
// its own frames into the following ones up to the first "\n" (OpenFrames).
const (
	FramingPzstd = "pzstd"
	FramingBGZF  = "bgzf"
)

// Framing returns the framing (FramingPzstd, FramingBGZF) a compressed
// object's first bytes show, or "".
func Framing(head []byte) string {
	switch {
	case pzstdAt(head, 0) > 0:
		return FramingPzstd
	case bgzfAt(head, 0) > 0:
		return FramingBGZF
	}
	return ""
}

// pzstdMarker starts a skippable frame of 4 bytes (the next frame's size);
// bgzfLead starts a gzip member with extra fields.
var (
	pzstdMarker = []byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0}
	bgzfLead    = []byte{0x1f, 0x8b, 8}
)

// pzstdAt returns the size of the pzstd frame at b[i:] (its skippable frame
// and the zstd frame after it), or 0 if none starts there or b is too
// short to tell.
func pzstdAt(b []byte, i int) int64 {
	if len(b)-i < 16 || !bytes.Equal(b[i:i+8], pzstdMarker) || !bytes.Equal(b[i+12:i+16], zstdMagic) {
		return 0
	}
	return 12 + int64(binary.LittleEndian.Uint32(b[i+8:]))
}

// bgzfAt returns the size of the BGZF member at b[i:], or 0 if none starts
// there or b is too short to tell. A member is gzip with FEXTRA, whose
// extra field (of 6 bytes) is the subfield "BC" holding its size - 1.
func bgzfAt(b []byte, i int) int64 {
	if len(b)-i < 18 {
		return 0
	}
	h := b[i : i+18]
	if h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 || h[3]&4 == 0 || h[10] != 6 || h[11] != 0 || h[12] != 'B' || h[13] != 'C' || h[14] != 2 || h[15] != 0 {
		return 0
	}
	return int64(binary.LittleEndian.Uint16(h[16:])) + 1
}

// frameAt returns the frame of framing at b[i:] (see pzstdAt, bgzfAt).
func frameAt(framing string, b []byte, i int) int64 {
	if framing == FramingPzstd {
		return pzstdAt(b, i)
	}
	return bgzfAt(b, i)
}

// frameHeader is how many bytes frameAt needs.
const frameHeader = 18

// OpenFrames returns the decompressed content of the frames of a framed
// object (framing, compressed with codec) whose first byte lies in the byte
// range [start, end) of the object, followed by the content of the frames
// after them up to and including the first "\n" (the end of the range's
// last line), and the ScanOptions to scan it with (SkipPartialLine for a
// range that does not start the object). r reads the object from byte
// start. A range holding no frame's start is empty. Bytes that should be a
// frame and are not give a *CorruptError. Close stops the decoders (it does
// not close r).
func OpenFrames(r io.Reader, codec, framing string, start, end int64) (io.ReadCloser, ScanOptions, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	f := &frames{br: br, codec: codec, framing: framing, off: start, end: end}
	opts := ScanOptions{SkipPartialLine: start > 0}
	if start > 0 {
		if err := f.sync(); err != nil {
			return nil, opts, err
		}
	}
	if f.off >= end {
		return io.NopCloser(bytes.NewReader(nil)), ScanOptions{}, nil
	}
	// Frames are decoded whole where they can be (see MaxWholeFrame), ahead
	// of the reader when there are cores to overlap with.
	own, err := decompress(f, codec, runtime.GOMAXPROCS(0) > 1, true)
	if err != nil {
		return nil, opts, &CorruptError{Codec: codec, Err: err}
	}
	return &framedRange{own: own, rest: br, codec: codec}, opts, nil
}

// frames reads the raw bytes of the frames that start before end, from
// the frame at off; then io.EOF.
type frames struct {
	br       *bufio.Reader
	codec    string
	framing  string
	off, end int64 // object offset of the next byte; the range's end
	left     int64 // bytes of the current frame not yet read
	err      error
}

// sync skips to the first frame starting at or after f.off (or to the end
// of the object).
func (f *frames) sync() error {
	for f.off < f.end {
		b, err := f.br.Peek(64 << 10)
		if len(b) < frameHeader {
			if err == io.EOF || err == bufio.ErrBufferFull {
				f.off = f.end // no frame starts in the rest of the object
				return nil
			}
			return err
		}
		lead := pzstdMarker[:4]
		if f.framing == FramingBGZF {
			lead = bgzfLead
		}
		for i := 0; i+frameHeader <= len(b); i++ {
			j := bytes.Index(b[i:], lead)
			if j < 0 || i+j+frameHeader > len(b) {
				break
			}
			if i += j; frameAt(f.framing, b, i) > 0 {
				f.br.Discard(i)
				f.off += int64(i)
				return nil
			}
		}
		n := len(b) - frameHeader + 1
		f.br.Discard(n)
		f.off += int64(n)
	}
	return nil
}

func (f *frames) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if f.left == 0 {
		if f.off >= f.end {
			f.err = io.EOF
			return 0, io.EOF
		}
		h, err := f.br.Peek(frameHeader)
		if len(h) == 0 && err == io.EOF {
			f.err = io.EOF // the object ends here, on a frame boundary
			return 0, io.EOF
		}
		if f.left = frameAt(f.framing, h, 0); f.left == 0 {
			if err != nil && err != io.EOF {
				f.err = err
				return 0, err
			}
			f.err = &CorruptError{Codec: f.codec, Err: fmt.Errorf("no %s frame at byte %d, where the frame before ends", f.framing, f.off)}
			return 0, f.err
		}
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.br.Read(p)
	f.off += int64(n)
	f.left -= int64(n)
	if err == io.EOF && f.left > 0 {
		err = io.ErrUnexpectedEOF // a frame cut short
	}
	if err != nil && err != io.EOF {
		f.err = err
	}
	return n, f.err
}

// framedRange reads a range's frames (own), then the following content up
// to its first "\n" (decoded from rest when own is done).
type framedRange struct {
	own   io.ReadCloser
	rest  io.Reader
	codec string
	tail  io.ReadCloser // the following frames, once own is done
	done  bool
}

func (r *framedRange) Read(p []byte) (int, error) {
	if r.done {
		return 0, io.EOF
	}
	if r.tail == nil {
		n, err := r.own.Read(p)
		if err == nil || n > 0 {
			return n, nil
		}
		if err != io.EOF {
			return 0, r.corrupt(err)
		}
		// The range's frames are done: the rest of its last line is in
		// the frames after (if any).
		if r.tail, err = decompress(r.rest, r.codec, false, false); err != nil {
			if errors.Is(err, io.EOF) {
				r.done = true
				return 0, io.EOF
			}
			return 0, r.corrupt(err)
		}
	}
	n, err := r.tail.Read(p)
	if i := bytes.IndexByte(p[:n], '\n'); i >= 0 {
		r.done = true
		return i + 1, nil
	}
	if err == io.EOF {
		r.done = true
		if n == 0 {
			return 0, io.EOF
		}
	} else if err != nil {
		return n, r.corrupt(err)
	}
	return n, nil
}

// lender lends the range's own frames when its decoder lends (see
// lender), then reads the tail (a line's end) into a buffer of its own.
func (r *framedRange) lender() func() ([]byte, error) {
	l, ok := r.own.(lender)
	if !ok {
		return nil
	}
	lend := l.lender()
	if lend == nil {
		return nil
	}
	var buf []byte
	return func() ([]byte, error) {
		if r.tail == nil && !r.done {
			c, err := lend()
			if err == nil {
				return c, nil
			}
			if err != io.EOF {
				return nil, r.corrupt(err)
			}
		}
		if buf == nil {
			buf = make([]byte, 64<<10)
		}
		for tries := 0; tries < 100; tries++ {
			n, err := r.Read(buf) // the tail, from the frames after
			if n > 0 {
				return buf[:n], nil
			}
			if err != nil {
				return nil, err
			}
		}
		return nil, io.ErrNoProgress
	}
}

func (r *framedRange) corrupt(err error) error {
	var ce *CorruptError
	if errors.As(err, &ce) {
		return err
	}
	return &CorruptError{Codec: r.codec, Err: err}
}

func (r *framedRange) Close() error {
	err := r.own.Close()
	if r.tail != nil {
		if e := r.tail.Close(); err == nil {
			err = e
		}
	}
	return err
}
