package manifest

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sort"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset"
)

// Affine is a per-feature affine transformation, the parameters of a
// normalization: slot Features[k] maps x to Scale[k]·x + Offset[k]; every
// slot not listed is left unchanged. Features is strictly increasing.
//
// The transformation applies to every row's value of the slot, including
// the implicit zero of a row that stores no entry for it: a listed slot with
// Offset ≠ 0 therefore gets an entry (with value Offset) in every row that
// lacked one. Transformer does exactly that, and so must anything that
// applies the parameters to new data (model export, predict).
type Affine struct {
	Features []uint32
	Scale    []float64
	Offset   []float64
}

// Len returns the number of listed slots.
func (a *Affine) Len() int { return len(a.Features) }

// Add appends slot i's parameters; slots must be added in increasing order.
func (a *Affine) Add(i uint32, scale, offset float64) {
	a.Features = append(a.Features, i)
	a.Scale = append(a.Scale, scale)
	a.Offset = append(a.Offset, offset)
}

// Lookup returns slot i's parameters (1, 0 when it is not listed).
func (a *Affine) Lookup(i uint32) (scale, offset float64) {
	k := sort.Search(len(a.Features), func(k int) bool { return a.Features[k] >= i })
	if k < len(a.Features) && a.Features[k] == i {
		return a.Scale[k], a.Offset[k]
	}
	return 1, 0
}

// Densified returns the slots whose implicit zero maps to a non-zero value
// (Offset ≠ 0): the transformation stores an entry for them in every row.
func (a *Affine) Densified() []uint32 {
	var out []uint32
	for k, off := range a.Offset {
		if off != 0 {
			out = append(out, a.Features[k])
		}
	}
	return out
}

// Then returns the transformation that applies a, then b: slot by slot,
// x ↦ b.Scale·(a.Scale·x + a.Offset) + b.Offset. Normalizing a normalized
// dataset records the composition, so the parameters always map raw
// features to the final ones.
func (a *Affine) Then(b *Affine) *Affine {
	out := &Affine{}
	i, j := 0, 0
	for i < len(a.Features) || j < len(b.Features) {
		switch {
		case j == len(b.Features) || i < len(a.Features) && a.Features[i] < b.Features[j]:
			out.Add(a.Features[i], a.Scale[i], a.Offset[i])
			i++
		case i == len(a.Features) || b.Features[j] < a.Features[i]:
			out.Add(b.Features[j], b.Scale[j], b.Offset[j])
			j++
		default:
			out.Add(a.Features[i], b.Scale[j]*a.Scale[i], b.Scale[j]*a.Offset[i]+b.Offset[j])
			i++
			j++
		}
	}
	return out
}

// MarshalBinary encodes the parameters ("STRA" framing, see codec.go): 17
// bytes or so per listed slot.
func (a *Affine) MarshalBinary() ([]byte, error) {
	body := make([]byte, 0, 18*len(a.Features))
	prev := int64(-1)
	var tmp [8]byte
	le := binary.LittleEndian
	for k, i := range a.Features {
		if int64(i) <= prev {
			return nil, fmt.Errorf("affine parameters: slots not increasing (%d after %d)", i, prev)
		}
		body = binary.AppendUvarint(body, uint64(int64(i)-prev-1))
		prev = int64(i)
		le.PutUint64(tmp[:], math.Float64bits(a.Scale[k]))
		body = append(body, tmp[:]...)
		le.PutUint64(tmp[:], math.Float64bits(a.Offset[k]))
		body = append(body, tmp[:]...)
	}
	return frame(affineMagic, 0, uint64(len(a.Features)), body), nil
}

// DecodeAffine decodes parameters encoded by MarshalBinary. Errors wrap
// ErrCorrupt.
func DecodeAffine(b []byte) (*Affine, error) {
	_, records, body, err := unframe(affineMagic, b)
	if err != nil {
		return nil, err
	}
	if records > uint64(len(body)) {
		return nil, fmt.Errorf("%w: affine parameters: %d records in %d bytes", ErrCorrupt, records, len(body))
	}
	a := &Affine{}
	r := reader{b: body}
	prev := int64(-1)
	for n := uint64(0); n < records && r.err == nil; n++ {
		slot := prev + 1 + int64(r.uvarint())
		scale, offset := r.f64(), r.f64()
		if r.err != nil {
			break
		}
		if slot > math.MaxUint32 || math.IsNaN(scale) || math.IsInf(scale, 0) || math.IsNaN(offset) || math.IsInf(offset, 0) {
			return nil, fmt.Errorf("%w: affine record %d: slot %d, scale %g, offset %g", ErrCorrupt, n, slot, scale, offset)
		}
		prev = slot
		a.Add(uint32(slot), scale, offset)
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: affine parameters: %v", ErrCorrupt, r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: affine parameters: %d bytes after the last record", ErrCorrupt, len(r.b))
	}
	return a, nil
}

// ReadAffine reads and decodes the parameters at key; errors name the object.
func ReadAffine(ctx context.Context, st blob.Store, key string) (*Affine, error) {
	data, err := getObject(ctx, st, key)
	if err != nil {
		return nil, err
	}
	a, err := DecodeAffine(data)
	if err != nil {
		return nil, fmt.Errorf("normalization parameters %s: %w", st.URI(key), err)
	}
	return a, nil
}

// Transformer applies an Affine to rows quickly: a paged table gives each
// slot's parameters in one memory access. Build one per goroutine (it keeps
// scratch space); building costs about 16 bytes per slot in each 4096-slot
// page that holds a listed slot.
type Transformer struct {
	pages [][]param
	dense []uint32  // slots with Offset ≠ 0, increasing
	zero  []float32 // their values for an absent entry
}

type param struct{ scale, offset float64 }

// NewTransformer returns a Transformer for a.
func NewTransformer(a *Affine) *Transformer {
	t := &Transformer{}
	for k, i := range a.Features {
		p := int(i >> pageBits)
		if p >= len(t.pages) {
			np := make([][]param, p+1)
			copy(np, t.pages)
			t.pages = np
		}
		if t.pages[p] == nil {
			pg := make([]param, pageSize)
			for j := range pg {
				pg[j].scale = 1
			}
			t.pages[p] = pg
		}
		t.pages[p][i&pageMask] = param{a.Scale[k], a.Offset[k]}
		if a.Offset[k] != 0 {
			t.dense = append(t.dense, i)
			t.zero = append(t.zero, float32(a.Offset[k]))
		}
	}
	return t
}

func (t *Transformer) apply(i uint32, x float32) float32 {
	p := int(i >> pageBits)
	if p >= len(t.pages) || t.pages[p] == nil {
		return x
	}
	pr := t.pages[p][i&pageMask]
	return float32(pr.scale*float64(x) + pr.offset)
}

// Transform writes the transformed row (label, indices, values) into dst,
// reusing its slices; values == nil means every value is 1. Entries stay in
// increasing slot order, the densified slots merged in. The result is
// computed in float64 and rounded to float32. A value that rounds to ±Inf
// is an error (the statistics were computed on other data).
func (t *Transformer) Transform(dst *dataset.Row, label float32, indices []uint32, values []float32) error {
	dst.Label = label
	idx, val := dst.Indices[:0], dst.Values[:0]
	d := 0
	for k, i := range indices {
		for d < len(t.dense) && t.dense[d] < i {
			idx = append(idx, t.dense[d])
			val = append(val, t.zero[d])
			d++
		}
		if d < len(t.dense) && t.dense[d] == i {
			d++
		}
		x := float32(1)
		if values != nil {
			x = values[k]
		}
		y := t.apply(i, x)
		if math.IsInf(float64(y), 0) {
			return fmt.Errorf("slot %d: value %g scales to %g (out of float32 range)", i, x, y)
		}
		idx = append(idx, i)
		val = append(val, y)
	}
	for ; d < len(t.dense); d++ {
		idx = append(idx, t.dense[d])
		val = append(val, t.zero[d])
	}
	dst.Indices, dst.Values = idx, val
	return nil
}
