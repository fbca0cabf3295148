package partition

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset"
)

// Part describes one written partition.
type Part struct {
	Seq      int    `json:"seq"`      // 0, 1, 2, ... in writing order
	Key      string `json:"key"`      // as returned by the flush function
	Rows     int    `json:"rows"`     //
	NNZ      int    `json:"nnz"`      // stored entries
	Bytes    int    `json:"bytes"`    // encoded size
	Features int    `json:"features"` // 1 + the largest slot
	CRC32C   uint32 `json:"crc32c"`   // the checksum in its header
}

// FlushFunc stores one encoded partition and returns its key (or any name
// to record in Part.Key). data is only valid during the call.
type FlushFunc func(seq int, data []byte) (key string, err error)

// Writer accumulates rows and cuts them into partitions of about a target
// size. Memory use is about one partition (twice while encoding).
type Writer struct {
	flush   FlushFunc
	target  int
	labels  []float32
	offsets []uint32
	indices []uint32
	values  []float32
	maxIdx  uint32
	allOnes bool
	buf     []byte
	parts   []Part
	closed  bool
}

// initialEntries is the entries a Writer's buffers hold before they first grow.
const initialEntries = 64 << 10

// NewWriter returns a Writer that hands each partition to flush. A
// partition is cut before the row that would take it past target bytes
// (target <= 0 means DefaultTarget), so partitions stay within target unless
// a single row is larger.
func NewWriter(flush FlushFunc, target int) *Writer {
	if target <= 0 {
		target = DefaultTarget
	}
	w := &Writer{flush: flush, target: target}
	// Buffers start at a full partition's size (about 8 bytes per entry,
	// index and value, and a guess of 16 entries per row) or initialEntries,
	// whichever is less, and grow with the data: the first partition pays a
	// few reallocations, the next reuse them, and a small input — most of the
	// writers of a small apply — never holds a full partition's 8 MiB.
	nnz := min(target/8, initialEntries)
	w.indices = make([]uint32, 0, nnz)
	w.values = make([]float32, 0, nnz)
	w.labels = make([]float32, 0, nnz/16)
	w.offsets = make([]uint32, 0, nnz/16+1)
	w.reset()
	return w
}

// KeyFor returns the key NewStoreWriter uses for partition seq.
func KeyFor(prefix string, seq int) string {
	return fmt.Sprintf("%spart-%05d", prefix, seq)
}

// NewStoreWriter returns a Writer that puts partition seq at
// KeyFor(prefix, seq) in st (prefix is used as is: end it with "/" for a
// directory).
func NewStoreWriter(ctx context.Context, st blob.Store, prefix string, target int) *Writer {
	return NewWriter(func(seq int, data []byte) (string, error) {
		key := KeyFor(prefix, seq)
		if err := st.Put(ctx, key, bytes.NewReader(data)); err != nil {
			return "", fmt.Errorf("writing partition: %w", err)
		}
		return key, nil
	}, target)
}

func (w *Writer) reset() {
	w.labels = w.labels[:0]
	w.offsets = append(w.offsets[:0], 0)
	w.indices = w.indices[:0]
	w.values = w.values[:0]
	w.maxIdx = 0
	w.allOnes = true
}

// Add appends a row (copying it). Its indices must be strictly increasing
// and as many as its values, as the dataset parsers produce.
func (w *Writer) Add(r *dataset.Row) error {
	if w.closed {
		return fmt.Errorf("partition: Add after Close")
	}
	if len(r.Indices) != len(r.Values) {
		return fmt.Errorf("partition: row has %d indices but %d values", len(r.Indices), len(r.Values))
	}
	for k := 1; k < len(r.Indices); k++ {
		if r.Indices[k] <= r.Indices[k-1] {
			return fmt.Errorf("partition: row indices are not strictly increasing (%d then %d)", r.Indices[k-1], r.Indices[k])
		}
	}
	n := len(r.Indices)
	if n > math.MaxUint32 {
		return fmt.Errorf("partition: row has %d entries, more than a partition holds", n)
	}
	rowMax := uint32(0)
	if n > 0 {
		rowMax = r.Indices[n-1]
	}
	rowOnes := true
	for _, v := range r.Values {
		if v != 1 {
			rowOnes = false
			break
		}
	}
	if len(w.labels) > 0 {
		width := 2
		if max(w.maxIdx, rowMax) >= 1<<16 {
			width = 4
		}
		size := encodedSize(len(w.labels)+1, len(w.indices)+n, width, w.allOnes && rowOnes)
		if size > w.target || len(w.indices)+n > math.MaxUint32 {
			if err := w.cut(); err != nil {
				return err
			}
		}
	}
	if len(w.indices)+n > cap(w.indices) || len(w.labels) == cap(w.labels) {
		w.grow(n)
	}
	w.labels = append(w.labels, r.Label)
	w.indices = append(w.indices, r.Indices...)
	w.values = append(w.values, r.Values...)
	w.offsets = append(w.offsets, uint32(len(w.indices)))
	w.maxIdx = max(w.maxIdx, rowMax)
	w.allOnes = w.allOnes && rowOnes
	return nil
}

// grow doubles the buffers that cannot take one more row of n entries (at
// least to fit it): a few reallocations up to a full partition, rather than
// append's many when slices are large.
func (w *Writer) grow(n int) {
	if need := len(w.indices) + n; need > cap(w.indices) {
		c := max(2*cap(w.indices), need)
		w.indices = append(make([]uint32, 0, c), w.indices...)
		w.values = append(make([]float32, 0, c), w.values...)
	}
	if len(w.labels) == cap(w.labels) {
		c := max(2*cap(w.labels), 16)
		w.labels = append(make([]float32, 0, c), w.labels...)
		w.offsets = append(make([]uint32, 0, c+1), w.offsets...)
	}
}

// cut encodes and flushes the current partition.
func (w *Writer) cut() error {
	nnz := len(w.indices)
	width := 4
	if nnz == 0 || w.maxIdx < 1<<16 {
		width = 2
	}
	features := 0
	if nnz > 0 {
		features = int(w.maxIdx) + 1
	}
	if need := encodedSize(len(w.labels), nnz, width, w.allOnes); cap(w.buf) < need {
		w.buf = make([]byte, 0, need)
	}
	w.buf = encode(w.buf, w.labels, w.offsets, w.indices, w.values, width, w.allOnes, features)
	seq := len(w.parts)
	key, err := w.flush(seq, w.buf)
	if err != nil {
		return fmt.Errorf("partition %d: %w", seq, err)
	}
	w.parts = append(w.parts, Part{Seq: seq, Key: key, Rows: len(w.labels), NNZ: nnz, Bytes: len(w.buf), Features: features,
		CRC32C: binary.LittleEndian.Uint32(w.buf[crcOffset:])})
	w.reset()
	return nil
}

// Close flushes the last partition (if it holds any rows) and returns every
// partition written. A Writer that received no rows writes nothing.
func (w *Writer) Close() ([]Part, error) {
	if w.closed {
		return w.parts, nil
	}
	w.closed = true
	if len(w.labels) > 0 {
		if err := w.cut(); err != nil {
			return w.parts, err
		}
	}
	return w.parts, nil
}

// Encode encodes rows into one partition (for tests and small outputs).
func Encode(rows []dataset.Row) ([]byte, error) {
	var out []byte
	w := NewWriter(func(_ int, data []byte) (string, error) {
		out = append([]byte(nil), data...)
		return "", nil
	}, math.MaxInt)
	for i := range rows {
		if err := w.Add(&rows[i]); err != nil {
			return nil, err
		}
	}
	if _, err := w.Close(); err != nil {
		return nil, err
	}
	if out == nil { // no rows: an empty partition
		out = encode(nil, nil, []uint32{0}, nil, nil, 2, true, 0)
	}
	return out, nil
}

// encode writes a partition into buf (reusing its capacity).
func encode(buf []byte, labels []float32, offsets, indices []uint32, values []float32, width int, allOnes bool, features int) []byte {
	rows, nnz := len(labels), len(indices)
	size := encodedSize(rows, nnz, width, allOnes)
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	le := binary.LittleEndian
	copy(buf[0:4], magic)
	le.PutUint16(buf[4:], version)
	flags := uint16(0)
	if allOnes {
		flags |= flagAllOnes
	}
	le.PutUint16(buf[6:], flags)
	buf[8] = byte(width)
	buf[9], buf[10], buf[11] = 0, 0, 0
	le.PutUint64(buf[16:], uint64(rows))
	le.PutUint64(buf[24:], uint64(nnz))
	le.PutUint32(buf[32:], uint32(features))
	le.PutUint32(buf[36:], 0)
	o := headerSize
	o += put32(buf[o:], f32bits(labels))
	o += put32(buf[o:], offsets)
	if width == 2 {
		for k, ix := range indices {
			le.PutUint16(buf[o+2*k:], uint16(ix))
		}
		end := o + pad4(2*nnz)
		clear(buf[o+2*nnz : end])
		o = end
	} else {
		o += put32(buf[o:], indices)
	}
	if !allOnes {
		o += put32(buf[o:], f32bits(values))
	}
	le.PutUint32(buf[12:], checksum(buf))
	return buf
}

func f32bits(f []float32) []uint32 {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(&f[0])), len(f))
}

// put32 writes xs little-endian into dst and returns the bytes written.
func put32(dst []byte, xs []uint32) int {
	n := 4 * len(xs)
	if n == 0 {
		return 0
	}
	if littleEndian {
		copy(dst[:n], unsafe.Slice((*byte)(unsafe.Pointer(&xs[0])), n))
		return n
	}
	for k, x := range xs {
		binary.LittleEndian.PutUint32(dst[4*k:], x)
	}
	return n
}
