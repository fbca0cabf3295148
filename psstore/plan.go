package psstore

// sparsePlan turns a caller's key list (any order, duplicates allowed) into
// per-shard requests: the distinct keys, sorted, split by shard and
// translated to shard-local indices, plus for every input position the slot
// of its distinct key. Plans are pooled by the Client; after warm-up
// building one allocates nothing.
//
// Placement: global key k lives on shard k % n at local index k / n.
type sparsePlan struct {
	// sorting scratch
	sk, sk2 []uint64
	ix, ix2 []uint32
	hist    [8][256]int32

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
}

// build prepares the plan for keys over n shards. Cost: O(len(keys)) with a
// radix sort of the keys (one pass per non-constant key byte: three for
// keys below 2^20).
func (p *sparsePlan) build(keys []uint64, n int) {
	sorted, order := p.sort(keys)
	if cap(p.start) < n+1 {
		p.start = make([]int, n+1)
	}
	p.start = p.start[:n+1]
	clear(p.start)
	// Count distinct keys per shard.
	distinct := 0
	for i, k := range sorted {
		if i > 0 && k == sorted[i-1] {
			continue
		}
		distinct++
		if n > 1 {
			p.start[k%uint64(n)+1]++
		} else {
			p.start[1]++
		}
	}
	for s := 1; s <= n; s++ {
		p.start[s] += p.start[s-1]
	}
	p.local = grow(p.local, distinct)
	p.slot = grow(p.slot, len(keys))
	// Fill: p.start[s] is used as a cursor and restored afterwards.
	var cur uint32
	for i, k := range sorted {
		if i == 0 || k != sorted[i-1] {
			s := 0
			local := k
			if n > 1 {
				s = int(k % uint64(n))
				local = k / uint64(n)
			}
			cur = uint32(p.start[s])
			p.local[cur] = local
			p.start[s]++
		}
		p.slot[order[i]] = cur
	}
	for s := n; s > 0; s-- {
		p.start[s] = p.start[s-1]
	}
	p.start[0] = 0
	p.vals = grow(p.vals, distinct)
	if len(p.keyBuf) < n {
		p.keyBuf = make([][]byte, n)
		p.valBuf = make([][]byte, n)
	}
}

// shardKeys returns the sorted local keys of shard s.
func (p *sparsePlan) shardKeys(s int) []uint64 { return p.local[p.start[s]:p.start[s+1]] }

// shardVals returns the value slots of shard s.
func (p *sparsePlan) shardVals(s int) []float32 { return p.vals[p.start[s]:p.start[s+1]] }

// sort returns keys sorted ascending and, for every sorted position, the
// input index it came from. It uses an LSD radix sort over the key bytes
// that are not the same in every key, and insertion sort for short inputs.
func (p *sparsePlan) sort(keys []uint64) ([]uint64, []uint32) {
	n := len(keys)
	p.sk = grow(p.sk, n)
	p.ix = grow(p.ix, n)
	copy(p.sk, keys)
	for i := range p.ix {
		p.ix[i] = uint32(i)
	}
	if n <= 48 {
		k, ix := p.sk, p.ix
		for i := 1; i < n; i++ {
			kv, iv := k[i], ix[i]
			j := i
			for j > 0 && k[j-1] > kv {
				k[j], ix[j] = k[j-1], ix[j-1]
				j--
			}
			k[j], ix[j] = kv, iv
		}
		return k, ix
	}
	p.sk2 = grow(p.sk2, n)
	p.ix2 = grow(p.ix2, n)
	var or, and uint64 = 0, ^uint64(0)
	for _, k := range keys {
		or |= k
		and &= k
	}
	varying := or ^ and // bits that differ between some keys
	var digits [8]uint
	nd := 0
	for b := uint(0); b < 8; b++ {
		if byte(varying>>(8*b)) != 0 {
			p.hist[nd] = [256]int32{}
			digits[nd] = b
			nd++
		}
	}
	for _, k := range keys {
		for d := 0; d < nd; d++ {
			p.hist[d][byte(k>>(8*digits[d]))]++
		}
	}
	src, dst := p.sk, p.sk2
	isrc, idst := p.ix, p.ix2
	for b := 0; b < nd; b++ {
		h := &p.hist[b]
		var sum int32
		for i := range h {
			c := h[i]
			h[i] = sum
			sum += c
		}
		shift := 8 * digits[b]
		for i, k := range src {
			d := byte(k >> shift)
			pos := h[d]
			h[d]++
			dst[pos] = k
			idst[pos] = isrc[i]
		}
		src, dst = dst, src
		isrc, idst = idst, isrc
	}
	return src, isrc
}

// grow returns s resized to n, reallocating only when its capacity is short.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/4)
	}
	return s[:n]
}
