package psstore

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestPlan checks the client's request planner against a naive model: every
// input key maps to a slot holding its own local key on the right shard,
// each shard's local keys are sorted and distinct.
func TestPlan(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := new(sparsePlan)
	for iter := 0; iter < 300; iter++ {
		n := 1 + rng.IntN(5)
		size := rng.IntN(3000)
		space := uint64(1) << uint(1+rng.IntN(63))
		keys := make([]uint64, size)
		for i := range keys {
			keys[i] = rng.Uint64N(space)
			if i > 0 && rng.IntN(4) == 0 {
				keys[i] = keys[rng.IntN(i)] // duplicates
			}
		}
		p.build(keys, n)
		distinct := map[uint64]bool{}
		for _, k := range keys {
			distinct[k] = true
		}
		if len(p.local) != len(distinct) {
			t.Fatalf("iter %d: %d distinct keys planned, want %d", iter, len(p.local), len(distinct))
		}
		for s := 0; s < n; s++ {
			ks := p.shardKeys(s)
			for i := 1; i < len(ks); i++ {
				if ks[i] <= ks[i-1] {
					t.Fatalf("iter %d shard %d: keys not strictly increasing", iter, s)
				}
			}
		}
		for i, k := range keys {
			slot := int(p.slot[i])
			s := int(k % uint64(n))
			if slot < p.start[s] || slot >= p.start[s+1] {
				t.Fatalf("iter %d: key %d in slot %d, outside shard %d's range", iter, k, slot, s)
			}
			if p.local[slot] != k/uint64(n) {
				t.Fatalf("iter %d: key %d slot holds local %d, want %d", iter, k, p.local[slot], k/uint64(n))
			}
		}
	}
}

func BenchmarkPlan2000(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	keys := make([]uint64, 2000)
	for i := range keys {
		keys[i] = rng.Uint64N(1 << 20)
	}
	for _, n := range []int{1, 3, 4} {
		b.Run(fmt.Sprintf("shards=%d", n), func(b *testing.B) {
			p := new(sparsePlan)
			b.ReportAllocs()
			for b.Loop() {
				p.build(keys, n)
			}
		})
	}
	b.Run("sortonly", func(b *testing.B) {
		p := new(sparsePlan)
		for b.Loop() {
			p.sort(keys)
		}
	})
}
