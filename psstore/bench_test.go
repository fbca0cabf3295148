package psstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPullPush is the workload of the performance target: each of 4
// concurrent clients repeatedly pulls 2,000 random keys out of 2^20 and
// pushes a gradient for the same keys (adagrad on the shards), float32
// values, to 1, 2 or 4 shards started in this process, with one copy of
// every key range or two (replicas=2: every push goes to two shards, the
// same work twice over on 2 cores), over each transport: transport=grpc
// (loopback gRPC, what remote shards and functions use) and then
// transport=inproc (the shards called directly, the embedded default). One
// op is one pull + push by one client. Reported: p50/p99 latency of a pull
// + push as the worker sees it (the push is asynchronous: its cost is
// queueing it), and keys/s = 2,000 x ops/s across the clients (every key is
// both pulled and pushed). The clients' final Flush is inside the timing.
// The inproc run also reports grpc/inproc, the ratio of the two transports'
// p50 latencies measured in this run (higher is better for inproc).
func BenchmarkPullPush(b *testing.B) {
	for _, c := range []struct{ shards, replicas int }{{1, 1}, {2, 1}, {2, 2}, {4, 1}, {4, 2}} {
		var grpcP50 time.Duration
		for _, tr := range []Transport{TransportGRPC, TransportAuto} {
			name := "grpc"
			if tr == TransportAuto {
				name = "inproc"
			}
			b.Run(fmt.Sprintf("shards=%d/replicas=%d/transport=%s", c.shards, c.replicas, name), func(b *testing.B) {
				p50 := benchPullPush(b, c.shards, c.replicas, 4, 2000, 1<<20, tr)
				if tr == TransportGRPC {
					grpcP50 = p50
				} else if grpcP50 > 0 && p50 > 0 {
					b.ReportMetric(float64(grpcP50)/float64(p50), "grpc/inproc")
				}
			})
		}
	}
}

// benchPullPush runs the workload and returns the p50 latency of an op.
func benchPullPush(b *testing.B, shards, replicas, clients, batch int, dim uint64, tr Transport) time.Duration {
	lc, err := StartLocal(context.Background(), shards, b.TempDir(), "", func(o *ServerOptions) {
		o.CheckpointInterval = -1
	})
	if err != nil {
		b.Fatal(err)
	}
	defer lc.Close()
	ctx := context.Background()
	cs := make([]*Client, clients)
	for i := range cs {
		if cs[i], err = Dial(ctx, lc.Addrs(), WithToken(lc.Token()), WithReplicas(replicas), WithTransport(tr)); err != nil {
			b.Fatal(err)
		}
		if cs[i].InProcess() != (tr == TransportAuto) {
			b.Fatalf("transport %v: InProcess() = %v", tr, cs[i].InProcess())
		}
		defer cs[i].Close()
	}
	if err := cs[0].CreateModel(ctx, ModelSpec{Name: "bench", Dim: dim, Optimizer: "adagrad", LearningRate: 0.1}); err != nil {
		b.Fatal(err)
	}
	const sets = 64
	keySets := make([][][]uint64, clients)
	for c := range keySets {
		rng := rand.New(rand.NewPCG(uint64(c), 1))
		keySets[c] = make([][]uint64, sets)
		for s := range keySets[c] {
			ks := make([]uint64, batch)
			for i := range ks {
				ks[i] = rng.Uint64N(dim)
			}
			keySets[c][s] = ks
		}
	}
	grads := make([]float32, batch)
	for i := range grads {
		grads[i] = float32(i%7-3) * 0.01
	}
	// Warm up connections, pools and the shards' pages.
	for c, cl := range cs {
		dst := make([]float32, batch)
		for s := range 4 {
			if err := cl.PullSparse(ctx, "bench", keySets[c][s], dst); err != nil {
				b.Fatal(err)
			}
			if err := cl.PushSparse(ctx, "bench", keySets[c][s], grads); err != nil {
				b.Fatal(err)
			}
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	lats := make([][]time.Duration, clients)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c, cl := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]float32, batch)
			lat := make([]time.Duration, 0, b.N/clients+1)
			for i := 0; next.Add(1) <= int64(b.N); i++ {
				ks := keySets[c][i%sets]
				t0 := time.Now()
				if err := cl.PullSparse(ctx, "bench", ks, dst); err != nil {
					b.Error(err)
					return
				}
				if err := cl.PushSparse(ctx, "bench", ks, grads); err != nil {
					b.Error(err)
					return
				}
				lat = append(lat, time.Since(t0))
			}
			if err := cl.Flush(ctx); err != nil {
				b.Error(err)
			}
			lats[c] = lat
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lats...)
	if len(all) == 0 {
		return 0
	}
	slices.Sort(all)
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(b.N)*float64(batch)/elapsed.Seconds(), "keys/s")
	b.ReportMetric(0, "ns/op") // ns/op is per-op wall time / parallelism; the metrics above say it better
	return all[len(all)/2]
}
