package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/planner"
)

// TestBenchSizing is `make bench-sizing`: the planner's choice of workers
// against a hand sweep, on the local backend: the same SGD train stage on
// generated Criteo-like LIBSVM (300k rows; STRATUS_BENCH_ROWS overrides)
// applied with workers = "auto" (the planner's count, elastic) and with 1, 2,
// 4 and 8 fixed, each to the same held-out log loss (target_logloss: 1% above
// what a reference run with the defaults converged to, at most 20 epochs),
// STRATUS_BENCH_RUNS times each (default 5; the median cost shown), the
// configurations interleaved run by run. It prints
// each configuration's wall time, GB-seconds and estimated Lambda cost of the
// train stage, and the auto choice's cost over the best fixed one's (target:
// at most 1.2×).
//
// Memory is not swept: on the local backend (and on the Lambda emulator) a
// function's memory only prices it — CPU is not shared out by memory as on
// Lambda — so a sweep here would measure the price formula, not the choice.
//
// It runs only with STRATUS_BENCH=1.
func TestBenchSizing(t *testing.T) {
	if os.Getenv("STRATUS_BENCH") == "" {
		t.Skip("a benchmark: run it with make bench-sizing")
	}
	bin, err := buildStratus()
	if err != nil {
		t.Fatal(err)
	}
	rows, runs := 300_000, 5
	if s := os.Getenv("STRATUS_BENCH_ROWS"); s != "" {
		if rows, err = strconv.Atoi(s); err != nil {
			t.Fatalf("STRATUS_BENCH_ROWS %q: %v", s, err)
		}
	}
	if s := os.Getenv("STRATUS_BENCH_RUNS"); s != "" {
		if runs, err = strconv.Atoi(s); err != nil || runs < 1 {
			t.Fatalf("STRATUS_BENCH_RUNS %q: %v", s, err)
		}
	}
	dir := t.TempDir()
	calib := filepath.Join(t.TempDir(), "calibration.json") // its own, so the plans do not depend on this machine's
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "NO_COLOR=1", planner.MachineHistoryEnv+"="+calib)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("stratus %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, g := range [][]string{
		{"gen", "criteo", "--rows", fmt.Sprint(rows), "--seed", "1", "--format", "libsvm", "-o", "train.svm"},
		{"gen", "criteo", "--rows", fmt.Sprint(max(rows/10, 1000)), "--seed", "1001", "--format", "libsvm", "-o", "test.svm"},
	} {
		run(g...)
	}
	write := func(workers, target string) {
		hcl := fmt.Sprintf(`load "d" {
  source      = "train.svm"
  test_source = "test.svm"
  format      = "libsvm"
}

train "lr" {
  input  = load.d
  solver = "sgd"
  %s
  %s
}

output "test_logloss" {
  value = train.lr.metrics.test_logloss
}
`, workers, target)
		if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(hcl), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logloss := func() float64 {
		var out map[string]float64
		if err := json.Unmarshal([]byte(run("output", "-json")), &out); err != nil {
			t.Fatal(err)
		}
		return out["test_logloss"]
	}

	// The reference: the defaults, to convergence.
	write(``, ``)
	run("apply", "-auto-approve", "-no-color")
	ref := logloss()
	target := ref * 1.01

	type result struct {
		name             string
		wall             time.Duration
		gbs, cost, loss  float64
		reached, planned int // runs that reached the target; the planned workers (auto)
		most             int // the most workers an elastic run reached
	}
	row := regexp.MustCompile(`(?m)^\s*train\.lr\s+ran\s+\d+.*?\s(\S+)\s+([0-9.]+)\s+\$([0-9.]+)\s*$`)
	planned := regexp.MustCompile(`(?m)^\s*\+?~? ?train\.lr: workers (\d+): `)
	changes := regexp.MustCompile(`train\.lr: workers \d+ → (\d+)`)
	// Interleaved, run by run, so that a change of the machine's load falls
	// on every configuration alike.
	configs := []string{"auto", "1", "2", "4", "8"}
	results := make([]result, len(configs))
	walls := make([][]time.Duration, len(configs))
	gbss, costs, losses := make([][]float64, len(configs)), make([][]float64, len(configs)), make([][]float64, len(configs))
	for range runs {
		for i, w := range configs {
			line := `workers = "auto"`
			if w != "auto" {
				line = "workers = " + w
			}
			write(line, fmt.Sprintf("target_logloss = %.6f\n  epochs         = 20", target))
			r := &results[i]
			r.name = "workers " + w
			out := run("apply", "-auto-approve", "-no-color", "-replace=train.lr")
			m := row.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no train.lr row in:\n%s", out)
			}
			wall, err := time.ParseDuration(m[1])
			if err != nil {
				t.Fatal(err)
			}
			gbs, _ := strconv.ParseFloat(m[2], 64)
			cost, _ := strconv.ParseFloat(m[3], 64)
			walls[i], gbss[i], costs[i] = append(walls[i], wall), append(gbss[i], gbs), append(costs[i], cost)
			losses[i] = append(losses[i], logloss())
			if strings.Contains(out, "stopped (target_logloss)") {
				r.reached++
			}
			if p := planned.FindStringSubmatch(out); p != nil && w == "auto" {
				r.planned, _ = strconv.Atoi(p[1])
			}
			for _, c := range changes.FindAllStringSubmatch(out, -1) {
				n, _ := strconv.Atoi(c[1])
				r.most = max(r.most, n)
			}
		}
	}
	for i := range results {
		r := &results[i]
		r.wall, r.gbs, r.cost, r.loss = medianD(walls[i]), median(gbss[i]), median(costs[i]), median(losses[i])
	}

	best := -1
	for i, r := range results[1:] {
		if r.reached == runs && (best < 0 || r.cost < results[best].cost) {
			best = i + 1
		}
	}
	var w strings.Builder
	fmt.Fprintf(&w, "auto-sizing against a hand sweep of workers: SGD on %s of generated Criteo-like LIBSVM, local backend, each run to test log loss %.4f (the defaults converged to %.4f), median of %d runs\n", fmtRows(rows), target, ref, runs)
	fmt.Fprintf(&w, "%-34s %9s %8s %11s %9s %8s %s\n", "CONFIG", "WALL", "GB-S", "COST", "LOGLOSS", "REACHED", "VS BEST FIXED")
	for _, r := range results {
		vs := "-"
		if best >= 0 {
			vs = fmt.Sprintf("%.2f×", r.cost/results[best].cost)
		}
		name := r.name
		if r.planned > 0 {
			name += fmt.Sprintf(" (planned %d", r.planned)
			if r.most > 0 {
				name += fmt.Sprintf(", grew to %d", r.most)
			}
			name += ")"
		}
		fmt.Fprintf(&w, "%-34s %9s %8.1f %11s %9.4f %6d/%d %s\n", name, r.wall.Round(10*time.Millisecond), r.gbs, fmt.Sprintf("$%.6f", r.cost), r.loss, r.reached, runs, vs)
	}
	switch {
	case best < 0:
		fmt.Fprintln(&w, "no fixed count reached the target in every run")
	case results[0].reached < runs:
		fmt.Fprintf(&w, "MISS: auto reached the target in %d of %d runs\n", results[0].reached, runs)
	default:
		ratio := results[0].cost / results[best].cost
		verdict := "ok"
		if ratio > 1.2 {
			verdict = "MISS"
		}
		fmt.Fprintf(&w, "auto's cost to the target is %.2f× the best fixed (%s): %s (target ≤ 1.2×)\n", ratio, results[best].name, verdict)
	}
	t.Log("\n" + w.String())
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func medianD(v []time.Duration) time.Duration {
	s := append([]time.Duration(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
