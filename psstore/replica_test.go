package psstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReplicaFailover: three shard processes, every key range on two of
// them. A shard is killed (SIGKILL) while a client pushes and pulls
// continuously: the client never sees an error, reads of the dead shard's
// keys are answered by its replica, a write waits for the shard to come
// back (an acknowledged write is on both copies), a client dialled while
// it is down works (fails over from the start), and once the shard is
// back its slices, which lost updates, are left alone by this client and
// by a new one — the model as a whole lost nothing.
func TestReplicaFailover(t *testing.T) {
	grpcOnly(t) // shards in other processes, or the network itself
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
		if c.partFor(k) == 1 {
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
	// A new client starts while the shard is down, and works.
	late := dial(t, addrs, token, WithReplicas(2))
	if err := late.PullSparse(ctx, "m", keys, make([]float32, len(keys))); err != nil {
		t.Fatalf("a client dialled while a shard was down: pull: %v", err)
	}
	if v, err := late.Get(ctx, onOne); err != nil || string(v) != "before" {
		t.Fatalf("a client dialled while a shard was down: get: %q %v", v, err)
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

// proxy forwards TCP connections to a shard, and can cut them all, as a
// network partition between one client and one shard would.
type proxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	lis    net.Listener
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, addr: "127.0.0.1:0", target: target}
	p.open()
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) open() {
	lis, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.lis, p.addr = lis, lis.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
}

// cut closes the listener and every forwarded connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lis != nil {
		p.lis.Close()
		p.lis = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestFenceAfterFailover: a client cut off from one shard (the shard itself
// stays up, other clients still reach it) fails over to the other copies
// and stops pushing to that shard's slices; when it can reach the shard
// again it fences those slices off, so that no other client reads a copy
// that missed its pushes. Both clients then see the same model.
func TestFenceAfterFailover(t *testing.T) {
	lc, direct := startCluster(t, 2)
	ctx := testCtx(t)
	p0, p1 := newProxy(t, lc.Addrs()[0]), newProxy(t, lc.Addrs()[1])
	cut := dial(t, []string{p0.addr, p1.addr}, lc.Token(), WithReplicas(2), WithRetry(RetryPolicy{Wait: -1}))
	if err := direct.CreateModel(ctx, ModelSpec{Name: "m", Dim: 100, LearningRate: 1}); err != nil {
		t.Fatal(err)
	}
	keys := []uint64{0, 1} // partition 0 and 1
	work := func(c *Client, n int) {
		t.Helper()
		dst := make([]float32, 2)
		for range n {
			if err := c.PullSparse(ctx, "m", keys, dst); err != nil {
				t.Fatal(err)
			}
			if err := c.PushSparse(ctx, "m", keys, []float32{1, 1}); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	work(cut, 10)
	p1.cut()
	work(cut, 10) // fails over: partition 1 from its replica on shard 0
	work(direct, 10)
	p1.open() // the same address again: the client's fence lands
	for {
		ms, err := direct.ListModels(ctx, "m")
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 1 && len(ms[0].Degraded()) == 2 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The shard's slices are fenced off for every client: both read the
	// copies on shard 0, which have every push.
	for name, c := range map[string]*Client{"cut": cut, "direct": direct} {
		w, err := c.PullDense(ctx, "m")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if w[0] != -30 || w[1] != -30 {
			t.Fatalf("%s reads w[0] = %v, w[1] = %v; want -30 (30 pushes)", name, w[0], w[1])
		}
		st, err := c.ModelStats(ctx, "m")
		if err != nil || st.Lost != "" || st.Shards[1].Shard != 0 {
			t.Fatalf("%s: partition 1 served by %+v (%v)", name, st.Shards, err)
		}
	}
}
