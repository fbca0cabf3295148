package gen

import (
	"bytes"
	"encoding/binary"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Pzstd compresses data as pzstd does: zstd frames of frameSize bytes of
// content each (the last shorter), each preceded by a skippable frame
// holding its compressed size, so that a reader can split the file by
// frame.
func Pzstd(data []byte, frameSize int) []byte {
	w, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(err) // only invalid options fail
	}
	defer w.Close()
	var out []byte
	for len(data) > 0 {
		n := min(frameSize, len(data))
		frame := w.EncodeAll(data[:n], nil)
		out = append(out, 0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(frame)))
		out = append(out, frame...)
		data = data[n:]
	}
	return out
}

// bgzfBlock is how much content bgzip puts in a member.
const bgzfBlock = 0xff00

// bgzfEOF is the empty member that ends a BGZF file.
var bgzfEOF = []byte{0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, 6, 0, 'B', 'C', 2, 0, 0x1b, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// BGZF compresses data as bgzip does: gzip members of 65,280 bytes of
// content each, each recording its compressed size in a "BC" extra field,
// then the empty end-of-file member.
func BGZF(data []byte) []byte {
	var out []byte
	for len(data) > 0 {
		n := min(bgzfBlock, len(data))
		var m bytes.Buffer
		w, err := gzip.NewWriterLevel(&m, gzip.DefaultCompression)
		if err != nil {
			panic(err)
		}
		w.Extra = []byte{'B', 'C', 2, 0, 0, 0}
		w.Write(data[:n])
		w.Close()
		b := m.Bytes()
		binary.LittleEndian.PutUint16(b[16:], uint16(len(b)-1))
		out = append(out, b...)
		data = data[n:]
	}
	return append(out, bgzfEOF...)
}
