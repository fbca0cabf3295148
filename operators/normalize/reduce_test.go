package normalize_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/normalize"
	"github.com/stratus-ml/stratus/psstore"
)

// failFirstScale reports the first finished attempt of scale task 0 as
// failed, after it merged its statistics, so the executor runs it again.
type failFirstScale struct {
	executor.Backend
	mu            sync.Mutex
	done, retried bool
}

func (f *failFirstScale) Invoke(ctx context.Context, t *operators.Task) (*operators.Result, executor.Usage, error) {
	res, u, err := f.Backend.Invoke(ctx, t)
	if t.Kind != normalize.KindScale || t.Index != 0 || err != nil {
		return res, u, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.done {
		f.done = true
		return nil, u, errors.New("injected: the result of a finished attempt is lost")
	}
	f.retried = true
	return res, u, err
}

// normalize's statistics reduced through psstore (a scale task retried
// after it merged) equal those reduced from the tasks' blob copies, and
// the store's keys are gone after the stage.
func TestNormalizeStatsReducedInPSStore(t *testing.T) {
	src := fmt.Sprintf(`
load "heart" {
  source = %q
  split  = { test = 0.3, seed = 4 }
}
normalize "z" {
  input  = load.heart
  method = "standard"
  center = true
}
`, testdata(t, "heart_scale"))
	plain := runtimetest.New(t, src)
	plain.MustApply()
	want := plain.Output("normalize.z")

	lc, err := psstore.StartLocal(context.Background(), 2, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lc.Close() })
	h := runtimetest.New(t, src)
	t.Setenv(operators.EnvStatsReduce, "psstore")
	h.Env.PSStore, h.Env.Token = lc.Addrs(), lc.Token()
	h.Retries = 2
	f := &failFirstScale{}
	h.Wrap = func(b executor.Backend) executor.Backend { f.Backend = b; return f }
	_, rec := h.MustApply()
	if !f.retried {
		t.Fatal("scale task 0 was not retried")
	}
	reduced := false
	for _, n := range rec.Notes("normalize.z") {
		reduced = reduced || strings.Contains(n, "statistics reduced in psstore")
	}
	if !reduced {
		t.Fatalf("no note that the statistics were reduced in psstore: %q", rec.Notes("normalize.z"))
	}
	got := h.Output("normalize.z")
	for _, ds := range []string{"train", "test"} {
		wm, gm := plain.Dataset(want.GetAttr(ds)), h.Dataset(got.GetAttr(ds))
		if gm.Rows != wm.Rows || gm.NNZ != wm.NNZ || len(gm.Partitions) != len(wm.Partitions) {
			t.Errorf("%s: %d rows %d nnz %d partitions, want %d %d %d", ds, gm.Rows, gm.NNZ, len(gm.Partitions), wm.Rows, wm.NNZ, len(wm.Partitions))
		}
		wb, _ := plain.Stats(wm).MarshalBinary()
		gb, _ := h.Stats(gm).MarshalBinary()
		if !bytes.Equal(wb, gb) {
			t.Errorf("%s: the statistics reduced in psstore differ from the coordinator's", ds)
		}
	}
	cl, err := psstore.Dial(context.Background(), lc.Addrs(), psstore.WithToken(lc.Token()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if keys, err := cl.List(context.Background(), "stratus/stats/"); err != nil || len(keys) > 0 {
		t.Errorf("after the stages psstore holds %d statistics keys (%v), want none", len(keys), err)
	}
}
