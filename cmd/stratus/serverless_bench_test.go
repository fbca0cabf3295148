package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// trainLine is the train stage's closing note.
var trainLine = regexp.MustCompile(`train\.lr: stopped \(\w+\) after (\S+): (\d+) iterations, (\d+) examples/s; per iteration p50 (\d+)µs, p99 (\d+)µs; mean get-minibatch (\d+)µs, pull (\d+)µs, compute (\d+)µs, push (\d+)µs`)

// TestBenchServerlessTrain is `make bench-lambda`: the a9a train stage on the
// serverless stack (emulators running the deployed function, `stratus psstore
// serve` over real gRPC, MinIO) beside the same stage on the local backend, in one
// run. It prints wall time, iterations per second and the per-iteration breakdown.
// It runs only with STRATUS_BENCH=1.
func TestBenchServerlessTrain(t *testing.T) {
	if os.Getenv("STRATUS_BENCH") == "" {
		t.Skip("a benchmark: run it with make bench-lambda")
	}
	s := startServerless(t, 5, 60*time.Second)
	localRoot := copyPipelines(t)
	runs := 3
	type figures struct{ fields [][]string }
	measure := func(dir string) figures {
		var f figures
		for i := 0; i < runs; i++ {
			_ = os.RemoveAll(filepath.Join(dir, ".stratus"))
			log := s.run(dir, "apply", "-auto-approve")
			m := trainLine.FindStringSubmatch(log)
			if m == nil {
				t.Fatalf("no train.lr summary in:\n%s", log)
			}
			f.fields = append(f.fields, m[1:])
		}
		return f
	}
	remote := filepath.Join(s.root, "pipelines", "a9a")
	s.writeBackend(remote, "bench", "")
	lf := measure(filepath.Join(localRoot, "pipelines", "a9a"))
	rf := measure(remote)
	median := func(f figures, i int) float64 {
		var v []float64
		for _, r := range f.fields {
			x, err := strconv.ParseFloat(r[i], 64)
			if err != nil {
				d, _ := time.ParseDuration(r[i])
				x = d.Seconds() * 1000
			}
			v = append(v, x)
		}
		for a := range v {
			for b := a + 1; b < len(v); b++ {
				if v[b] < v[a] {
					v[a], v[b] = v[b], v[a]
				}
			}
		}
		return v[len(v)/2]
	}
	names := []string{"train wall (ms)", "iterations", "examples/s", "iteration p50 (µs)", "iteration p99 (µs)",
		"get minibatch (µs)", "pull (µs)", "compute (µs)", "push (µs)"}
	fmt.Printf("\na9a train.lr, median of %d applies each (4 workers, minibatch 100, 5 epochs)\n", runs)
	fmt.Printf("%-20s %14s %14s %8s\n", "", "local", "serverless", "ratio")
	for i, n := range names {
		l, r := median(lf, i), median(rf, i)
		ratio := "-"
		if l > 0 {
			ratio = fmt.Sprintf("%.2f×", r/l)
		}
		fmt.Printf("%-20s %14.0f %14.0f %8s\n", n, l, r, ratio)
	}
	fmt.Println("reference: Cirrus prototype ≈500 µs per SGD iteration per worker (target p50 ≤ 500 µs across processes)")
}
