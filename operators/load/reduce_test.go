package load_test

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
	"github.com/stratus-ml/stratus/operators/load"
	"github.com/stratus-ml/stratus/psstore"
)

// failAfter lets the first attempt of one parse task run to its end (its
// statistics merged into psstore) and then reports it failed, so the
// executor runs the task again.
type failAfter struct {
	executor.Backend
	task    int
	mu      sync.Mutex
	done    bool
	retried bool
}

func (f *failAfter) Invoke(ctx context.Context, t *operators.Task) (*operators.Result, executor.Usage, error) {
	res, u, err := f.Backend.Invoke(ctx, t)
	if t.Kind != load.KindParse || t.Index != f.task || err != nil {
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

// loadPipeline loads a source in 5 tasks and a test source.
func loadPipeline(train, test string) string {
	return fmt.Sprintf(`
load "d" {
  source      = %q
  test_source = %q
  tasks       = 5
}
`, train, test)
}

// The statistics that load's tasks reduce through psstore's merges equal,
// byte for byte, those the coordinator reduces from the tasks' blob copies,
// with a task whose finished attempt merged and was then retried (its
// statistics count once); the store's keys are gone after the stage. On
// a9a (entries of 1) and heart_scale (real values, whose sums only an exact
// reduction makes independent of the order of the merges).
func TestLoadStatsReducedInPSStore(t *testing.T) {
	for _, c := range []struct{ name, train, test string }{
		{"a9a", "a9a", "a9a.t"},
		{"heart_scale", "heart_scale", "heart_scale"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := loadPipeline(testdata(t, c.train), testdata(t, c.test))

			plain := runtimetest.New(t, src)
			plain.MustApply()
			want := plain.Output("load.d")

			lc, err := psstore.StartLocal(context.Background(), 2, t.TempDir(), "")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { lc.Close() })
			h := runtimetest.New(t, src)
			t.Setenv(operators.EnvStatsReduce, "psstore")
			h.Env.PSStore, h.Env.Token = lc.Addrs(), lc.Token()
			h.Retries = 2
			fa := &failAfter{task: 1}
			h.Wrap = func(b executor.Backend) executor.Backend { fa.Backend = b; return fa }
			_, rec := h.MustApply()
			if !fa.retried {
				t.Fatal("parse task 1 was not retried")
			}
			if !hasNote(rec.Notes("load.d"), "statistics reduced in psstore") {
				t.Fatalf("no note that the statistics were reduced in psstore; notes: %q", rec.Notes("load.d"))
			}
			got := h.Output("load.d")
			for _, ds := range []string{"train", "test"} {
				wm, gm := plain.Dataset(want.GetAttr(ds)), h.Dataset(got.GetAttr(ds))
				if gm.Rows != wm.Rows || gm.NNZ != wm.NNZ || gm.Positives != wm.Positives || gm.Features != wm.Features || len(gm.Partitions) != len(wm.Partitions) {
					t.Errorf("%s: %d rows %d nnz %d+ %d features %d partitions, want %d %d %d %d %d", ds,
						gm.Rows, gm.NNZ, gm.Positives, gm.Features, len(gm.Partitions), wm.Rows, wm.NNZ, wm.Positives, wm.Features, len(wm.Partitions))
				}
				wb, _ := plain.Stats(wm).MarshalBinary()
				gb, _ := h.Stats(gm).MarshalBinary()
				if !bytes.Equal(wb, gb) {
					t.Errorf("%s: the statistics reduced in psstore differ from the coordinator's", ds)
				}
				if gs := h.Stats(gm); gs.Rows != gm.Rows {
					t.Errorf("%s: statistics over %d rows, the manifest has %d", ds, gs.Rows, gm.Rows)
				}
			}
			cl, err := psstore.Dial(context.Background(), lc.Addrs(), psstore.WithToken(lc.Token()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if keys, err := cl.List(context.Background(), "stratus/stats/"); err != nil || len(keys) > 0 {
				t.Errorf("after the stage psstore holds %d statistics keys (%v), want none", len(keys), err)
			}
		})
	}
}

// Without psstore the stage reduces from the blob copies, as before.
func TestLoadStatsWithoutPSStore(t *testing.T) {
	h := runtimetest.New(t, loadPipeline(testdata(t, "heart_scale"), testdata(t, "heart_scale")))
	_, rec := h.MustApply()
	if hasNote(rec.Notes("load.d"), "statistics reduced in psstore") {
		t.Error("a stage without psstore says it reduced in psstore")
	}
}

func hasNote(notes []string, s string) bool {
	for _, n := range notes {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}
