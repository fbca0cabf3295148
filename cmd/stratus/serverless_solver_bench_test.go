package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"testing"
	"time"
)

// fullBatchLine is a full-batch train stage's closing note.
var fullBatchLine = regexp.MustCompile(`train\.lr: stopped \((\w+)\) after (\S+): (\w+), (\d+) iterations, (\d+) passes`)

// TestBenchServerlessSolvers trains a9a with the full-batch solvers, L-BFGS and
// trust-region Newton (solver = "auto"'s choice here), on the serverless stack
// (emulators running the deployed function, MinIO) and on the local backend,
// interleaved, and prints each one's median solver time and its passes: a pass
// is a wave of functions, which costs more on Lambda than on one machine. It
// runs only with STRATUS_BENCH=1:
//
//	STRATUS_BENCH=1 go test -count=1 -run '^TestBenchServerlessSolvers$' -v ./cmd/stratus/
func TestBenchServerlessSolvers(t *testing.T) {
	if os.Getenv("STRATUS_BENCH") == "" {
		t.Skip("a benchmark: run it with STRATUS_BENCH=1")
	}
	s := startServerless(t, 2, 60*time.Second)
	const rounds = 5
	type run struct{ backend, solver, dir string }
	var runs []run
	for _, backend := range []string{"local", "lambda"} {
		for _, solver := range []string{"lbfgs", "newton"} {
			dir := filepath.Join(s.root, "solvers", backend+"-"+solver)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			hcl := fmt.Sprintf(`load "adult" {
  source      = %q
  test_source = %q
}

train "lr" {
  input  = load.adult
  solver = %q
}
`, filepath.Join(s.root, "testdata", "a9a"), filepath.Join(s.root, "testdata", "a9a.t"), solver)
			if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(hcl), 0o644); err != nil {
				t.Fatal(err)
			}
			if backend == "lambda" {
				s.writeBackend(dir, "solvers-"+solver, "")
			}
			runs = append(runs, run{backend, solver, dir})
		}
	}
	times := map[run][]time.Duration{}
	passes := map[run]string{}
	for i := 0; i < rounds; i++ {
		for _, r := range runs {
			_ = os.RemoveAll(filepath.Join(r.dir, ".stratus"))
			log := s.run(r.dir, "apply", "-auto-approve")
			m := fullBatchLine.FindStringSubmatch(log)
			if m == nil || m[3] != r.solver {
				t.Fatalf("%s %s: no %s summary in:\n%s", r.backend, r.solver, r.solver, log)
			}
			d, err := time.ParseDuration(m[2])
			if err != nil {
				t.Fatalf("%s %s: duration %q: %v", r.backend, r.solver, m[2], err)
			}
			times[r] = append(times[r], d)
			passes[r] = fmt.Sprintf("stopped (%s), %s iterations, %s passes", m[1], m[4], m[5])
		}
	}
	median := func(v []time.Duration) time.Duration {
		v = append([]time.Duration(nil), v...)
		sort.Slice(v, func(a, b int) bool { return v[a] < v[b] })
		return v[len(v)/2]
	}
	for _, backend := range []string{"local", "lambda"} {
		l, n := run{backend, "lbfgs", runs[0].dir}, run{backend, "newton", runs[1].dir}
		if backend == "lambda" {
			l.dir, n.dir = runs[2].dir, runs[3].dir
		}
		ml, mn := median(times[l]), median(times[n])
		fmt.Printf("a9a %-6s  lbfgs %8s (%s)  newton %8s (%s)  newton/lbfgs %.2fx  [%d rounds, median]\n",
			backend, ml, passes[l], mn, passes[n], float64(mn)/float64(ml), rounds)
	}
}
