package psstore

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// TestConcurrentPushes: several clients (and several goroutines sharing
// one client) push to the same coordinates at once while others pull; with
// sgd, lr 1 and integer gradients every weight must equal minus the exact
// sum of its gradients, and the counters must add up.
func TestConcurrentPushes(t *testing.T) {
	for _, shards := range []int{1, 3} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			lc, c0 := startCluster(t, shards)
			ctx := testCtx(t)
			const dim, workers, pushes = 500, 6, 150
			if err := c0.CreateModel(ctx, ModelSpec{Name: "m", Dim: dim, LearningRate: 1}); err != nil {
				t.Fatal(err)
			}
			shared := dial(t, lc.Addrs(), lc.Token(), WithPushWindow(4))
			sums := make([][]int64, workers)
			updates := make([]uint64, workers)
			var wg sync.WaitGroup
			for w := range workers {
				c := shared // workers 0-2 share a client, 3-5 have their own
				if w >= 3 {
					c = dial(t, lc.Addrs(), lc.Token())
				}
				sums[w] = make([]int64, dim)
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 99))
					dst := make([]float32, 64)
					for range pushes {
						n := 1 + rng.IntN(64)
						keys := make([]uint64, n)
						grads := make([]float32, n)
						distinct := map[uint64]bool{}
						for i := range keys {
							keys[i] = rng.Uint64N(dim)
							if rng.IntN(3) == 0 {
								keys[i] = 7 // a hot coordinate
							}
							g := int64(rng.IntN(7)) - 3
							grads[i] = float32(g)
							sums[w][keys[i]] += g
							distinct[keys[i]] = true
						}
						updates[w] += uint64(len(distinct))
						if err := c.PushSparse(ctx, "m", keys, grads); err != nil {
							t.Error(err)
							return
						}
						if err := c.PullSparse(ctx, "m", keys, dst[:n]); err != nil {
							t.Error(err)
							return
						}
					}
					if err := c.Flush(ctx); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			got, err := c0.PullDense(ctx, "m")
			if err != nil {
				t.Fatal(err)
			}
			var wantUpdates uint64
			for w := range workers {
				wantUpdates += updates[w]
			}
			for k := range got {
				var s int64
				for w := range workers {
					s += sums[w][k]
				}
				if got[k] != float32(-s) {
					t.Fatalf("w[%d] = %v, want %d", k, got[k], -s)
				}
			}
			st, err := c0.ModelStats(ctx, "m")
			if err != nil {
				t.Fatal(err)
			}
			if st.Pushes != workers*pushes || st.Updates != wantUpdates {
				t.Fatalf("stats pushes %d updates %d, want %d and %d", st.Pushes, st.Updates, workers*pushes, wantUpdates)
			}
		})
	}
}

// TestSameResultsAnyShardCount runs one deterministic workload against 1
// and 4 shards: models must be bit-identical and the KV face must answer the
// same.
func TestSameResultsAnyShardCount(t *testing.T) {
	type result struct {
		dense []float32
		pull  []float32
		list  []string
		vals  [][]byte
		sum   []float32
		stats ModelStats
	}
	run := func(shards int) result {
		_, c := startCluster(t, shards)
		ctx := testCtx(t)
		spec := ModelSpec{Name: "m", Dim: 1 << 12, Optimizer: "adagrad", LearningRate: 0.3, L2: 0.01, Init: "normal", Seed: 5}
		if err := c.CreateModel(ctx, spec); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 1))
		var r result
		for step := range 50 {
			keys := make([]uint64, 300)
			grads := make([]float32, len(keys))
			for i := range keys {
				keys[i] = rng.Uint64N(spec.Dim)
				grads[i] = float32(rng.NormFloat64())
			}
			if err := c.PushSparse(ctx, "m", keys, grads); err != nil {
				t.Fatal(err)
			}
			if err := c.Put(ctx, fmt.Sprintf("k/%02d", step), []byte(fmt.Sprint(step*step))); err != nil {
				t.Fatal(err)
			}
			if err := c.MergeFloats(ctx, fmt.Sprintf("sum/%d", step%3), MergeSum, grads[:4]); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		var err error
		if r.dense, err = c.PullDense(ctx, "m"); err != nil {
			t.Fatal(err)
		}
		probe := []uint64{4095, 0, 17, 17, 1000, 3}
		r.pull = make([]float32, len(probe))
		if err := c.PullSparse(ctx, "m", probe, r.pull); err != nil {
			t.Fatal(err)
		}
		if r.list, err = c.List(ctx, "k/"); err != nil {
			t.Fatal(err)
		}
		if r.vals, err = c.MultiGet(ctx, r.list); err != nil {
			t.Fatal(err)
		}
		if r.sum, err = c.GetFloats(ctx, "sum/1"); err != nil {
			t.Fatal(err)
		}
		if r.stats, err = c.ModelStats(ctx, "m"); err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := run(1), run(4)
	if !slices.Equal(a.dense, b.dense) {
		t.Fatal("dense models differ between 1 and 4 shards")
	}
	if !slices.Equal(a.pull, b.pull) || !slices.Equal(a.list, b.list) || !slices.Equal(a.sum, b.sum) {
		t.Fatal("answers differ between 1 and 4 shards")
	}
	for i := range a.vals {
		if string(a.vals[i]) != string(b.vals[i]) {
			t.Fatalf("value %d differs", i)
		}
	}
	if len(a.list) != 50 || a.stats.Pushes != 50 || a.stats.Pushes != b.stats.Pushes || a.stats.Updates != b.stats.Updates {
		t.Fatalf("counters: %+v vs %+v", a.stats, b.stats)
	}
}
