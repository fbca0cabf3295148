package psstore

import (
	"encoding/binary"
	"fmt"
	"math"
)

// The sparse wire encoding. Keys are strictly increasing uint64s written as
// unsigned LEB128 varints: the first key as is, every later key as the
// difference to its predecessor. Values are little-endian float32 or IEEE
// binary16, one per key.

// codecError describes malformed sparse input; servers answer it with
// codes.InvalidArgument.
type codecError struct {
	msg string
	// outOfRange is set when a well-formed key is >= the limit; key is it.
	outOfRange bool
	key        uint64
}

func (e *codecError) Error() string { return e.msg }

func codecErrorf(format string, args ...any) error {
	return &codecError{msg: fmt.Sprintf(format, args...)}
}

// appendKeys appends the delta-varint encoding of keys, which must be
// strictly increasing, to dst. Cost: one pass, at most 10 bytes per key
// (about 2 bytes for 2,000 keys out of 2^20).
func appendKeys(dst []byte, keys []uint64) []byte {
	off := len(dst)
	if need := off + 10*len(keys); cap(dst) < need {
		nb := make([]byte, off, need)
		copy(nb, dst)
		dst = nb
	}
	buf := dst[off : off+10*len(keys)]
	p := 0
	var prev uint64
	for _, k := range keys {
		d := k - prev
		prev = k
		if d < 1<<7 {
			buf[p] = byte(d)
			p++
			continue
		}
		if d < 1<<14 {
			buf[p] = byte(d) | 0x80
			buf[p+1] = byte(d >> 7)
			p += 2
			continue
		}
		for d >= 0x80 {
			buf[p] = byte(d) | 0x80
			d >>= 7
			p++
		}
		buf[p] = byte(d)
		p++
	}
	return dst[:off+p]
}

// decodeKeys decodes exactly n delta-varint keys from b into dst[:0] and
// returns it. It fails, never panics, on a truncated or overlong varint, a
// key that overflows 64 bits, a zero delta (keys must be strictly
// increasing), a key >= limit, or trailing bytes.
func decodeKeys(dst []uint64, b []byte, n int, limit uint64) ([]uint64, error) {
	if n < 0 {
		return dst[:0], codecErrorf("negative key count %d", n)
	}
	if len(b) < n {
		return dst[:0], codecErrorf("%d keys cannot fit in %d bytes", n, len(b))
	}
	if cap(dst) < n {
		dst = make([]uint64, n)
	}
	dst = dst[:n]
	var prev uint64
	p := 0
	for i := 0; i < n; i++ {
		var d uint64
		// Fast paths for 1- and 2-byte varints, the common case for sorted
		// feature indices.
		if p+1 < len(b) {
			c0, c1 := b[p], b[p+1]
			if c0 < 0x80 {
				d = uint64(c0)
				p++
				goto got
			}
			if c1 < 0x80 {
				d = uint64(c0&0x7f) | uint64(c1)<<7
				p += 2
				goto got
			}
		}
		{
			var s uint
			j := 0
			for {
				if p >= len(b) {
					return dst[:0], codecErrorf("key %d: truncated varint at byte %d", i, p)
				}
				c := b[p]
				p++
				if j == 9 && c > 1 {
					return dst[:0], codecErrorf("key %d: varint overflows 64 bits at byte %d", i, p-1)
				}
				d |= uint64(c&0x7f) << s
				if c < 0x80 {
					break
				}
				s += 7
				j++
			}
		}
	got:
		if i > 0 && d == 0 {
			return dst[:0], codecErrorf("key %d: repeats key %d (keys must be strictly increasing)", i, prev)
		}
		k := prev + d
		if k < prev {
			return dst[:0], codecErrorf("key %d: overflows 64 bits", i)
		}
		if k >= limit {
			return dst[:0], &codecError{
				msg:        fmt.Sprintf("key %d: index %d is out of range [0, %d)", i, k, limit),
				outOfRange: true,
				key:        k,
			}
		}
		dst[i] = k
		prev = k
	}
	if p != len(b) {
		return dst[:0], codecErrorf("%d trailing bytes after %d keys", len(b)-p, n)
	}
	return dst, nil
}

// valueWidth is the encoded size of one value: 4 for float32, 2 for float16.
func valueWidth(f16 bool) int {
	if f16 {
		return 2
	}
	return 4
}

// appendValues appends vals as little-endian float32, or as binary16 when
// f16 (finite values saturate at ±65504).
func appendValues(dst []byte, vals []float32, f16 bool) []byte {
	w := valueWidth(f16)
	off := len(dst)
	need := off + w*len(vals)
	if cap(dst) < need {
		nb := make([]byte, off, need)
		copy(nb, dst)
		dst = nb
	}
	dst = dst[:need]
	out := dst[off:]
	if f16 {
		for i, v := range vals {
			binary.LittleEndian.PutUint16(out[2*i:], f32to16(clampHalf(v)))
		}
		return dst
	}
	for i, v := range vals {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return dst
}

// clampHalf saturates finite values to the binary16 range (±65504), so a
// large finite gradient or weight stays finite on a 16-bit wire.
func clampHalf(v float32) float32 {
	switch {
	case v > 65504:
		return 65504
	case v < -65504:
		return -65504
	}
	return v
}

// decodeValues decodes len(dst) values from b, which must hold exactly that
// many. With finite set, a NaN or infinite value is an error (a gradient
// like that would poison the model).
func decodeValues(dst []float32, b []byte, f16, finite bool) error {
	w := valueWidth(f16)
	if len(b) != w*len(dst) {
		return codecErrorf("%d value bytes for %d keys: want %d (%d bytes per value)", len(b), len(dst), w*len(dst), w)
	}
	if f16 {
		for i := range dst {
			dst[i] = f16to32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	} else {
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	}
	if finite {
		for i, v := range dst {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return codecErrorf("value %d is %v: gradients must be finite", i, v)
			}
		}
	}
	return nil
}

// floatsToBytes encodes vals as little-endian float32 (the KV representation
// of float vectors used by MergeFloats and GetFloats).
func floatsToBytes(vals []float32) []byte {
	return appendValues(make([]byte, 0, 4*len(vals)), vals, false)
}

// bytesToFloats decodes a little-endian float32 vector.
func bytesToFloats(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("value of %d bytes is not a float32 vector (length must be a multiple of 4)", len(b))
	}
	out := make([]float32, len(b)/4)
	return out, decodeValues(out, b, false, false)
}
