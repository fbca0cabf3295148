package manifest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
)

// The reduction of many tasks' statistics, in a form that merges in any
// order, any number of times, to one result: what a psstore merge function
// needs (load's and normalize's tasks merge their statistics into the store
// instead of sending them to the coordinator), and what Assemble computes.
//
// A Reduction covers a block of slots of a Stats; its value records
// which contributions (task indices among n) it holds, so a contribution
// merged twice (a retried task) counts once. Counts add as integers, minima
// and maxima compare, and sums are added exactly (as integers times a power
// of two) and rounded to float64 once, when decoded: the result does not
// depend on the order of the merges, and for one or two contributions it is
// the float64 sum a single Merge gives.

// ReductionBlock is the default number of slots one reduction value covers
// (a psstore key each, so that a large feature space spreads over the
// shards); ReductionBlockFor sizes blocks for a feature space.
const ReductionBlock = 1 << 18

// ReductionBlockFor returns the block size (a power of two from 2^12 to
// 2^22) that cuts a space of features slots (0: unknown) into about keys
// blocks: fewer, larger merges cost fewer synchronous writes on the
// shards; more spread the work over them.
func ReductionBlockFor(features, keys int) int {
	if features <= 0 {
		return ReductionBlock
	}
	per := (features + max(keys, 1) - 1) / max(keys, 1)
	b := 1 << 12
	for b < per && b < 1<<22 {
		b <<= 1
	}
	return b
}

const reductionMagic = "STRD1"

// exact is n·2^e, n's trailing zero bits stripped (n = 0 has e = 0).
type exact struct {
	n big.Int
	e int
}

func exactOf(x float64) (*exact, error) {
	z := &exact{}
	if x == 0 {
		return z, nil
	}
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return nil, fmt.Errorf("sum %v is not finite", x)
	}
	frac, exp := math.Frexp(x) // x = frac·2^exp, 0.5 ≤ |frac| < 1
	m := int64(frac * (1 << 53))
	z.n.SetInt64(m)
	z.e = exp - 53
	z.norm()
	return z, nil
}

func (z *exact) norm() {
	if z.n.Sign() == 0 {
		z.e = 0
		return
	}
	if tz := z.n.TrailingZeroBits(); tz > 0 {
		z.n.Rsh(&z.n, tz)
		z.e += int(tz)
	}
}

func (z *exact) add(o *exact) {
	if o.n.Sign() == 0 {
		return
	}
	if z.n.Sign() == 0 {
		z.n.Set(&o.n)
		z.e = o.e
		return
	}
	var a, b big.Int
	e := min(z.e, o.e)
	a.Lsh(&z.n, uint(z.e-e))
	b.Lsh(&o.n, uint(o.e-e))
	z.n.Add(&a, &b)
	z.e = e
	z.norm()
}

// float64 rounds z to the nearest float64 (ties to even).
func (z *exact) float64() float64 {
	if z.n.Sign() == 0 {
		return 0
	}
	f := new(big.Float).SetInt(&z.n) // exact: its precision is n's length
	f.SetMantExp(f, z.e)
	v, _ := f.Float64()
	return v
}

// redEntry is one slot of a reduction: ones counts a slot whose entries
// were all 1 (Min = Max = 1, Sum = SumSq = Count); otherwise the Feature
// fields, with exact sums.
type redEntry struct {
	slot       uint32
	count      int64
	ones       bool
	min, max   float32
	sum, sumsq *exact
}

// reduction is a decoded reduction value.
type reduction struct {
	n       int    // contributions in all
	done    []byte // bit i: contribution i is in
	entries []redEntry
}

// ContributeStats encodes the statistics of contribution task (of n, the
// tasks of a wave) as one reduction value per block of blockSlots slots
// that the statistics touch, by block number. Merge them with MergeReductions;
// DecodeReductions turns the merged values back into Stats.
func ContributeStats(s *Stats, task, n, blockSlots int) (map[int][]byte, error) {
	if task < 0 || task >= n {
		return nil, fmt.Errorf("contribution %d of %d", task, n)
	}
	if blockSlots <= 0 {
		return nil, fmt.Errorf("blocks of %d slots", blockSlots)
	}
	blocks := map[int]*reduction{}
	var err error
	s.Each(func(i uint32, f Feature) {
		if err != nil {
			return
		}
		b := int(i / uint32(blockSlots))
		r := blocks[b]
		if r == nil {
			r = &reduction{n: n, done: make([]byte, (n+7)/8)}
			r.done[task/8] |= 1 << (task % 8)
			blocks[b] = r
		}
		var e redEntry
		if e, err = entryOf(i, f); err == nil {
			r.entries = append(r.entries, e)
		}
	})
	if err != nil {
		return nil, err
	}
	out := make(map[int][]byte, len(blocks))
	for b, r := range blocks {
		out[b] = r.encode()
	}
	return out, nil
}

func entryOf(i uint32, f Feature) (redEntry, error) {
	e := redEntry{slot: i, count: f.Count}
	if f.Min == 1 && f.Max == 1 && f.Sum == float64(f.Count) && f.SumSq == f.Sum {
		e.ones = true
		return e, nil
	}
	e.min, e.max = f.Min, f.Max
	var err error
	if e.sum, err = exactOf(f.Sum); err != nil {
		return e, err
	}
	if e.sumsq, err = exactOf(f.SumSq); err != nil {
		return e, err
	}
	return e, nil
}

// full turns a ones entry into explicit fields.
func (e *redEntry) full() {
	if !e.ones {
		return
	}
	e.ones = false
	e.min, e.max = 1, 1
	e.sum, e.sumsq = &exact{}, &exact{}
	e.sum.n.SetInt64(e.count)
	e.sum.norm()
	e.sumsq.n.SetInt64(e.count)
	e.sumsq.norm()
}

func (e *redEntry) merge(o *redEntry) {
	if e.ones && o.ones {
		e.count += o.count
		return
	}
	e.full()
	oc := *o
	oc.full()
	e.count += oc.count
	e.min = min(e.min, oc.min)
	e.max = max(e.max, oc.max)
	e.sum.add(oc.sum)
	e.sumsq.add(oc.sumsq)
}

// MergeReductions folds reduction value operand into cur (nil: none yet)
// and returns the merged value. A contribution already in cur is not
// counted again; values of different totals (n) do not merge. It is a
// psstore.MergeFunc.
func MergeReductions(cur, operand []byte) ([]byte, error) {
	if cur == nil {
		o, err := decodeReduction(operand)
		if err != nil {
			return nil, fmt.Errorf("operand: %w", err)
		}
		return o.encode(), nil
	}
	o, oi, err := decodeHeader(operand)
	if err != nil {
		return nil, fmt.Errorf("operand: %w", err)
	}
	c, ci, err := decodeHeader(cur)
	if err != nil {
		return nil, fmt.Errorf("stored value: %w", err)
	}
	if c.n != o.n {
		return nil, fmt.Errorf("a reduction of %d contributions cannot take one of %d", c.n, o.n)
	}
	overlap, all := false, true
	for i := range o.done {
		if o.done[i]&c.done[i] != 0 {
			overlap = true
		}
		if o.done[i]&^c.done[i] != 0 {
			all = false
		}
	}
	if all {
		return cur, nil // every contribution of operand is in already
	}
	if overlap {
		return nil, errors.New("the operand holds contributions of which some are in already and some not")
	}
	for i := range c.done {
		c.done[i] |= o.done[i]
	}
	// Merge the two sorted entry streams straight into the output.
	out := []byte(reductionMagic)
	out = binary.AppendUvarint(out, uint64(c.n))
	out = append(out, c.done...)
	out = binary.AppendUvarint(out, 0) // entry count, patched below
	countAt := len(out) - 1
	var ce, oe redEntry
	cok, ook := ci.next(&ce), oi.next(&oe)
	var n uint64
	prev := uint32(0)
	emit := func(e *redEntry) {
		out = e.append(out, prev)
		prev = e.slot
		n++
	}
	for cok || ook {
		switch {
		case !ook || cok && ce.slot < oe.slot:
			emit(&ce)
			cok = ci.next(&ce)
		case !cok || oe.slot < ce.slot:
			emit(&oe)
			ook = oi.next(&oe)
		default:
			ce.merge(&oe)
			emit(&ce)
			cok, ook = ci.next(&ce), oi.next(&oe)
		}
	}
	if oi.err != nil {
		return nil, fmt.Errorf("operand: %w", oi.err)
	}
	if ci.err != nil {
		return nil, fmt.Errorf("stored value: %w", ci.err)
	}
	// Put the real count in place of the 1-byte placeholder.
	tail := slices.Clone(out[countAt+1:])
	out = binary.AppendUvarint(out[:countAt], n)
	return append(out, tail...), nil
}

// DecodeReductions turns merged reduction values (by block number) into
// Stats over rows rows (blocks of blockSlots slots). It fails unless each value holds exactly the
// contributions of want (a block no contribution touched may be absent).
func DecodeReductions(values map[int][]byte, rows int64, blockSlots int, want func(task int) bool) (*Stats, error) {
	if blockSlots <= 0 {
		return nil, fmt.Errorf("blocks of %d slots", blockSlots)
	}
	s := NewStats()
	s.Rows = rows
	blocks := make([]int, 0, len(values))
	for b := range values {
		blocks = append(blocks, b)
	}
	slices.Sort(blocks)
	for _, b := range blocks {
		r, err := decodeReduction(values[b])
		if err != nil {
			return nil, fmt.Errorf("statistics block %d: %w", b, err)
		}
		for t := 0; t < r.n; t++ {
			in := r.done[t/8]&(1<<(t%8)) != 0
			if in && !want(t) {
				return nil, fmt.Errorf("statistics block %d holds task %d's contribution, which the wave did not count", b, t)
			}
		}
		for _, e := range r.entries {
			if int(e.slot/uint32(blockSlots)) != b {
				return nil, fmt.Errorf("statistics block %d holds slot %d", b, e.slot)
			}
			if e.ones {
				s.set(e.slot, Feature{Count: e.count, Min: 1, Max: 1, Sum: float64(e.count), SumSq: float64(e.count)})
				continue
			}
			s.set(e.slot, Feature{Count: e.count, Min: e.min, Max: e.max, Sum: e.sum.float64(), SumSq: e.sumsq.float64()})
		}
	}
	return s, nil
}

// Contributions reports which contributions a reduction value holds.
func Contributions(value []byte) ([]int, error) {
	r, err := decodeReduction(value)
	if err != nil {
		return nil, err
	}
	var out []int
	for t := 0; t < r.n; t++ {
		if r.done[t/8]&(1<<(t%8)) != 0 {
			out = append(out, t)
		}
	}
	return out, nil
}

func (r *reduction) encode() []byte {
	b := []byte(reductionMagic)
	b = binary.AppendUvarint(b, uint64(r.n))
	b = append(b, r.done...)
	b = binary.AppendUvarint(b, uint64(len(r.entries)))
	prev := uint32(0)
	for i := range r.entries {
		b = r.entries[i].append(b, prev)
		prev = r.entries[i].slot
	}
	return b
}

// append encodes e after an entry of slot prev (0 for the first).
func (e *redEntry) append(b []byte, prev uint32) []byte {
	b = binary.AppendUvarint(b, uint64(e.slot-prev))
	b = binary.AppendUvarint(b, uint64(e.count))
	if e.ones {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(e.min))
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(e.max))
	b = e.sum.append(b)
	return e.sumsq.append(b)
}

func (z *exact) append(b []byte) []byte {
	b = binary.AppendVarint(b, int64(z.e))
	sign := byte(0)
	if z.n.Sign() < 0 {
		sign = 1
	}
	b = append(b, sign)
	mag := new(big.Int).Abs(&z.n).Bytes()
	b = binary.AppendUvarint(b, uint64(len(mag)))
	return append(b, mag...)
}

// decodeHeader reads a reduction value's contributions and returns an
// iterator over its entries.
func decodeHeader(b []byte) (*reduction, *entryIter, error) {
	if !bytes.HasPrefix(b, []byte(reductionMagic)) {
		return nil, nil, fmt.Errorf("%w: not a statistics reduction", ErrCorrupt)
	}
	it := &entryIter{rd: reader{b: b[len(reductionMagic):]}}
	rd := &it.rd
	r := &reduction{}
	n := rd.uvarint()
	if rd.err == nil && (n == 0 || n > 1<<24) {
		return nil, nil, fmt.Errorf("%w: a reduction of %d contributions", ErrCorrupt, n)
	}
	r.n = int(n)
	r.done = slices.Clone(rd.take((r.n + 7) / 8))
	it.left = rd.uvarint()
	if rd.err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrCorrupt, rd.err)
	}
	if it.left > uint64(len(rd.b)) {
		return nil, nil, fmt.Errorf("%w: %d entries claimed", ErrCorrupt, it.left)
	}
	return r, it, nil
}

// entryIter reads a reduction value's entries in slot order.
type entryIter struct {
	rd    reader
	left  uint64
	slot  uint64
	first bool // an entry has been read
	err   error
}

// next reads the next entry into e; false at the end or on an error (err).
func (it *entryIter) next(e *redEntry) bool {
	if it.err != nil {
		return false
	}
	rd := &it.rd
	if it.left == 0 {
		if len(rd.b) != 0 {
			it.err = fmt.Errorf("%w: %d bytes after the entries", ErrCorrupt, len(rd.b))
		}
		return false
	}
	it.left--
	d := rd.uvarint()
	if it.first && d == 0 && rd.err == nil {
		it.err = fmt.Errorf("%w: slots out of order", ErrCorrupt)
		return false
	}
	it.first = true
	it.slot += d
	if it.slot > math.MaxUint32 {
		it.err = fmt.Errorf("%w: slot %d", ErrCorrupt, it.slot)
		return false
	}
	*e = redEntry{slot: uint32(it.slot), count: int64(rd.uvarint())}
	kind := rd.take(1)
	if rd.err == nil {
		switch kind[0] {
		case 0:
			e.ones = true
		case 1:
			e.min, e.max = rd.f32(), rd.f32()
			e.sum, e.sumsq = rd.exact(), rd.exact()
		default:
			it.err = fmt.Errorf("%w: entry kind %d", ErrCorrupt, kind[0])
			return false
		}
	}
	if rd.err != nil {
		it.err = fmt.Errorf("%w: %v", ErrCorrupt, rd.err)
		return false
	}
	if e.count <= 0 {
		it.err = fmt.Errorf("%w: slot %d counts %d", ErrCorrupt, it.slot, e.count)
		return false
	}
	return true
}

func decodeReduction(b []byte) (*reduction, error) {
	r, it, err := decodeHeader(b)
	if err != nil {
		return nil, err
	}
	r.entries = make([]redEntry, 0, it.left)
	var e redEntry
	for it.next(&e) {
		r.entries = append(r.entries, e)
	}
	if it.err != nil {
		return nil, it.err
	}
	return r, nil
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errors.New("a malformed sum")
	}
}

func (r *reader) exact() *exact {
	z := &exact{}
	if r.err != nil {
		return z
	}
	e, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return z
	}
	r.b = r.b[n:]
	sign := r.take(1)
	size := r.uvarint()
	if r.err != nil || size > uint64(len(r.b)) || e < -1100 || e > 1100 {
		r.fail()
		return z
	}
	z.e = int(e)
	z.n.SetBytes(r.take(int(size)))
	if r.err != nil {
		return z
	}
	if sign[0] == 1 {
		z.n.Neg(&z.n)
	}
	if z.n.Sign() != 0 && z.n.TrailingZeroBits() > 0 || z.n.Sign() == 0 && z.e != 0 || z.n.BitLen() > 4096 {
		r.fail() // not the canonical form encode writes
	}
	return z
}

// ReduceStats reduces many contributions' statistics in memory to the
// result the store's merges give (ContributeStats, MergeReductions in any
// order, DecodeReductions): nil entries contribute nothing. Slots whose
// entries are all 1 are counted in dense pages, the others accumulated
// exactly, so it costs about what a sequential Stats.Merge does.
func ReduceStats(list []*Stats) (*Stats, error) {
	var rows int64
	var ones [][]int64
	full := map[uint32]*redEntry{}
	var err error
	for _, s := range list {
		if s == nil {
			continue
		}
		rows += s.Rows
		s.Each(func(i uint32, f Feature) {
			if err != nil {
				return
			}
			if f.Min == 1 && f.Max == 1 && f.Sum == float64(f.Count) && f.SumSq == f.Sum {
				ones = grow(ones, i>>pageBits)
				if ones[i>>pageBits] == nil {
					ones[i>>pageBits] = make([]int64, pageSize)
				}
				ones[i>>pageBits][i&pageMask] += f.Count
				return
			}
			var e redEntry
			if e, err = entryOf(i, f); err != nil {
				return
			}
			if cur := full[i]; cur != nil {
				cur.merge(&e)
			} else {
				full[i] = &e
			}
		})
		if err != nil {
			return nil, err
		}
	}
	out := NewStats()
	out.Rows = rows
	for p, pg := range ones {
		for k, c := range pg {
			if c == 0 {
				continue
			}
			i := uint32(p)<<pageBits | uint32(k)
			if e := full[i]; e != nil {
				e.merge(&redEntry{slot: i, count: c, ones: true})
				continue
			}
			out.set(i, Feature{Count: c, Min: 1, Max: 1, Sum: float64(c), SumSq: float64(c)})
		}
	}
	for i, e := range full {
		out.set(i, Feature{Count: e.count, Min: e.min, Max: e.max, Sum: e.sum.float64(), SumSq: e.sumsq.float64()})
	}
	return out, nil
}
