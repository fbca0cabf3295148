package local_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/local"
	"github.com/stratus-ml/stratus/executor/testops"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/taskenv"
)

// BenchmarkLocalNoop measures the backend's per-task overhead: JSON round trip of
// Task and Result, environment, dispatch, goroutine. The task is test.sum of no
// values, which does nothing. "serial" is one task at a time (latency); "slots"
// keeps every slot busy (throughput). ns/op is wall time per task.
func BenchmarkLocalNoop(b *testing.B) {
	reg := operators.MustRegistry(testops.Operators()...)
	be := local.New(reg, taskenv.New(), local.Options{})
	defer be.Close()
	b.Run("serial", func(b *testing.B) { benchNoop(b, be, 1) })
	b.Run("slots", func(b *testing.B) { benchNoop(b, be, be.Slots()) })
}

// benchNoop runs b.N no-op tasks through be from workers goroutines.
func benchNoop(b *testing.B, be executor.Backend, workers int) {
	tk := operators.Task{Stage: "bench.noop", Operator: "test_mapreduce", Kind: "test.sum", Wave: "w", OutputPrefix: "tasks/bench/", Deadline: time.Now().Add(time.Hour)}
	if err := tk.SetParams(map[string][]int{"values": {}}); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	b.ReportAllocs()
	b.ResetTimer()
	began := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := tk
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				t.Index = int(i)
				if _, _, err := be.Invoke(context.Background(), &t); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "tasks/s")
}
