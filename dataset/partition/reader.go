package partition

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"math"
	"unsafe"

	"github.com/stratus-ml/stratus/blob"
)

// Partition is a decoded partition. Its slices are views into the buffer
// given to Decode (on little-endian machines, for aligned buffers), so the
// buffer must not be modified while the Partition is in use. Safe for
// concurrent reads.
type Partition struct {
	labels   []float32
	offsets  []uint32
	indices  []uint32
	values   []float32 // nil when every value is 1
	features int
	width    int
	size     int
}

// Decode validates data — header, size, CRC-32C, then structure (offsets
// increasing and within nnz, indices strictly increasing in each row and
// below the feature count) — and returns the partition. Errors wrap
// ErrCorrupt.
//
// Cost: one CRC pass and one validation pass over the data; no copy when the
// machine is little-endian, data is 4-byte aligned and indices are 4 bytes
// wide. 2-byte indices are widened into one new []uint32 (4×nnz bytes);
// big-endian machines or unaligned buffers decode into new slices.
func Decode(data []byte) (*Partition, error) {
	if len(data) < headerSize {
		return nil, corrupt("truncated: %d bytes is shorter than the %d-byte header", len(data), headerSize)
	}
	if string(data[:4]) != magic {
		return nil, corrupt("not a Stratus partition (bad magic %q)", data[:4])
	}
	le := binary.LittleEndian
	if v := le.Uint16(data[4:]); v != version {
		return nil, corrupt("format version %d is not supported (this build reads version %d): use a matching Stratus release or rerun the load", v, version)
	}
	flags := le.Uint16(data[6:])
	if flags&^knownFlags != 0 {
		return nil, corrupt("unknown flags %#x", flags)
	}
	width := int(data[8])
	if width != 2 && width != 4 {
		return nil, corrupt("index width %d (want 2 or 4)", width)
	}
	if data[9]|data[10]|data[11] != 0 || le.Uint32(data[36:]) != 0 {
		return nil, corrupt("reserved header bytes are not zero")
	}
	rows64, nnz64 := le.Uint64(data[16:]), le.Uint64(data[24:])
	if rows64 > math.MaxInt32 || nnz64 > math.MaxUint32 {
		return nil, corrupt("header claims %d rows and %d entries", rows64, nnz64)
	}
	rows, nnz := int(rows64), int(nnz64)
	allOnes := flags&flagAllOnes != 0
	if want := encodedSize(rows, nnz, width, allOnes); len(data) != want {
		if len(data) < want {
			return nil, corrupt("truncated: %d bytes, the header describes %d", len(data), want)
		}
		return nil, corrupt("%d bytes, the header describes %d", len(data), want)
	}
	if got, want := checksum(data), le.Uint32(data[12:]); got != want {
		return nil, corrupt("checksum mismatch (CRC-32C %08x, header says %08x): the object is damaged; rerun the stage that wrote it", got, want)
	}
	features := int(le.Uint32(data[32:]))

	p := &Partition{features: features, width: width, size: len(data)}
	o := headerSize
	p.labels = f32s(data[o : o+4*rows])
	o += 4 * rows
	p.offsets = u32s(data[o : o+4*(rows+1)])
	o += 4 * (rows + 1)
	if width == 4 {
		p.indices = u32s(data[o : o+4*nnz])
	} else {
		p.indices = make([]uint32, nnz)
		for k := range p.indices {
			p.indices[k] = uint32(le.Uint16(data[o+2*k:]))
		}
	}
	o += pad4(width * nnz)
	if !allOnes {
		p.values = f32s(data[o : o+4*nnz])
	}
	if err := p.validate(nnz); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Partition) validate(nnz int) error {
	if p.offsets[0] != 0 || int(p.offsets[len(p.offsets)-1]) != nnz {
		return corrupt("row offsets run from %d to %d, want 0 to %d", p.offsets[0], p.offsets[len(p.offsets)-1], nnz)
	}
	maxIdx := -1
	for i := 0; i < len(p.labels); i++ {
		lo, hi := p.offsets[i], p.offsets[i+1]
		if hi < lo || int(hi) > nnz {
			return corrupt("row %d has offsets %d..%d", i, lo, hi)
		}
		for k := lo; k < hi; k++ {
			if k > lo && p.indices[k] <= p.indices[k-1] {
				return corrupt("row %d: indices not strictly increasing", i)
			}
		}
		if hi > lo {
			maxIdx = max(maxIdx, int(p.indices[hi-1]))
		}
	}
	if maxIdx+1 != p.features {
		return corrupt("header says %d features, the largest index is %d", p.features, maxIdx)
	}
	return nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

func aligned(b []byte) bool {
	return len(b) == 0 || uintptr(unsafe.Pointer(&b[0]))%4 == 0
}

// u32s views (or decodes) b as little-endian uint32s.
func u32s(b []byte) []uint32 {
	n := len(b) / 4
	if n == 0 {
		return []uint32{}
	}
	if littleEndian && aligned(b) {
		return unsafe.Slice((*uint32)(unsafe.Pointer(&b[0])), n)
	}
	out := make([]uint32, n)
	for k := range out {
		out[k] = binary.LittleEndian.Uint32(b[4*k:])
	}
	return out
}

// f32s views (or decodes) b as little-endian float32s.
func f32s(b []byte) []float32 {
	u := u32s(b)
	if len(u) == 0 {
		return []float32{}
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&u[0])), len(u))
}

// Read gets the object at key and decodes it; errors name the object's URI.
func Read(ctx context.Context, st blob.Store, key string) (*Partition, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := readAll(rc)
	if err != nil {
		return nil, fmt.Errorf("reading partition %s: %w", st.URI(key), err)
	}
	p, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("partition %s: %w", st.URI(key), err)
	}
	return p, nil
}

// readAll reads r to its end into one allocation of the object's size when r
// can tell it (a file of the file store), as io.ReadAll cannot: its doubling
// allocates about twice a partition, half of it garbage at once.
func readAll(r io.Reader) ([]byte, error) {
	if f, ok := r.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if fi, err := f.Stat(); err == nil && fi.Size() > 0 && fi.Size() < 1<<31 {
			b := make([]byte, fi.Size())
			if _, err := io.ReadFull(r, b); err != nil {
				return nil, err
			}
			rest, err := io.ReadAll(r) // nothing, unless the object grew
			return append(b, rest...), err
		}
	}
	return io.ReadAll(r)
}

// Rows returns the number of rows.
func (p *Partition) Rows() int { return len(p.labels) }

// NNZ returns the number of stored entries.
func (p *Partition) NNZ() int { return len(p.indices) }

// Features returns 1 + the largest slot (0 if there are no entries).
func (p *Partition) Features() int { return p.features }

// IndexWidth returns the stored index width in bytes (2 or 4).
func (p *Partition) IndexWidth() int { return p.width }

// AllOnes reports whether every value is 1 (values are then not stored and
// Values slices are nil).
func (p *Partition) AllOnes() bool { return p.values == nil }

// Size returns the encoded size in bytes.
func (p *Partition) Size() int { return p.size }

// Labels returns all labels (a view).
func (p *Partition) Labels() []float32 { return p.labels }

// Row returns row i's label, indices and values (views; values is nil when
// every value is 1).
func (p *Partition) Row(i int) (label float32, indices []uint32, values []float32) {
	lo, hi := p.offsets[i], p.offsets[i+1]
	if p.values != nil {
		values = p.values[lo:hi:hi]
	}
	return p.labels[i], p.indices[lo:hi:hi], values
}

// Batch is rows [lo, hi) of a partition, as views into it: nothing is
// copied. Offsets are the partition's, so row i of the batch is entries
// [Offsets[i]-Offsets[0], Offsets[i+1]-Offsets[0]) of Indices and Values;
// Row does that arithmetic.
type Batch struct {
	Labels  []float32 // hi-lo labels
	Offsets []uint32  // hi-lo+1 offsets into the partition
	Indices []uint32  // the batch's entries
	Values  []float32 // the batch's values, or nil when every value is 1
}

// Batch returns rows [lo, hi). It panics if the range is out of bounds, like
// slicing.
func (p *Partition) Batch(lo, hi int) Batch {
	a, b := p.offsets[lo], p.offsets[hi]
	bt := Batch{
		Labels:  p.labels[lo:hi:hi],
		Offsets: p.offsets[lo : hi+1 : hi+1],
		Indices: p.indices[a:b:b],
	}
	if p.values != nil {
		bt.Values = p.values[a:b:b]
	}
	return bt
}

// Len returns the number of rows in the batch.
func (b Batch) Len() int { return len(b.Labels) }

// NNZ returns the number of entries in the batch.
func (b Batch) NNZ() int { return len(b.Indices) }

// Row returns row i of the batch (views; values is nil when every value
// is 1).
func (b Batch) Row(i int) (indices []uint32, values []float32) {
	base := b.Offsets[0]
	lo, hi := b.Offsets[i]-base, b.Offsets[i+1]-base
	if b.Values != nil {
		values = b.Values[lo:hi:hi]
	}
	return b.Indices[lo:hi:hi], values
}
