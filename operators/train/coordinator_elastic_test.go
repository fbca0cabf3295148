package train

import (
	"testing"

	"github.com/stratus-ml/stratus/dataset/prefetch"
)

// TestRemainder checks what a worker segment hands the next: the epoch the
// slowest worker was in and exactly the rows of it no worker had read, so that
// a change of the worker count neither skips nor repeats rows of that epoch.
func TestRemainder(t *testing.T) {
	parts := []PartRef{{Key: "p0", Rows: 1000}, {Key: "p1", Rows: 1000}}
	units := makeUnits(parts, 4, 10)
	pool := &workerPool{units: units, params: workerParams{Seed: 7, Epochs: 5}, plan: segmentPlan{Workers: 3}}
	rows := func(us []prefetch.Unit) map[string]map[int]bool {
		out := map[string]map[int]bool{}
		for _, u := range us {
			hi := u.Hi
			if hi < 0 {
				hi = 1000
			}
			if out[u.Key] == nil {
				out[u.Key] = map[int]bool{}
			}
			for r := u.Lo; r < hi; r++ {
				out[u.Key][r] = true
			}
		}
		return out
	}
	// Each worker of three stopped partway through epoch 2: worker i after
	// i units and 3 rows into the next.
	const epoch = 2
	var outs []workerResult
	read := map[string]map[int]bool{"p0": {}, "p1": {}}
	for i := range 3 {
		mine := deal(units, 7, epoch, i, 3)
		pos := position{Epoch: epoch, Unit: i, Row: mine[i].Lo + 3}
		for key, rs := range rows(mine[:i]) {
			for r := range rs {
				read[key][r] = true
			}
		}
		for r := mine[i].Lo; r < mine[i].Lo+3; r++ {
			read[mine[i].Key][r] = true
		}
		outs = append(outs, workerResult{Rescaled: true, Position: pos})
	}
	e, rest, err := pool.remainder(t.Context(), outs)
	if err != nil || e != epoch {
		t.Fatalf("next segment starts at epoch %d (%v); want %d", e, err, epoch)
	}
	left := rows(rest)
	for _, key := range []string{"p0", "p1"} {
		for r := range 1000 {
			if read[key][r] == left[key][r] {
				t.Fatalf("%s row %d: read %v, in the remainder %v; want exactly one", key, r, read[key][r], left[key][r])
			}
		}
	}

	// Every worker done with its share: the next segment starts at the next epoch.
	var done []workerResult
	for i := range 3 {
		done = append(done, workerResult{Rescaled: true, Position: position{Epoch: epoch, Unit: len(deal(units, 7, epoch, i, 3))}})
	}
	if e, rest, _ := pool.remainder(t.Context(), done); e != epoch+1 || rest != nil {
		t.Errorf("all done: epoch %d with %d units; want %d and none", e, len(rest), epoch+1)
	}
	// Some worker in a later epoch: the earliest epoch wins.
	mixed := append([]workerResult{{Rescaled: true, Position: position{Epoch: epoch + 1}}}, outs[1:]...)
	if e, _, _ := pool.remainder(t.Context(), mixed); e != epoch {
		t.Errorf("mixed epochs: %d; want the earliest, %d", e, epoch)
	}
	// Training over: the epochs are done.
	if e, _, _ := pool.remainder(t.Context(), []workerResult{{Position: position{Epoch: 5}}}); e != 5 {
		t.Errorf("finished: epoch %d; want 5", e)
	}
}
