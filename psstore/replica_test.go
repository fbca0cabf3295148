package psstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReplicaFailover: three shard processes, every key range on two of
// them. A shard is killed (SIGKILL) while a client pushes and pulls
// continuously: the client never sees an error, reads of the dead shard's
// keys are answered by its replica, a write waits for the shard to come
// back (an acknowledged write is on both copies), and once the shard is
// back its slices, which lost updates, are left alone by this client and
// by a new one — the model as a whole lost nothing.
func TestReplicaFailover(t *testing.T) {
	const token = "t"
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	var procs []*childProc
	var addrs []string
	for _, d := range dirs {
		p := startChild(t, d, token, -1)
		procs = append(procs, p)
		addrs = append(addrs, p.addr)
	}
	ctx := testCtx(t)
	c := dial(t, addrs, token, WithReplicas(2))
	if c.Replicas() != 2 {
		t.Fatalf("Replicas() = %d", c.Replicas())
	}
	const dim = 3000
	if err := c.CreateModel(ctx, ModelSpec{Name: "m", Dim: dim, LearningRate: 1}); err != nil {
		t.Fatal(err)
	}
	var onOne string // a key on partition 1
	for i := 0; ; i++ {
		k := fmt.Sprintf("k%d", i)
		if c.shardFor(k).index == 1 {
			onOne = k
			break
		}
	}
	if err := c.Put(ctx, onOne, []byte("before")); err != nil {
		t.Fatal(err)
	}
	keys := make([]uint64, 300)
	for i := range keys {
		keys[i] = uint64(i * 10)
	}
	grads := make([]float32, len(keys))
	for i := range grads {
		grads[i] = 1
	}
	var pushes atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var loopErr error
	wg.Add(1)
	go func() { // a worker: pull, push, repeat
		defer wg.Done()
		dst := make([]float32, len(keys))
		for {
			select {
			case <-stop:
				loopErr = c.Flush(ctx)
				return
			default:
			}
			if err := c.PullSparse(ctx, "m", keys, dst); err != nil {
				loopErr = fmt.Errorf("pull after %d pushes: %w", pushes.Load(), err)
				return
			}
			if err := c.PushSparse(ctx, "m", keys, grads); err != nil {
				loopErr = fmt.Errorf("push after %d pushes: %w", pushes.Load(), err)
				return
			}
			pushes.Add(1)
		}
	}()
	for pushes.Load() < 200 {
		time.Sleep(time.Millisecond)
	}
	procs[1].kill()
	at := pushes.Load()
	for pushes.Load() < at+200 { // training goes on without shard 1
		time.Sleep(time.Millisecond)
	}
	if v, err := c.Get(ctx, onOne); err != nil || string(v) != "before" {
		t.Fatalf("read of a key whose primary is down: %q %v", v, err)
	}
	written := make(chan error, 1)
	before := c.retries.Load()
	go func() { written <- c.Put(ctx, onOne, []byte("after")) }()
	for c.retries.Load() == before { // the write waits for the dead copy
		time.Sleep(time.Millisecond)
	}
	procs[1] = startChildAt(t, addrs[1], dirs[1], token, -1)
	if err := <-written; err != nil {
		t.Fatalf("write while a copy was down: %v", err)
	}
	at = pushes.Load()
	for pushes.Load() < at+200 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if loopErr != nil {
		t.Fatalf("the worker saw an error: %v", loopErr)
	}
	total := pushes.Load()

	for name, cl := range map[string]*Client{"same client": c, "new client": dial(t, addrs, token, WithReplicas(2))} {
		st, err := cl.ModelStats(ctx, "m")
		if err != nil {
			t.Fatalf("%s: stats: %v", name, err)
		}
		if st.Lost != "" || st.Shards[1].Copy != 1 || st.Shards[1].Shard != 2 {
			t.Fatalf("%s: partition 1 is served by %+v (lost %q), want its replica on shard 2", name, st.Shards[1], st.Lost)
		}
		w, err := cl.PullDense(ctx, "m")
		if err != nil {
			t.Fatalf("%s: dense pull: %v", name, err)
		}
		// Every push reached every partition's serving copy: key 10 (partition
		// 1) moved by -1 per push, as key 0 (partition 0) did.
		if w[0] != -float32(total) || w[10] != -float32(total) {
			t.Fatalf("%s: w[0] = %v, w[10] = %v after %d pushes", name, w[0], w[10], total)
		}
		if v, err := cl.Get(ctx, onOne); err != nil || string(v) != "after" {
			t.Fatalf("%s: acknowledged write: %q %v", name, v, err)
		}
	}
	ms, err := c.ListModels(ctx, "")
	if err != nil || len(ms) != 1 || ms[0].Lost() != "" || len(ms[0].Degraded()) != 2 {
		t.Fatalf("ListModels: %v %+v", err, ms)
	}
	if err := c.DeleteModel(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	if ms, _ := c.ListModels(ctx, ""); len(ms) != 0 {
		t.Fatalf("after delete: %+v", ms)
	}
	if _, err := c.PullDense(ctx, "m"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("dense pull after delete: %v", err)
	}
}

// BenchmarkFailover measures the time from kill -9 of a shard to the first
// push acknowledged after it, with every key range on two shards
// (go test -run '^$' -bench Failover ./psstore/).
func BenchmarkFailover(b *testing.B) {
	const token = "t"
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dirs := []string{b.TempDir(), b.TempDir()}
		p0 := startChild(b, dirs[0], token, -1)
		p1 := startChild(b, dirs[1], token, -1)
		ctx := context.Background()
		c, err := Dial(ctx, []string{p0.addr, p1.addr}, WithToken(token), WithReplicas(2))
		if err != nil {
			b.Fatal(err)
		}
		if err := c.CreateModel(ctx, ModelSpec{Name: "m", Dim: 1000, LearningRate: 1}); err != nil {
			b.Fatal(err)
		}
		keys := []uint64{0, 1, 2, 3}
		push := func() error {
			if err := c.PushSparse(ctx, "m", keys, []float32{1, 1, 1, 1}); err != nil {
				return err
			}
			return c.Flush(ctx)
		}
		if err := push(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		p1.kill()
		for push() != nil {
		}
		total += time.Since(start)
		b.StopTimer()
		c.Close()
		p0.kill()
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs-to-push")
	b.ReportMetric(0, "ns/op")
}
