package manifest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/stratus-ml/stratus/blob"
)

// The statistics and normalization parameters are binary objects: a JSON
// list of a million hashed slots would be tens of megabytes. Both share one
// framing (little-endian):
//
//	offset size
//	0      4    magic: "STRS" (statistics) or "STRA" (affine parameters)
//	4      2    version (1)
//	6      2    flags (0)
//	8      4    CRC-32C (Castagnoli) of every byte of the object except these 4
//	12     4    reserved (0)
//	16     8    rows (statistics: the rows they are over; affine: 0)
//	24     8    records
//	32          records, in increasing slot order
//
// A record starts with uvarint(slot − previous slot − 1) (the first record:
// uvarint(slot)). Then:
//
//   - statistics: uvarint(count<<1 | c). When c = 1 every entry of the slot
//     holds the same value v and the record ends with v as float32; min =
//     max = v, sum = count·v and sumsq = (count·v)·v in float64 (the encoder
//     uses this form only when those products equal the accumulated sums
//     bit for bit, as they do for one-hot features). When c = 0 the record
//     ends with min, max (float32) and sum, sumsq (float64).
//   - affine parameters: scale and offset, float64 each.
const (
	statsMagic  = "STRS"
	affineMagic = "STRA"
	codecVer    = 1
	codecHeader = 32
)

// ErrCorrupt is wrapped by errors about a malformed, truncated or corrupted
// statistics or parameters object, or a manifest whose digest does not match.
var ErrCorrupt = errors.New("corrupt dataset metadata")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func frame(magic string, rows, records uint64, body []byte) []byte {
	out := make([]byte, codecHeader, codecHeader+len(body))
	copy(out, magic)
	le := binary.LittleEndian
	le.PutUint16(out[4:], codecVer)
	le.PutUint64(out[16:], rows)
	le.PutUint64(out[24:], records)
	out = append(out, body...)
	le.PutUint32(out[8:], crcOf(out))
	return out
}

func crcOf(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b[:8])
	return crc32.Update(c, castagnoli, b[12:])
}

// unframe checks the header and CRC and returns rows, records and the body.
func unframe(magic string, b []byte) (rows, records uint64, body []byte, err error) {
	if len(b) < codecHeader {
		return 0, 0, nil, fmt.Errorf("%w: truncated: %d bytes is shorter than the %d-byte header", ErrCorrupt, len(b), codecHeader)
	}
	if string(b[:4]) != magic {
		return 0, 0, nil, fmt.Errorf("%w: bad magic %q (want %q)", ErrCorrupt, b[:4], magic)
	}
	le := binary.LittleEndian
	if v := le.Uint16(b[4:]); v != codecVer {
		return 0, 0, nil, fmt.Errorf("%w: format version %d is not supported (this build reads version %d): rerun the stage that wrote it", ErrCorrupt, v, codecVer)
	}
	if got, want := crcOf(b), le.Uint32(b[8:]); got != want {
		return 0, 0, nil, fmt.Errorf("%w: checksum mismatch (CRC-32C %08x, header says %08x): the object is damaged; rerun the stage that wrote it", ErrCorrupt, got, want)
	}
	return le.Uint64(b[16:]), le.Uint64(b[24:]), b[codecHeader:], nil
}

// constSums returns the sum and sum of squares of count entries of value v,
// as the compact statistics record defines them.
func constSums(count int64, v float32) (sum, sumsq float64) {
	c, d := float64(count), float64(v)
	return c * d, (c * d) * d
}

// MarshalBinary encodes the statistics (see the format above). Cost: about
// 7 bytes per one-hot slot, 26 per other slot.
func (s *Stats) MarshalBinary() ([]byte, error) {
	var body []byte
	var records uint64
	prev := int64(-1)
	var tmp [8]byte
	le := binary.LittleEndian
	s.Each(func(i uint32, f Feature) {
		body = binary.AppendUvarint(body, uint64(int64(i)-prev-1))
		prev = int64(i)
		records++
		if f.Min == f.Max {
			if sum, sumsq := constSums(f.Count, f.Min); sum == f.Sum && sumsq == f.SumSq {
				body = binary.AppendUvarint(body, uint64(f.Count)<<1|1)
				le.PutUint32(tmp[:], math.Float32bits(f.Min))
				body = append(body, tmp[:4]...)
				return
			}
		}
		body = binary.AppendUvarint(body, uint64(f.Count)<<1)
		le.PutUint32(tmp[:], math.Float32bits(f.Min))
		body = append(body, tmp[:4]...)
		le.PutUint32(tmp[:], math.Float32bits(f.Max))
		body = append(body, tmp[:4]...)
		le.PutUint64(tmp[:], math.Float64bits(f.Sum))
		body = append(body, tmp[:]...)
		le.PutUint64(tmp[:], math.Float64bits(f.SumSq))
		body = append(body, tmp[:]...)
	})
	return frame(statsMagic, uint64(s.Rows), records, body), nil
}

// DecodeStats decodes statistics encoded by MarshalBinary. Errors wrap
// ErrCorrupt.
func DecodeStats(b []byte) (*Stats, error) {
	rows, records, body, err := unframe(statsMagic, b)
	if err != nil {
		return nil, err
	}
	if rows > math.MaxInt64 {
		return nil, fmt.Errorf("%w: %d rows", ErrCorrupt, rows)
	}
	s := &Stats{Rows: int64(rows)}
	r := reader{b: body}
	prev := int64(-1)
	for n := uint64(0); n < records; n++ {
		slot := prev + 1 + int64(r.uvarint())
		cc := r.uvarint()
		if r.err != nil {
			break
		}
		if slot > math.MaxUint32 || cc>>1 == 0 || cc>>1 > rows {
			return nil, fmt.Errorf("%w: statistics record %d: slot %d, count %d of %d rows", ErrCorrupt, n, slot, cc>>1, rows)
		}
		prev = slot
		f := Feature{Count: int64(cc >> 1)}
		if cc&1 == 1 {
			f.Min = r.f32()
			f.Max = f.Min
			f.Sum, f.SumSq = constSums(f.Count, f.Min)
		} else {
			f.Min, f.Max = r.f32(), r.f32()
			f.Sum, f.SumSq = r.f64(), r.f64()
		}
		if r.err != nil {
			break
		}
		s.set(uint32(slot), f)
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: statistics: %v", ErrCorrupt, r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: statistics: %d bytes after the last record", ErrCorrupt, len(r.b))
	}
	return s, nil
}

// reader decodes records, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("truncated or overlong varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = io.ErrUnexpectedEOF
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) f32() float32 {
	if b := r.take(4); b != nil {
		return math.Float32frombits(binary.LittleEndian.Uint32(b))
	}
	return 0
}

func (r *reader) f64() float64 {
	if b := r.take(8); b != nil {
		return math.Float64frombits(binary.LittleEndian.Uint64(b))
	}
	return 0
}

// putObject stores data at key.
func putObject(ctx context.Context, st blob.Store, key string, data []byte) error {
	if err := st.Put(ctx, key, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("write %s: %w", st.URI(key), err)
	}
	return nil
}

// getObject reads the object at key.
func getObject(ctx context.Context, st blob.Store, key string) ([]byte, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", st.URI(key), err)
	}
	return data, nil
}

// WriteStats encodes s and stores it at key.
func WriteStats(ctx context.Context, st blob.Store, key string, s *Stats) error {
	data, err := s.MarshalBinary()
	if err != nil {
		return err
	}
	return putObject(ctx, st, key, data)
}

// ReadStats reads and decodes the statistics at key; errors name the object.
func ReadStats(ctx context.Context, st blob.Store, key string) (*Stats, error) {
	data, err := getObject(ctx, st, key)
	if err != nil {
		return nil, err
	}
	s, err := DecodeStats(data)
	if err != nil {
		return nil, fmt.Errorf("statistics %s: %w", st.URI(key), err)
	}
	return s, nil
}
