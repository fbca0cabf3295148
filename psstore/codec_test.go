package psstore

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestKeysRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := [][]uint64{
		nil,
		{0},
		{math.MaxUint64},
		{0, 1, 2, 3},
		{127, 128, 16383, 16384, math.MaxUint64 - 1, math.MaxUint64},
	}
	for range 20 {
		space := uint64(1) << uint(rng.IntN(63)+1)
		n := int(min(uint64(rng.IntN(3000)), space))
		set := map[uint64]bool{}
		for len(set) < n {
			set[rng.Uint64N(space)] = true
		}
		ks := make([]uint64, 0, n)
		for k := range set {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		cases = append(cases, ks)
	}
	for _, ks := range cases {
		b := appendKeys(nil, ks)
		got, err := decodeKeys(nil, b, len(ks), math.MaxUint64)
		if len(ks) > 0 && ks[len(ks)-1] == math.MaxUint64 {
			// limit is exclusive: MaxUint64 itself is out of range
			if err == nil {
				t.Fatalf("key MaxUint64 accepted with limit MaxUint64")
			}
			continue
		}
		if err != nil {
			t.Fatalf("decode %d keys: %v", len(ks), err)
		}
		if !slices.Equal(got, ks) && !(len(got) == 0 && len(ks) == 0) {
			t.Fatalf("round trip mismatch for %d keys", len(ks))
		}
	}
}

func TestDecodeKeysRejects(t *testing.T) {
	overflow10 := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}
	sumOverflow := append(binary.AppendUvarint(nil, math.MaxUint64-1), 2)
	cases := []struct {
		name  string
		b     []byte
		n     int
		limit uint64
		want  string
	}{
		{"truncated varint", []byte{0x80}, 1, 100, "truncated"},
		{"truncated later varint", []byte{1, 0x80, 0x80}, 2, 1 << 40, "truncated"},
		{"varint over 64 bits", overflow10, 1, math.MaxUint64, "overflows 64 bits"},
		{"eleven byte varint", append(slices.Repeat([]byte{0x80}, 10), 1), 1, math.MaxUint64, "overflows"},
		{"sum overflows", sumOverflow, 2, math.MaxUint64, "overflows"},
		{"zero delta", []byte{5, 0}, 2, 100, "strictly increasing"},
		{"out of range", []byte{5, 5}, 2, 10, "out of range"},
		{"trailing bytes", []byte{1, 2, 3}, 2, 100, "trailing"},
		{"too few bytes", []byte{1}, 2, 100, "cannot fit"},
		{"negative count", []byte{1}, -1, 100, "negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodeKeys(nil, c.b, c.n, c.limit)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want containing %q", err, c.want)
			}
		})
	}
}

func TestValuesRoundTrip(t *testing.T) {
	vals := []float32{0, -0, 1, -1.5, 3.14159, 1e-30, 65504, float32(math.Inf(1))}
	b := appendValues(nil, vals, false)
	got := make([]float32, len(vals))
	if err := decodeValues(got, b, false, false); err != nil || !slices.Equal(got, vals) {
		t.Fatalf("float32 round trip: %v %v", got, err)
	}
	if err := decodeValues(got, b, false, true); err == nil || !strings.Contains(err.Error(), "finite") {
		t.Fatalf("infinite value accepted as gradient: %v", err)
	}
	if err := decodeValues(got, b[:len(b)-1], false, false); err == nil {
		t.Fatal("short value bytes accepted")
	}
	h := appendValues(nil, vals[:7], true)
	if len(h) != 14 {
		t.Fatalf("float16 encoding is %d bytes for 7 values", len(h))
	}
	if err := decodeValues(got[:7], h, true, true); err != nil {
		t.Fatal(err)
	}
	for i, v := range vals[:6] {
		if math.Abs(float64(got[i]-v)) > max(math.Abs(float64(v))/1024, 6e-8) {
			t.Errorf("float16(%v) = %v", v, got[i])
		}
	}
	if got[6] != 65504 {
		t.Errorf("float16(65504) = %v", got[6])
	}
}

// TestFloat16Exhaustive checks every binary16 value widens and narrows back
// to itself, and that rounding picks the nearest half (ties to even) for
// floats between neighbours.
func TestFloat16Exhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := f16to32(uint16(h))
		back := f32to16(f)
		if math.IsNaN(float64(f)) {
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("%#04x -> %v -> %#04x", h, f, back)
		}
	}
	// Between consecutive positive finite halves a and b, a float just
	// below the midpoint rounds to a, just above to b, and the midpoint to
	// the even one.
	for h := uint16(0); h < 0x7bff; h++ {
		a, b := float64(f16to32(h)), float64(f16to32(h+1))
		mid := (a + b) / 2
		below := float32(math.Nextafter(mid, a))
		above := float32(math.Nextafter(mid, b))
		if float64(below) < mid && f32to16(below) != h {
			t.Fatalf("%v (below midpoint of %#04x,%#04x) -> %#04x", below, h, h+1, f32to16(below))
		}
		if float64(above) > mid && f32to16(above) != h+1 {
			t.Fatalf("%v (above midpoint of %#04x,%#04x) -> %#04x", above, h, h+1, f32to16(above))
		}
		if float64(float32(mid)) == mid {
			want := h
			if h&1 == 1 {
				want = h + 1
			}
			if got := f32to16(float32(mid)); got != want {
				t.Fatalf("midpoint %v of %#04x,%#04x -> %#04x, want %#04x", mid, h, h+1, got, want)
			}
		}
	}
	if f32to16(70000) != 0x7c00 || f32to16(-70000) != 0xfc00 {
		t.Fatal("overflow does not give infinity")
	}
	if f32to16(1e-10) != 0 {
		t.Fatal("underflow does not give zero")
	}
}

// FuzzDecodeKeys feeds arbitrary bytes to the server's key decoder: it must
// never panic, and whatever it accepts must be strictly increasing, below
// the limit, and re-encode to a sequence that decodes the same.
func FuzzDecodeKeys(f *testing.F) {
	f.Add(appendKeys(nil, []uint64{1, 5, 1000, 1 << 20}), uint32(4), uint64(1<<21))
	f.Add([]byte{0x80}, uint32(1), uint64(10))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, uint32(1), uint64(math.MaxUint64))
	f.Add([]byte{5, 0}, uint32(2), uint64(100))
	f.Add([]byte{}, uint32(0), uint64(0))
	f.Add([]byte{1, 2, 3}, uint32(1<<31), uint64(100))
	f.Fuzz(func(t *testing.T, b []byte, n uint32, limit uint64) {
		keys, err := decodeKeys(nil, b, int(n), limit)
		if err != nil {
			return
		}
		if len(keys) != int(n) {
			t.Fatalf("decoded %d keys, asked for %d", len(keys), n)
		}
		for i, k := range keys {
			if k >= limit || (i > 0 && k <= keys[i-1]) {
				t.Fatalf("accepted bad key %d at %d", k, i)
			}
		}
		again, err := decodeKeys(nil, appendKeys(nil, keys), len(keys), limit)
		if err != nil || !slices.Equal(again, keys) {
			t.Fatalf("re-encoding does not round trip: %v", err)
		}
	})
}

// FuzzDecodeValues checks the value decoder never panics and rejects
// non-finite gradients.
func FuzzDecodeValues(f *testing.F) {
	f.Add(appendValues(nil, []float32{1, 2, 3}, false), 3, false)
	f.Add(appendValues(nil, []float32{1, 2, 3}, true), 3, true)
	f.Add([]byte{0, 0, 0x80, 0x7f}, 1, false)
	f.Add([]byte{1, 2, 3}, 1, false)
	f.Fuzz(func(t *testing.T, b []byte, n int, f16 bool) {
		if n < 0 || n > 1<<16 {
			return
		}
		dst := make([]float32, n)
		if err := decodeValues(dst, b, f16, true); err != nil {
			return
		}
		for _, v := range dst {
			if !finite32(v) {
				t.Fatalf("accepted non-finite %v", v)
			}
		}
	})
}

// BenchmarkKeyCodec: encoding and decoding 2,000 sorted keys out of 2^20.
func BenchmarkKeyCodec(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	keys := make([]uint64, 2000)
	for i := range keys {
		keys[i] = rng.Uint64N(1 << 20)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	buf := appendKeys(nil, keys)
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			buf = appendKeys(buf[:0], keys)
		}
	})
	dst := make([]uint64, len(keys))
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			dst, _ = decodeKeys(dst, buf, len(keys), 1<<20)
		}
	})
}
