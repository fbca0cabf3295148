package psstore

import (
	"math"
	"math/bits"

	pb "github.com/stratus-ml/stratus/psstore/proto"
)

// sparsePlan turns a caller's key list (any order, duplicates allowed) into
// per-shard requests: the distinct keys, sorted, split by shard and
// translated to shard-local indices, plus for every input position the slot
// of its distinct key. Plans are pooled by the Client; after warm-up
// building one allocates nothing.
//
// Placement: global key k lives on shard k % n at local index k / n.
type sparsePlan struct {
	// sorting scratch
	pairs, pairs2 []keyIndex
	hist          [6][2048]int32

	// slot[i] is the position in local/vals of input key i.
	slot []uint32
	// local holds the distinct local keys grouped by shard, ascending within
	// a shard; shard s owns local[start[s]:start[s+1]].
	local []uint64
	start []int
	// vals holds one value per distinct key, in the same order as local.
	vals []float32
	// per-shard encoding buffers
	keyBuf [][]byte
	valBuf [][]byte
	// pullReqs are the reusable per-shard pull requests.
	pullReqs []pb.PullSparseRequest
	// input is a copy of the keys the plan was built from, while the plan
	// waits in the Client's recent-pull cache.
	input []uint64
}

// build prepares the plan for keys over n shards. Cost: O(len(keys)) with an
// LSD radix sort of the keys in passes of at most 11 bits (two for keys below
// 2^22; see sort).
func (p *sparsePlan) build(keys []uint64, n int) {
	sorted := p.sort(keys)
	if cap(p.start) < n+1 {
		p.start = make([]int, n+1)
	}
	p.start = p.start[:n+1]
	clear(p.start)
	// Count distinct keys per shard.
	distinct := 0
	for i, e := range sorted {
		if i > 0 && e.k == sorted[i-1].k {
			continue
		}
		distinct++
		p.start[shardOf(e.k, n)+1]++
	}
	for s := 1; s <= n; s++ {
		p.start[s] += p.start[s-1]
	}
	p.local = grow(p.local, distinct)
	p.slot = grow(p.slot, len(keys))
	// Fill: p.start[s] is used as a cursor and restored afterwards.
	var cur uint32
	switch {
	case n == 1:
		for i, e := range sorted {
			if i == 0 || e.k != sorted[i-1].k {
				cur = uint32(p.start[0])
				p.local[cur] = e.k
				p.start[0]++
			}
			p.slot[e.i] = cur
		}
	case n&(n-1) == 0: // power of two: shift and mask
		shift := uint(bits.TrailingZeros(uint(n)))
		mask := uint64(n - 1)
		for i, e := range sorted {
			if i == 0 || e.k != sorted[i-1].k {
				s := int(e.k & mask)
				cur = uint32(p.start[s])
				p.local[cur] = e.k >> shift
				p.start[s]++
			}
			p.slot[e.i] = cur
		}
	case len(sorted) > 0 && sorted[len(sorted)-1].k <= math.MaxUint32: // 32-bit division is cheaper
		n32 := uint32(n)
		for i, e := range sorted {
			if i == 0 || e.k != sorted[i-1].k {
				k := uint32(e.k)
				s := int(k % n32)
				cur = uint32(p.start[s])
				p.local[cur] = uint64(k / n32)
				p.start[s]++
			}
			p.slot[e.i] = cur
		}
	default:
		for i, e := range sorted {
			if i == 0 || e.k != sorted[i-1].k {
				s := int(e.k % uint64(n))
				cur = uint32(p.start[s])
				p.local[cur] = e.k / uint64(n)
				p.start[s]++
			}
			p.slot[e.i] = cur
		}
	}
	for s := n; s > 0; s-- {
		p.start[s] = p.start[s-1]
	}
	p.start[0] = 0
	p.vals = grow(p.vals, distinct)
	if len(p.keyBuf) < n {
		p.keyBuf = make([][]byte, n)
		p.valBuf = make([][]byte, n)
		p.pullReqs = make([]pb.PullSparseRequest, n)
	}
}

// shardKeys returns the sorted local keys of shard s.
func (p *sparsePlan) shardKeys(s int) []uint64 { return p.local[p.start[s]:p.start[s+1]] }

// shardVals returns the value slots of shard s.
func (p *sparsePlan) shardVals(s int) []float32 { return p.vals[p.start[s]:p.start[s+1]] }

// keyIndex is a key and its position in the caller's list.
type keyIndex struct {
	k uint64
	i uint32
}

// sort returns the keys sorted ascending with their input positions. It is
// an LSD radix sort over only the bit span where keys differ, in passes of
// at most 11 bits (two passes for keys below 2^22), with insertion sort for
// short inputs.
func (p *sparsePlan) sort(keys []uint64) []keyIndex {
	n := len(keys)
	p.pairs = grow(p.pairs, n)
	a := p.pairs
	var or, and uint64 = 0, ^uint64(0)
	for i, k := range keys {
		or |= k
		and &= k
		a[i] = keyIndex{k, uint32(i)}
	}
	varying := or ^ and // bits that differ between some keys
	if varying == 0 {
		return a
	}
	if n <= 48 {
		for i := 1; i < n; i++ {
			e := a[i]
			j := i
			for j > 0 && a[j-1].k > e.k {
				a[j] = a[j-1]
				j--
			}
			a[j] = e
		}
		return a
	}
	p.pairs2 = grow(p.pairs2, n)
	lo := uint(bits.TrailingZeros64(varying))
	span := uint(64-bits.LeadingZeros64(varying)) - lo
	passes := (span + 10) / 11
	w := (span + passes - 1) / passes
	mask := uint64(1)<<w - 1
	for q := uint(0); q < passes; q++ {
		clear(p.hist[q][:1<<w])
	}
	for _, k := range keys {
		x := k >> lo
		for q := uint(0); q < passes; q++ {
			p.hist[q][(x>>(q*w))&mask]++
		}
	}
	src, dst := a, p.pairs2
	for q := uint(0); q < passes; q++ {
		h := p.hist[q][:1<<w]
		var sum int32
		for i, c := range h {
			h[i] = sum
			sum += c
		}
		shift := lo + q*w
		for _, e := range src {
			d := (e.k >> shift) & mask
			pos := h[d]
			h[d]++
			dst[pos] = e
		}
		src, dst = dst, src
	}
	return src
}

// grow returns s resized to n, reallocating only when its capacity is short.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/4)
	}
	return s[:n]
}

// shardOf is k mod n, with cheaper paths for one shard, powers of two and
// 32-bit keys.
func shardOf(k uint64, n int) int {
	switch {
	case n == 1:
		return 0
	case n&(n-1) == 0:
		return int(k & uint64(n-1))
	case k <= math.MaxUint32:
		return int(uint32(k) % uint32(n))
	}
	return int(k % uint64(n))
}
