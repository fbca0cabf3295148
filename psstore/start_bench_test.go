package psstore

import (
	"context"
	"testing"
	"time"
)

// BenchmarkStartLocal is the fixed cost of the embedded default's shards:
// start two on a fresh data directory, dial them, create a small model,
// push once and close (checkpointing it), as one small apply does.
func BenchmarkStartLocal(b *testing.B) {
	var start, dial, work, stop time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		lc, err := StartLocal(context.Background(), 2, b.TempDir(), "", func(o *ServerOptions) { o.Logf = func(string, ...any) {} })
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		c, err := Dial(context.Background(), lc.Addrs(), WithToken(lc.Token()), WithReplicas(1))
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		ctx := context.Background()
		if err := c.CreateModel(ctx, ModelSpec{Name: "m", Dim: 124, LearningRate: 0.1}); err != nil {
			b.Fatal(err)
		}
		if err := c.PushSparse(ctx, "m", []uint64{1, 2}, []float32{1, 1}); err != nil {
			b.Fatal(err)
		}
		if err := c.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		c.Close()
		if err := lc.Close(); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		start, dial, work, stop = start+t1.Sub(t0), dial+t2.Sub(t1), work+t3.Sub(t2), stop+t4.Sub(t3)
	}
	n := float64(b.N) * 1e6
	b.ReportMetric(float64(start)/n, "start-ms")
	b.ReportMetric(float64(dial)/n, "dial-ms")
	b.ReportMetric(float64(work)/n, "create+push-ms")
	b.ReportMetric(float64(stop)/n, "close-ms")
}
