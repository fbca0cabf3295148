package load_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/dataset/gen"
	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/load"
	"github.com/stratus-ml/stratus/psstore"
)

// benchRows sets the generated input's size: STRATUS_BENCH_ROWS rows
// (default 300,000, about 100 MB of hashed LIBSVM).
func benchRows() int64 {
	if s := os.Getenv("STRATUS_BENCH_ROWS"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 300000
}

var (
	benchOnce sync.Once
	benchFile string
	benchDir  string
)

func benchInput(b *testing.B) string {
	benchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stratus-load-bench")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = dir
		benchFile = filepath.Join(dir, "criteo.svm")
		f, err := os.Create(benchFile)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := gen.Generate(context.Background(), f, gen.Config{Rows: benchRows(), Seed: 1, Format: gen.FormatLIBSVM}); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	})
	if benchFile == "" {
		b.Fatal("no benchmark input")
	}
	return benchFile
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLoadStage applies a load stage over generated hashed LIBSVM on
// the local backend (as `stratus apply` does, minus the CLI and the
// planner's source digest) and reports MB/s and MB per CPU-second — the
// parse rate per core, whatever else the machine runs.
func BenchmarkLoadStage(b *testing.B) {
	file := benchInput(b)
	info, err := os.Stat(file)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(info.Size())
	b.ReportAllocs()
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		h := runtimetest.New(b, fmt.Sprintf("load \"bench\" {\n  source = %q\n}\n", file))
		p := h.MustPlan()
		c0 := cpuTime()
		b.StartTimer()
		if _, _, err := h.ApplyPlan(p); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += cpuTime() - c0
		os.RemoveAll(filepath.Join(h.Dir, ".stratus", "blobs")) // the state store closes at cleanup
	}
	b.ReportMetric(float64(info.Size())*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// resultBytes counts the bytes of the parse tasks' results.
type resultBytes struct {
	executor.Backend
	n, tasks atomic.Int64
}

func (r *resultBytes) Invoke(ctx context.Context, t *operators.Task) (*operators.Result, executor.Usage, error) {
	res, u, err := r.Backend.Invoke(ctx, t)
	if err == nil && res != nil && t.Kind == load.KindParse {
		r.n.Add(int64(len(res.Output)))
		r.tasks.Add(1)
	}
	return res, u, err
}

// BenchmarkLoadWave200 applies a load stage of 200 parse tasks over the
// generated input with the statistics reduced from the tasks' blob copies
// (blob) and through two psstore shards (psstore), side by side, and
// reports each task's result size.
func BenchmarkLoadWave200(b *testing.B) {
	file := benchInput(b)
	info, err := os.Stat(file)
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"blob", "psstore"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(info.Size())
			var lc *psstore.LocalCluster
			if mode == "psstore" {
				b.Setenv(operators.EnvStatsReduce, "psstore")
				var err error
				if lc, err = psstore.StartLocal(context.Background(), 2, b.TempDir(), ""); err != nil {
					b.Fatal(err)
				}
				defer lc.Close()
			}
			rb := &resultBytes{}
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				h := runtimetest.New(b, fmt.Sprintf("load \"bench\" {\n  source = %q\n  tasks = 200\n}\n", file))
				if lc != nil {
					h.Env.PSStore, h.Env.Token = lc.Addrs(), lc.Token()
				}
				h.Wrap = func(be executor.Backend) executor.Backend { rb.Backend = be; return rb }
				p := h.MustPlan()
				b.StartTimer()
				if _, _, err := h.ApplyPlan(p); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				os.RemoveAll(filepath.Join(h.Dir, ".stratus", "blobs"))
			}
			b.ReportMetric(float64(rb.n.Load())/float64(rb.tasks.Load()), "result-B/task")
		})
	}
}
