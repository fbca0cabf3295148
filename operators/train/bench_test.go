package train

import (
	"bytes"
	"context"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/blob/fileblob"
	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/partition"
	"github.com/stratus-ml/stratus/dataset/prefetch"
	"github.com/stratus-ml/stratus/psstore"
)

// paperIteration is the Cirrus prototype's time per SGD iteration per worker
// (Carreira et al., 2018): the reference the benchmark prints its figures against.
const paperIteration = 500 * time.Microsecond

// BenchmarkIteration measures one worker iteration as the train worker does it —
// next minibatch from the prefetching iterator, pull its weights from psstore,
// compute the logistic-loss gradient, push it asynchronously — for minibatches
// of 100 rows with 40 non-zeros each out of 2^20 features, against two shards
// started in this process, over each transport: transport=grpc (loopback gRPC)
// and transport=inproc (the shards called directly, as the embedded default
// does). It reports p50, p99 and the per-phase means, the ratio of p50 to the
// paper's 500 µs, and for inproc the ratio of the gRPC p50 measured in the
// same run to its own.
func BenchmarkIteration(b *testing.B) {
	var grpcP50 time.Duration
	for _, tr := range []psstore.Transport{psstore.TransportGRPC, psstore.TransportAuto} {
		name := map[psstore.Transport]string{psstore.TransportGRPC: "grpc", psstore.TransportAuto: "inproc"}[tr]
		b.Run("transport="+name, func(b *testing.B) {
			p50 := benchIteration(b, tr)
			if tr == psstore.TransportGRPC {
				grpcP50 = p50
			} else if grpcP50 > 0 && p50 > 0 {
				b.ReportMetric(float64(grpcP50)/float64(p50), "grpc/inproc")
			}
		})
	}
}

func benchIteration(b *testing.B, tr psstore.Transport) time.Duration {
	ctx := context.Background()
	lc, err := psstore.StartLocal(ctx, 2, b.TempDir(), "")
	if err != nil {
		b.Fatal(err)
	}
	defer lc.Close()
	ps, err := psstore.Dial(ctx, lc.Addrs(), psstore.WithToken(lc.Token()), psstore.WithReplicas(1), psstore.WithTransport(tr)) // as the local backend dials its in-process shards
	if err != nil {
		b.Fatal(err)
	}
	defer ps.Close()
	const dim = 1<<20 + 1
	if err := ps.CreateModel(ctx, psstore.ModelSpec{Name: "bench", Dim: dim, Optimizer: "adagrad", LearningRate: 0.05}); err != nil {
		b.Fatal(err)
	}
	// Eight partitions of 10,000 rows, Zipf-distributed features as in click logs.
	st, _ := fileblob.New(b.TempDir())
	rng := rand.New(rand.NewPCG(1, 2))
	zipf := rand.NewZipf(rng, 1.1, 1, dim-2)
	var keys []string
	for p := 0; p < 8; p++ {
		rows := make([]dataset.Row, 10000)
		for i := range rows {
			seen := map[uint32]bool{}
			for len(rows[i].Indices) < 40 {
				f := uint32(zipf.Uint64())
				if !seen[f] {
					seen[f] = true
					rows[i].Indices = append(rows[i].Indices, f)
				}
			}
			sort.Slice(rows[i].Indices, func(a, c int) bool { return rows[i].Indices[a] < rows[i].Indices[c] })
			rows[i].Values = make([]float32, 40)
			for k := range rows[i].Values {
				rows[i].Values[k] = 1
			}
			rows[i].Label = float32(rng.IntN(2))
		}
		data, err := partition.Encode(rows)
		if err != nil {
			b.Fatal(err)
		}
		key := partition.KeyFor("bench/", p)
		if err := st.Put(ctx, key, bytesReader(data)); err != nil {
			b.Fatal(err)
		}
		keys = append(keys, key)
	}
	mb := newMinibatch(dim)
	hist := newHistogram()
	var ph phases
	it := prefetch.New(ctx, st, prefetch.Units(keys), prefetch.Options{Minibatch: 100})
	next := func() partition.Batch {
		bt, err := it.Next()
		if err != nil { // wrap around
			it.Close()
			it = prefetch.New(ctx, st, prefetch.Units(keys), prefetch.Options{Minibatch: 100})
			bt, err = it.Next()
			if err != nil {
				b.Fatal(err)
			}
		}
		return bt
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		bt := next()
		t1 := time.Now()
		mb.build(bt)
		if err := ps.PullSparse(ctx, "bench", mb.keys, mb.w); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		mb.gradient(bt)
		t3 := time.Now()
		if err := ps.PushSparse(ctx, "bench", mb.keys, mb.g); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		ph.add(phases{Get: t1.Sub(t0), Pull: t2.Sub(t1), Compute: t3.Sub(t2), Push: t4.Sub(t3)})
		hist.add(t4.Sub(t0))
	}
	if err := ps.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	it.Close()
	n := float64(b.N)
	p50 := hist.quantile(0.5)
	b.ReportMetric(us(p50), "p50-µs")
	b.ReportMetric(us(hist.quantile(0.99)), "p99-µs")
	b.ReportMetric(float64(ph.Get)/n/1e3, "get-µs")
	b.ReportMetric(float64(ph.Pull)/n/1e3, "pull-µs")
	b.ReportMetric(float64(ph.Compute)/n/1e3, "compute-µs")
	b.ReportMetric(float64(ph.Push)/n/1e3, "push-µs")
	b.ReportMetric(float64(p50)/float64(paperIteration), "p50/paper")
	return p50
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
