package psstore

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// refModel is an independent float64 implementation of the documented
// optimizer arithmetic.
type refModel struct {
	spec ModelSpec
	w, s []float64
}

func (r *refModel) push(keys []uint64, grads []float32) {
	g := map[uint64]float64{}
	for i, k := range keys {
		g[k] += float64(grads[i])
	}
	lr, l2 := float64(r.spec.LearningRate), float64(r.spec.L2)
	for k, gk := range g {
		gk += l2 * r.w[k]
		switch r.spec.Optimizer {
		case "sgd":
			r.w[k] -= lr * gk
		case "momentum":
			mu := float64(r.spec.Momentum)
			if mu == 0 {
				mu = 0.9
			}
			r.s[k] = mu*r.s[k] + gk
			r.w[k] -= lr * r.s[k]
		case "adagrad":
			eps := float64(r.spec.Epsilon)
			if eps == 0 {
				eps = 1e-8
			}
			r.s[k] += gk * gk
			r.w[k] -= lr * gk / (math.Sqrt(r.s[k]) + eps)
		}
	}
}

func closeTo(a float32, b float64) bool {
	return math.Abs(float64(a)-b) <= 1e-5+1e-4*math.Abs(b)
}

func TestOptimizers(t *testing.T) {
	specs := []ModelSpec{
		{Name: "sgd", Optimizer: "sgd", LearningRate: 0.1},
		{Name: "sgd-l2", Optimizer: "sgd", LearningRate: 0.05, L2: 0.01, Init: "normal", Seed: 3, Stddev: 0.5},
		{Name: "momentum", Optimizer: "momentum", LearningRate: 0.1},
		{Name: "momentum-0.5-l2", Optimizer: "momentum", LearningRate: 0.2, Momentum: 0.5, L2: 0.1, Init: "normal", Seed: 9},
		{Name: "adagrad", Optimizer: "adagrad", LearningRate: 0.5},
		{Name: "adagrad-l2-eps", Optimizer: "adagrad", LearningRate: 0.3, L2: 0.05, Epsilon: 0.1, Init: "normal", Seed: 1, Stddev: 1},
	}
	for _, shards := range []int{1, 3} {
		_, c := startCluster(t, shards)
		ctx := testCtx(t)
		for _, spec := range specs {
			t.Run(fmt.Sprintf("%s/shards=%d", spec.Name, shards), func(t *testing.T) {
				const dim = 200
				spec.Dim = dim
				if err := c.CreateModel(ctx, spec); err != nil {
					t.Fatal(err)
				}
				init, err := c.PullDense(ctx, spec.Name)
				if err != nil || len(init) != dim {
					t.Fatalf("PullDense: %d values, %v", len(init), err)
				}
				ref := &refModel{spec: spec, w: make([]float64, dim), s: make([]float64, dim)}
				for i, v := range init {
					ref.w[i] = float64(v)
				}
				rng := rand.New(rand.NewPCG(uint64(shards), 11))
				for step := range 30 {
					n := 1 + rng.IntN(60)
					keys := make([]uint64, n)
					grads := make([]float32, n)
					for i := range keys {
						keys[i] = rng.Uint64N(dim)
						grads[i] = float32(rng.NormFloat64())
					}
					if err := c.PushSparse(ctx, spec.Name, keys, grads); err != nil {
						t.Fatal(err)
					}
					ref.push(keys, grads)
					if step%10 == 9 {
						if err := c.Flush(ctx); err != nil {
							t.Fatal(err)
						}
						probe := []uint64{keys[0], 0, dim - 1, keys[0], keys[n-1]}
						got := make([]float32, len(probe))
						if err := c.PullSparse(ctx, spec.Name, probe, got); err != nil {
							t.Fatal(err)
						}
						for i, k := range probe {
							if !closeTo(got[i], ref.w[k]) {
								t.Fatalf("step %d: w[%d] = %v, reference %v", step, k, got[i], ref.w[k])
							}
						}
					}
				}
				if err := c.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				all, err := c.PullDense(ctx, spec.Name)
				if err != nil {
					t.Fatal(err)
				}
				changed := 0
				for k, v := range all {
					if !closeTo(v, ref.w[k]) {
						t.Fatalf("w[%d] = %v, reference %v", k, v, ref.w[k])
					}
					if v != init[k] {
						changed++
					}
				}
				if changed < dim/2 {
					t.Fatalf("only %d coordinates changed", changed)
				}
			})
		}
	}
}

// TestNormalInitIndependentOfShards: init "normal" gives the same vector
// whatever the shard count, with the requested spread.
func TestNormalInitIndependentOfShards(t *testing.T) {
	spec := ModelSpec{Name: "m", Dim: 20001, LearningRate: 1, Init: "normal", Seed: 42, Stddev: 2}
	var first []float32
	for _, n := range []int{1, 4} {
		_, c := startCluster(t, n)
		ctx := testCtx(t)
		if err := c.CreateModel(ctx, spec); err != nil {
			t.Fatal(err)
		}
		w, err := c.PullDense(ctx, "m")
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = w
			var sum, sq float64
			for _, v := range w {
				sum += float64(v)
				sq += float64(v) * float64(v)
			}
			mean := sum / float64(len(w))
			sd := math.Sqrt(sq/float64(len(w)) - mean*mean)
			if math.Abs(mean) > 0.05 || math.Abs(sd-2) > 0.05 {
				t.Fatalf("init mean %v stddev %v, want 0 and 2", mean, sd)
			}
			continue
		}
		if !slices.Equal(w, first) {
			t.Fatal("init differs between 1 and 4 shards")
		}
	}
}

func TestCreateModelIdempotent(t *testing.T) {
	_, c := startCluster(t, 2)
	ctx := testCtx(t)
	spec := ModelSpec{Name: "lr", Dim: 1000, Optimizer: "momentum", LearningRate: 0.1}
	if err := c.CreateModel(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := c.PushSparse(ctx, "lr", []uint64{1}, []float32{1}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// The same spec again (with the default momentum spelled out) is fine
	// and keeps the model's state.
	spec.Momentum = 0.9
	if err := c.CreateModel(ctx, spec); err != nil {
		t.Fatalf("identical CreateModel: %v", err)
	}
	got := make([]float32, 1)
	if err := c.PullSparse(ctx, "lr", []uint64{1}, got); err != nil || got[0] == 0 {
		t.Fatalf("model reset by an identical CreateModel: %v %v", got, err)
	}
	spec.LearningRate = 0.2
	err := c.CreateModel(ctx, spec)
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "learning rate") {
		t.Fatalf("different spec: %v", err)
	}
	bad := []ModelSpec{
		{Name: "", Dim: 1, LearningRate: 1},
		{Name: "x", Dim: 0, LearningRate: 1},
		{Name: "x", Dim: 1, LearningRate: 0},
		{Name: "x", Dim: 1, LearningRate: float32(math.NaN())},
		{Name: "x", Dim: 1, LearningRate: 1, Optimizer: "adam"},
		{Name: "x", Dim: 1, LearningRate: 1, Momentum: 0.5},
		{Name: "x", Dim: 1, LearningRate: 1, Optimizer: "momentum", Momentum: 1},
		{Name: "x", Dim: 1, LearningRate: 1, Init: "uniform"},
		{Name: "x", Dim: 1, LearningRate: 1, L2: -1},
		{Name: "x\x00y", Dim: 1, LearningRate: 1},
	}
	for _, s := range bad {
		if err := c.CreateModel(ctx, s); err == nil {
			t.Errorf("CreateModel(%+v) accepted", s)
		}
	}
}

func TestModelLifecycle(t *testing.T) {
	_, c := startCluster(t, 3)
	ctx := testCtx(t)
	spec := ModelSpec{Name: "m", Dim: 10, LearningRate: 1}
	if err := c.CreateModel(ctx, spec); err != nil {
		t.Fatal(err)
	}
	push := func(keys []uint64, grads []float32) {
		t.Helper()
		if err := c.PushSparse(ctx, "m", keys, grads); err != nil {
			t.Fatal(err)
		}
	}
	push([]uint64{0, 1, 2, 3, 4, 5}, []float32{1, 1, 1, 1, 1, 1})
	push([]uint64{9, 9, 9}, []float32{1, 2, 3})
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := c.ModelStats(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if st.Pushes != 2 || st.Updates != 7 || st.Spec.Optimizer != "sgd" || st.Spec.Dim != 10 {
		t.Fatalf("stats = %+v", st)
	}
	if err := c.Snapshot(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	snap, _ := c.PullDense(ctx, "m")
	if want := []float32{-1, -1, -1, -1, -1, -1, 0, 0, 0, -6}; !slices.Equal(snap, want) {
		t.Fatalf("dense = %v, want %v", snap, want)
	}
	push([]uint64{6, 7}, []float32{5, 5})
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Restore(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	got, _ := c.PullDense(ctx, "m")
	if !slices.Equal(got, snap) {
		t.Fatalf("after Restore = %v, want %v", got, snap)
	}
	if st, _ := c.ModelStats(ctx, "m"); st.Pushes != 2 || st.Updates != 7 || st.Checkpoints < 2 {
		t.Fatalf("stats after restore = %+v", st)
	}
	// Out-of-range key: refused, reported by the next push or Flush.
	push([]uint64{10}, []float32{1})
	err = c.Flush(ctx)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "key 10 is out of range") {
		t.Fatalf("out-of-range push: %v", err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("error reported twice: %v", err)
	}
	if err := c.PullSparse(ctx, "m", []uint64{3, 11}, make([]float32, 2)); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("out-of-range pull: %v", err)
	}
	if err := c.PushSparse(ctx, "m", []uint64{1}, []float32{float32(math.Inf(1))}); err == nil {
		t.Fatal("infinite gradient accepted")
	}
	if err := c.DeleteModel(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PullDense(ctx, "m"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("PullDense after delete: %v", err)
	}
	push([]uint64{1}, []float32{1})
	if err := c.Flush(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("push after delete: %v", err)
	}
	if err := c.DeleteModel(ctx, "m"); err != nil {
		t.Fatalf("deleting a deleted model: %v", err)
	}
	// A new model of the same name starts fresh.
	if err := c.CreateModel(ctx, ModelSpec{Name: "m", Dim: 4, LearningRate: 1, Optimizer: "adagrad"}); err != nil {
		t.Fatal(err)
	}
	if w, err := c.PullDense(ctx, "m"); err != nil || !slices.Equal(w, []float32{0, 0, 0, 0}) {
		t.Fatalf("recreated model = %v, %v", w, err)
	}
}

// TestFloat16Wire: with WithFloat16 values travel as binary16 both ways
// (clamped to ±65504), while the shard keeps float32.
func TestFloat16Wire(t *testing.T) {
	lc, c32 := startCluster(t, 2)
	c16 := dial(t, lc.Addrs(), lc.Token(), WithFloat16())
	ctx := testCtx(t)
	if err := c32.CreateModel(ctx, ModelSpec{Name: "m", Dim: 100, LearningRate: 1}); err != nil {
		t.Fatal(err)
	}
	keys := []uint64{0, 1, 2, 50, 99}
	grads := []float32{0.1, -1000.25, 3.14159, 1e-3, 70000}
	if err := c16.PushSparse(ctx, "m", keys, grads); err != nil {
		t.Fatal(err)
	}
	if err := c16.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got32 := make([]float32, len(keys))
	got16 := make([]float32, len(keys))
	if err := c32.PullSparse(ctx, "m", keys, got32); err != nil {
		t.Fatal(err)
	}
	if err := c16.PullSparse(ctx, "m", keys, got16); err != nil {
		t.Fatal(err)
	}
	for i, g := range grads {
		want := -f16to32(f32to16(clampHalf(g))) // sgd, lr 1, from 0
		if got32[i] != want {
			t.Errorf("w[%d] = %v, want %v (the float16 gradient)", keys[i], got32[i], want)
		}
		if got16[i] != f16to32(f32to16(want)) {
			t.Errorf("float16 pull of w[%d] = %v, want %v", keys[i], got16[i], want)
		}
	}
	if got32[4] != -65504 {
		t.Errorf("70000 was not clamped to 65504: %v", got32[4])
	}
}
