package psstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestPushWindow: pushes never wait for acknowledgements until the window
// is full. The shard's model is held locked (as if it were slow), so no push
// can be applied: the first `window` pushes still return at once, the next
// one waits (and gives up with its context), Flush waits, and once the shard
// resumes everything queued is applied.
func TestPushWindow(t *testing.T) {
	for _, window := range []int{1, 2, 5} {
		t.Run(fmt.Sprintf("window=%d", window), func(t *testing.T) {
			lc, c0 := startCluster(t, 1)
			ctx := testCtx(t)
			if err := c0.CreateModel(ctx, ModelSpec{Name: "m", Dim: 10, LearningRate: 1}); err != nil {
				t.Fatal(err)
			}
			c := dial(t, lc.Addrs(), lc.Token(), WithPushWindow(window))
			m, err := lc.Servers()[0].model("m")
			if err != nil {
				t.Fatal(err)
			}
			m.snapMu.Lock() // stall every push on the shard
			locked := true
			defer func() {
				if locked {
					m.snapMu.Unlock()
				}
			}()
			for i := range window {
				short, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := c.PushSparse(short, "m", []uint64{1}, []float32{1})
				cancel()
				if err != nil {
					t.Fatalf("push %d of a window of %d waited: %v", i, window, err)
				}
			}
			short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			err = c.PushSparse(short, "m", []uint64{1}, []float32{1})
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("push beyond the window: %v, want a deadline error", err)
			}
			short, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
			err = c.Flush(short)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Flush while the shard is stalled: %v", err)
			}
			m.snapMu.Unlock()
			locked = false
			if err := c.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			w := make([]float32, 1)
			if err := c.PullSparse(ctx, "m", []uint64{1}, w); err != nil || w[0] != -float32(window) {
				t.Fatalf("w[1] = %v, %v; want %d pushes applied", w[0], err, window)
			}
			// And the window keeps working afterwards.
			for range 3 * window {
				if err := c.PushSparse(ctx, "m", []uint64{2}, []float32{1}); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.PullSparse(ctx, "m", []uint64{2}, w); err != nil || w[0] != -float32(3*window) {
				t.Fatalf("w[2] = %v, %v", w[0], err)
			}
		})
	}
}
