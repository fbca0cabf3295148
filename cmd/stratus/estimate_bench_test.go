package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// estimateRow is one line of apply's estimate-vs-actual table.
type estimateRow struct {
	stage, basis     string
	estWall, actWall time.Duration
	estGBs, actGBs   float64
}

// parseEstimateTable reads the STAGE / ESTIMATED WALL / ACTUAL / ESTIMATED GB-S /
// ACTUAL / BASIS table apply prints after its summary.
func parseEstimateTable(out string) ([]estimateRow, error) {
	var rows []estimateRow
	in := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "STAGE" && strings.Contains(line, "ESTIMATED WALL") {
			in = true
			continue
		}
		if !in {
			continue
		}
		if len(f) != 6 {
			break
		}
		var r estimateRow
		var err error
		r.stage, r.basis = f[0], f[5]
		if r.estWall, err = time.ParseDuration(f[1]); err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		if r.actWall, err = time.ParseDuration(f[2]); err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		if r.estGBs, err = strconv.ParseFloat(f[3], 64); err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		if r.actGBs, err = strconv.ParseFloat(f[4], 64); err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no estimate-vs-actual table in:\n%s", out)
	}
	return rows, nil
}

func TestParseEstimateTable(t *testing.T) {
	out := `
Apply summary ...

         STAGE  ESTIMATED WALL  ACTUAL  ESTIMATED GB-S  ACTUAL     BASIS
    load.adult           720ms   540ms             3.2     2.7  defaults
      train.lr            1.1s   1.04s             5.3     5.1   history

Apply complete! 2 ran, 0 cached, in 1.6s.
`
	rows, err := parseEstimateTable(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[1].stage != "train.lr" || rows[1].estWall != 1100*time.Millisecond || rows[1].actGBs != 5.1 || rows[0].basis != "defaults" {
		t.Fatalf("rows %+v", rows)
	}
	if _, err := parseEstimateTable("Apply complete!"); err == nil {
		t.Fatal("no table parsed without an error")
	}
}

// TestBenchEstimates is `make bench-estimate`: the estimation error of plan, per
// stage, against the measured apply, on generated data at three sizes (10k, 300k
// and 2M rows) with a default load → normalize → train pipeline on the embedded
// default. Each size runs twice: a fresh directory (estimates from the documented
// defaults), then the same pipeline on new data of the same size (estimates from
// the first run's history). It prints one table; the target is estimated
// wall time and GB-seconds within 25% for every stage that runs longer than 2 s.
// It runs only with STRATUS_BENCH=1 (STRATUS_BENCH_ROWS overrides the sizes,
// comma separated).
func TestBenchEstimates(t *testing.T) {
	if os.Getenv("STRATUS_BENCH") == "" {
		t.Skip("a benchmark: run it with make bench-estimate")
	}
	bin, err := buildStratus()
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{10_000, 300_000, 2_000_000}
	if s := os.Getenv("STRATUS_BENCH_ROWS"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				t.Fatalf("STRATUS_BENCH_ROWS %q: %v", s, err)
			}
			sizes = append(sizes, n)
		}
	}
	run := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("stratus %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	gen := func(dir string, rows int, seed int) {
		run(dir, "gen", "criteo", "--rows", fmt.Sprint(rows), "--seed", fmt.Sprint(seed), "--format", "libsvm", "-o", "train.svm")
		run(dir, "gen", "criteo", "--rows", fmt.Sprint(max(rows/10, 1000)), "--seed", fmt.Sprint(seed+1000), "--format", "libsvm", "-o", "test.svm")
	}
	const pipeline = `
load "d" {
  source      = "train.svm"
  test_source = "test.svm"
  format      = "libsvm"
}

normalize "d" {
  input  = load.d
  method = "min_max"
}

train "lr" {
  input = normalize.d
}
`
	relErr := func(est, act float64) float64 {
		if act == 0 {
			return math.Inf(1)
		}
		return (est - act) / act * 100
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-9s %-9s %-14s %9s %9s %7s %9s %9s %7s %s\n", "ROWS", "RUN", "STAGE", "EST WALL", "WALL", "ERR", "EST GB-S", "GB-S", "ERR", "TARGET")
	misses, judged := 0, 0
	for _, n := range sizes {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(pipeline), 0o644); err != nil {
			t.Fatal(err)
		}
		for round, seed := range []int{1, 2} {
			gen(dir, n, seed)
			run(dir, "plan", "-no-color")
			out := run(dir, "apply", "-auto-approve", "-no-color")
			rows, err := parseEstimateTable(out)
			if err != nil {
				t.Fatal(err)
			}
			name := []string{"fresh", "history"}[round]
			for _, r := range rows {
				we := relErr(r.estWall.Seconds(), r.actWall.Seconds())
				ge := relErr(r.estGBs, r.actGBs)
				verdict := "-"
				if r.actWall > 2*time.Second {
					judged++
					verdict = "ok"
					if math.Abs(we) > 25 || math.Abs(ge) > 25 {
						verdict = "MISS"
						misses++
					}
				}
				fmt.Fprintf(&b, "%-9d %-9s %-14s %9s %9s %+6.0f%% %9.1f %9.1f %+6.0f%% %s (%s)\n", n, name, r.stage,
					r.estWall.Round(10*time.Millisecond), r.actWall.Round(10*time.Millisecond), we, r.estGBs, r.actGBs, ge, verdict, r.basis)
			}
		}
	}
	fmt.Fprintf(&b, "\nstages longer than 2 s: %d, outside ±25%%: %d\n", judged, misses)
	t.Log(b.String())
}
