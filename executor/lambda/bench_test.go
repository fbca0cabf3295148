package lambda_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/executor"
	lambdabe "github.com/stratus-ml/stratus/executor/lambda"
	"github.com/stratus-ml/stratus/executor/lambda/lambdatest"
	"github.com/stratus-ml/stratus/operators"
)

// noop is a task that does nothing: test.sum of no values.
func noop(b *testing.B) operators.Task {
	tk := operators.Task{Stage: "bench.noop", Operator: "test_mapreduce", Kind: "test.sum", Wave: "w", OutputPrefix: "tasks/bench/", Deadline: time.Now().Add(time.Hour)}
	if err := tk.SetParams(map[string][]int{"values": {}}); err != nil {
		b.Fatal(err)
	}
	return tk
}

// BenchmarkLambdaNoop measures the per-task overhead of the lambda backend: an
// SDK Invoke round trip through the Runtime Interface Emulator into the function
// process and back, warm (each emulator is invoked once before timing). With one
// emulator ns/op is the round trip; with four, the wall time per task with every
// endpoint busy. Compare BenchmarkLocalNoop in executor/local.
func BenchmarkLambdaNoop(b *testing.B) {
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("emulators=%d", n), func(b *testing.B) {
			be, _ := emulators(b, n, lambdatest.Options{})
			tk := noop(b)
			var wg sync.WaitGroup
			for range n { // warm every endpoint: the first invoke starts the function
				wg.Add(1)
				go func() {
					defer wg.Done()
					t := tk
					if _, _, err := be.Invoke(context.Background(), &t); err != nil {
						b.Error(err)
					}
				}()
			}
			wg.Wait()
			benchNoop(b, be, tk, be.Slots())
		})
	}
}

// BenchmarkLambdaColdInvoke measures the first invocation of a fresh emulator:
// starting the function process (init) plus the round trip. Emulator start-up is
// not timed.
func BenchmarkLambdaColdInvoke(b *testing.B) {
	tk := noop(b)
	boot := lambdatest.Build(b, lambdatest.TestBootstrap)
	var timed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ems := lambdatest.Start(b, boot, 1, lambdatest.Options{})
		be, err := lambdabe.New(context.Background(), lambdabe.Options{Endpoints: lambdatest.URLs(ems)})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		began := time.Now()
		if _, _, err := be.Invoke(context.Background(), &tk); err != nil {
			b.Fatal(err)
		}
		timed += time.Since(began)
		b.StopTimer()
		be.Close()
		ems[0].Stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(timed.Microseconds())/float64(b.N)/1000, "ms/cold-invoke")
}

// benchNoop runs b.N copies of tk through be from workers goroutines.
func benchNoop(b *testing.B, be executor.Backend, tk operators.Task, workers int) {
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
