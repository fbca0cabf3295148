package load

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/manifest"
)

func TestTaskCount(t *testing.T) {
	for _, c := range []struct {
		total           int64
		capacity, tasks int
		want            int
	}{
		{0, 8, 0, 0},
		{0, 8, 5, 0},
		{1000, 8, 0, 1},                      // small: one task
		{MinTaskBytes * 10, 8, 0, 10},        // 32 MiB each
		{MinTaskBytes*10 + 1, 8, 0, 11},      //
		{MinTaskBytes * 1000, 8, 0, 32},      // 4 tasks per slot
		{MinTaskBytes * 1000, 1000, 0, 1000}, // a big backend: 32 MiB each
		{1000, 8, 7, 7},                      // tasks wins
		{5, 8, 7, 5},                         // but not more than bytes
	} {
		if got := taskCount(c.total, c.capacity, c.tasks); got != c.want {
			t.Errorf("taskCount(%d, %d, %d) = %d, want %d", c.total, c.capacity, c.tasks, got, c.want)
		}
	}
}

// TestCut checks that shares tile the objects exactly, in order, with
// sizes within one byte of each other.
func TestCut(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 300; trial++ {
		sizes := make([]int64, 1+r.IntN(6))
		var total int64
		for i := range sizes {
			if r.IntN(4) > 0 {
				sizes[i] = int64(r.IntN(1000))
			}
			total += sizes[i]
		}
		n := 1 + r.IntN(40)
		shares := cut(sizes, n)
		if total == 0 {
			if shares != nil {
				t.Fatalf("sizes %v: shares %v for no bytes", sizes, shares)
			}
			continue
		}
		next := make([]int64, len(sizes)) // next expected start per object
		lastObj := 0
		var covered int64
		for k, sh := range shares {
			var size int64
			for _, sp := range sh {
				if sp.obj < lastObj || sp.start != next[sp.obj] || sp.end <= sp.start || sp.end > sizes[sp.obj] {
					t.Fatalf("sizes %v n %d: share %d span %+v out of order or empty", sizes, n, k, sp)
				}
				next[sp.obj], lastObj = sp.end, sp.obj
				size += sp.end - sp.start
			}
			if lo, hi := total/int64(n), (total+int64(n)-1)/int64(n); size < lo || size > hi {
				t.Fatalf("sizes %v n %d: share %d has %d bytes, want %d..%d", sizes, n, k, size, lo, hi)
			}
			covered += size
		}
		for i := range sizes {
			if next[i] != sizes[i] {
				t.Fatalf("sizes %v n %d: object %d covered to %d", sizes, n, i, next[i])
			}
		}
		if len(shares) != n || covered != total {
			t.Fatalf("sizes %v n %d: %d shares cover %d bytes", sizes, n, len(shares), covered)
		}
	}
}

// TestRowHash pins the split hash: changing it silently would change every
// split (bump SplitHash instead).
func TestRowHash(t *testing.T) {
	r := dataset.Row{Label: 1, Indices: []uint32{3, 17, 1 << 20}, Values: []float32{1, 0.5, -2}}
	if got := fmt.Sprintf("%016x", RowHash(1, &r)); got != "fb7bd394024b23b7" {
		t.Errorf("RowHash(1, row) = %s: the split hash changed; bump SplitHash and update this value", got)
	}
	a, b := RowHash(1, &r), RowHash(2, &r)
	c := r.Clone()
	c.Values[1] = 0.25
	if a == b || a == RowHash(1, &c) || a != RowHash(1, &r) {
		t.Error("RowHash ignores the seed or the values, or is not deterministic")
	}
	// About the right fractions go to test and validation, and adding a
	// validation fraction leaves the test set as it was.
	s := newSplitter(&splitSpec{Test: 0.25, Seed: 9})
	sv := newSplitter(&splitSpec{Test: 0.25, Validation: 0.1, Seed: 9})
	test, val := 0, 0
	for i := 0; i < 40000; i++ {
		row := dataset.Row{Label: float32(i % 2), Indices: []uint32{uint32(i)}, Values: []float32{1}}
		a, b := s.dataset(&row), sv.dataset(&row)
		if a == manifest.Test {
			test++
		}
		if b == manifest.Validation {
			val++
		}
		if (a == manifest.Test) != (b == manifest.Test) || a == manifest.Validation {
			t.Fatalf("row %d: %q without validation, %q with it", i, a, b)
		}
	}
	if test < 9600 || test > 10400 {
		t.Errorf("%d of 40000 rows in test, want about 10000", test)
	}
	if val < 3700 || val > 4300 {
		t.Errorf("%d of 40000 rows in validation, want about 4000", val)
	}
}

// TestCutWhole checks that shares tile the objects in order, that a whole
// object is never cut, and that several compressed files spread over tasks
// while one is a single task.
func TestCutWhole(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 300; trial++ {
		sizes := make([]int64, 1+r.IntN(6))
		whole := make([]bool, len(sizes))
		for i := range sizes {
			sizes[i] = int64(r.IntN(100))
			whole[i] = r.IntN(2) == 0
		}
		n := 1 + r.IntN(8)
		shares := cutWhole(sizes, whole, n)
		next := make([]int64, len(sizes)) // next uncovered byte of each object
		obj := 0
		for _, sh := range shares {
			if len(sh) == 0 {
				t.Fatalf("sizes %v whole %v n %d: an empty share", sizes, whole, n)
			}
			for _, sp := range sh {
				if sp.obj < obj || sp.start != next[sp.obj] || sp.end <= sp.start {
					t.Fatalf("sizes %v whole %v n %d: share %v out of order", sizes, whole, n, sh)
				}
				if whole[sp.obj] && (sp.start != 0 || sp.end != sizes[sp.obj]) {
					t.Fatalf("sizes %v whole %v n %d: whole object %d cut: %v", sizes, whole, n, sp.obj, sp)
				}
				obj, next[sp.obj] = sp.obj, sp.end
			}
		}
		for i := range sizes {
			if next[i] != sizes[i] {
				t.Fatalf("sizes %v whole %v n %d: object %d covered to %d", sizes, whole, n, i, next[i])
			}
		}
		if len(shares) > n {
			t.Fatalf("sizes %v whole %v n %d: %d shares", sizes, whole, n, len(shares))
		}
	}
	if got := len(cutWhole([]int64{100, 100, 100, 100}, []bool{true, true, true, true}, 4)); got != 4 {
		t.Errorf("4 compressed files, 4 tasks: %d shares", got)
	}
	if got := len(cutWhole([]int64{400}, []bool{true}, 4)); got != 1 {
		t.Errorf("1 compressed file, 4 tasks: %d shares", got)
	}
}
