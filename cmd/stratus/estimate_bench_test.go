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

	"github.com/stratus-ml/stratus/planner"
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
// stage, against the measured apply, on each backend — the embedded local
// default and the serverless test stack (MinIO, `stratus psstore serve` shards,
// Lambda emulators running the function `stratus deploy` builds, set up as
// TestServerless does) — for generated Criteo-like LIBSVM at three sizes (10k,
// 300k and 2M rows, load → normalize → train with defaults) and for the example
// pipelines in pipelines/.
//
// Every case runs three times: fresh (a new directory and an empty machine
// calibration history, so estimates come from the documented defaults); from
// the pipeline's history (generated data: new data of the same size; examples:
// every stage replaced and the grid search's trial cache forgotten), whose
// estimates use the first run's records; and from the machine's history (a new
// state, the second round's data), whose estimates use the backend's machine
// history: every run of the cases before it and its own two (as a user who ran
// pipelines of several sizes on this machine has). It prints one table per
// backend: for each stage, estimate / actual and the error of wall time and
// GB-seconds in each round, with the target — within 25% for every
// stage that runs longer than 2 s — marked MISS where missed.
//
// It runs only with STRATUS_BENCH=1. STRATUS_BENCH_ROWS overrides the sizes
// (comma separated; 0 runs none), STRATUS_BENCH_BACKENDS the backends ("local",
// "serverless"), STRATUS_BENCH_EXAMPLES=0 leaves the example pipelines out, and
// STRATUS_BENCH_LOGS names a directory to keep every apply's output in.
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
			if n > 0 {
				sizes = append(sizes, n)
			}
		}
	}
	backends := []string{"local", "serverless"}
	if s := os.Getenv("STRATUS_BENCH_BACKENDS"); s != "" {
		backends = strings.Split(s, ",")
	}
	examples := os.Getenv("STRATUS_BENCH_EXAMPLES") != "0"

	// One data directory per size, generated once and shared by the backends,
	// so both measure the same rows: seed 1 for the fresh run, 2 for history.
	data := map[int][2]string{}
	gen := func(dir string, rows, seed int) {
		for _, g := range [][]string{
			{"gen", "criteo", "--rows", fmt.Sprint(rows), "--seed", fmt.Sprint(seed), "--format", "libsvm", "-o", filepath.Join(dir, "train.svm")},
			{"gen", "criteo", "--rows", fmt.Sprint(max(rows/10, 1000)), "--seed", fmt.Sprint(seed + 1000), "--format", "libsvm", "-o", filepath.Join(dir, "test.svm")},
		} {
			if out, err := exec.Command(bin, g...).CombinedOutput(); err != nil {
				t.Fatalf("stratus %s: %v\n%s", strings.Join(g, " "), err, out)
			}
		}
	}
	for _, n := range sizes {
		var d [2]string
		for round := range d {
			d[round] = t.TempDir()
			gen(d[round], n, round+1)
		}
		data[n] = d
	}

	var report strings.Builder
	for _, be := range backends {
		var b estimateBench
		switch strings.TrimSpace(be) {
		case "local":
			b = estimateBench{name: "local (embedded default, goroutines on this machine)", root: copyPipelines(t),
				run: func(dir, calib string, args ...string) (string, error) {
					cmd := exec.Command(bin, args...)
					cmd.Dir = dir
					cmd.Env = append(os.Environ(), "NO_COLOR=1", planner.MachineHistoryEnv+"="+calib)
					out, err := cmd.CombinedOutput()
					return string(out), err
				}}
		case "serverless":
			// Five emulators, as TestServerless: a train stage's four workers
			// and its evaluator at once.
			s := startServerless(t, 5, 5*time.Minute)
			n := 0
			b = estimateBench{name: "serverless (MinIO, 2 psstore serve shards, 5 Lambda emulators running the deployed function)", root: s.root,
				run: func(dir, calib string, args ...string) (string, error) {
					cmd := exec.Command(s.bin, args...)
					cmd.Dir = dir
					cmd.Env = append(s.env(), planner.MachineHistoryEnv+"="+calib)
					out, err := cmd.CombinedOutput()
					return string(out), err
				},
				setup: func(dir string) {
					n++
					s.writeBackend(dir, fmt.Sprintf("bench%d", n), "  timeout = \"5m\"\n")
				}}
		default:
			t.Fatalf("STRATUS_BENCH_BACKENDS: unknown backend %q (local, serverless)", be)
		}
		b.t = t
		b.machine = filepath.Join(t.TempDir(), "machine.json")
		for _, n := range sizes {
			b.generated(n, data[n])
		}
		if examples {
			for _, ex := range []string{"a9a", "criteo", "a9a-tune"} {
				b.example(ex)
			}
		}
		report.WriteString(b.table())
	}
	t.Log("\n" + report.String())
}

// estimateBench measures one backend's estimates.
type estimateBench struct {
	t     *testing.T
	name  string
	root  string                                                  // a copy of pipelines/ and testdata/ (copyPipelines)
	run   func(dir, calib string, args ...string) (string, error) // with STRATUS_CALIBRATION=calib
	setup func(dir string)                                        // writes the backend block with a new bucket prefix, or nil (local)
	rows  []estimatePair
	// machine is the backend's machine calibration history, which gathers
	// every case's runs.
	machine string
	// applies counts the applies, naming their logs (STRATUS_BENCH_LOGS).
	applies int
}

// estimatePair is one stage's estimate-vs-actual in each round: fresh, from
// the machine's history, from the pipeline's history.
type estimatePair struct {
	data, stage string
	rounds      [3]*estimateRow
}

// The rounds of a case, in the table's order.
const (
	roundFresh = iota
	roundMachine
	roundHistory
)

const estimateBenchPipeline = `
load "d" {
  source      = "DATA/train.svm"
  test_source = "DATA/test.svm"
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

// apply plans and applies in dir with the machine calibration history calib
// and returns the estimate-vs-actual table.
func (b *estimateBench) apply(dir, calib string, args ...string) []estimateRow {
	b.t.Helper()
	if out, err := b.run(dir, calib, append([]string{"plan", "-no-color"}, args...)...); err != nil {
		b.t.Fatalf("stratus plan in %s: %v\n%s", dir, err, out)
	}
	out, err := b.run(dir, calib, append([]string{"apply", "-auto-approve", "-no-color"}, args...)...)
	if err != nil {
		b.t.Fatalf("stratus apply in %s: %v\n%s", dir, err, out)
	}
	if logs := os.Getenv("STRATUS_BENCH_LOGS"); logs != "" {
		b.applies++
		name := filepath.Join(logs, fmt.Sprintf("%s-%02d.log", strings.Fields(b.name)[0], b.applies))
		if err := os.WriteFile(name, []byte(out), 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	rows, err := parseEstimateTable(out)
	if err != nil {
		b.t.Fatal(err)
	}
	return rows
}

// generated measures the default pipeline on n generated rows: fresh on the
// first data directory, then from the pipeline's history on the second, then
// from the machine's in a new pipeline directory on the second.
func (b *estimateBench) generated(n int, data [2]string) {
	own := filepath.Join(b.t.TempDir(), "calibration.json")
	var rounds [3][]estimateRow
	run := func(dir, d, calib string) []estimateRow {
		hcl := strings.ReplaceAll(estimateBenchPipeline, "DATA", d)
		if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(hcl), 0o644); err != nil {
			b.t.Fatal(err)
		}
		return b.apply(dir, calib)
	}
	dir := b.t.TempDir()
	if b.setup != nil {
		b.setup(dir)
	}
	rounds[roundFresh] = run(dir, data[0], own)
	rounds[roundHistory] = run(dir, data[1], own)
	b.gather(own)
	other := b.t.TempDir()
	if b.setup != nil {
		b.setup(other)
	}
	rounds[roundMachine] = run(other, data[1], b.machine)
	b.add(fmtRows(n), rounds)
}

// gather adds the runs of a case's own calibration history to the backend's.
func (b *estimateBench) gather(own string) {
	b.t.Helper()
	h := planner.LoadMachineHistory(own)
	if h.Note != "" {
		b.t.Fatal(h.Note)
	}
	if _, err := planner.FoldMachineHistory(b.machine, h.Entries()); err != nil {
		b.t.Fatal(err)
	}
}

// example measures an example pipeline: fresh, then every stage replaced,
// then from a new state with the machine's history.
func (b *estimateBench) example(name string) {
	dir := filepath.Join(b.root, "pipelines", name)
	own := filepath.Join(b.t.TempDir(), "calibration.json")
	_ = os.RemoveAll(filepath.Join(dir, ".stratus"))
	if b.setup != nil {
		b.setup(dir)
	}
	var rounds [3][]estimateRow
	rounds[roundFresh] = b.apply(dir, own)
	// Replaced, a grid search would still find its trials in the trial cache
	// (in the run's blob store): forget them, so every trial runs again.
	forget := func() {
		if b.setup != nil {
			b.setup(dir) // a new bucket prefix: a new blob store
		} else if err := os.RemoveAll(filepath.Join(dir, ".stratus", "blobs", "gridsearch", "trials")); err != nil {
			b.t.Fatal(err)
		}
	}
	forget()
	var replace []string
	for _, r := range rounds[roundFresh] {
		replace = append(replace, "-replace="+r.stage)
	}
	rounds[roundHistory] = b.apply(dir, own, replace...)
	b.gather(own)
	if err := os.RemoveAll(filepath.Join(dir, ".stratus")); err != nil {
		b.t.Fatal(err)
	}
	forget()
	rounds[roundMachine] = b.apply(dir, b.machine)
	b.add(name, rounds)
}

// add pairs the rounds' rows by stage, in the order they ran.
func (b *estimateBench) add(data string, rounds [3][]estimateRow) {
	var order []string
	by := map[string]*estimatePair{}
	for round, rows := range rounds {
		for i := range rows {
			r := &rows[i]
			p := by[r.stage]
			if p == nil {
				p = &estimatePair{data: data, stage: r.stage}
				by[r.stage] = p
				order = append(order, r.stage)
			}
			p.rounds[round] = r
		}
	}
	for _, st := range order {
		b.rows = append(b.rows, *by[st])
	}
}

func fmtRows(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM rows", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk rows", n/1000)
	}
	return fmt.Sprintf("%d rows", n)
}

// relErr is (est − act)/act in percent.
func relErr(est, act float64) float64 {
	if act == 0 {
		return math.Inf(1)
	}
	return (est - act) / act * 100
}

// table prints the backend's rows and how many stages over 2 s miss ±25%.
func (b *estimateBench) table() string {
	var w strings.Builder
	fmt.Fprintf(&w, "backend %s\n", b.name)
	names := [3]string{"fresh", "machine", "history"}
	fmt.Fprintf(&w, "%-11s %-26s |", "DATA", "STAGE")
	for _, n := range names {
		fmt.Fprintf(&w, " %-23s", "WALL "+n+" est/act")
	}
	fmt.Fprint(&w, " |")
	for _, n := range names {
		fmt.Fprintf(&w, " %-23s", "GB-S "+n+" est/act")
	}
	fmt.Fprint(&w, " | TARGET (fresh, machine, history)\n")
	var judged, misses [3]int
	cell := func(r *estimateRow, wall bool) string {
		if r == nil {
			return "-"
		}
		if wall {
			return fmt.Sprintf("%s/%s %+.0f%%", r.estWall.Round(10*time.Millisecond), r.actWall.Round(10*time.Millisecond), relErr(r.estWall.Seconds(), r.actWall.Seconds()))
		}
		return fmt.Sprintf("%.1f/%.1f %+.0f%%", r.estGBs, r.actGBs, relErr(r.estGBs, r.actGBs))
	}
	for _, p := range b.rows {
		var verdict [3]string
		for i, r := range p.rounds {
			verdict[i] = "-"
			if r == nil || r.actWall <= 2*time.Second {
				continue
			}
			judged[i]++
			verdict[i] = "ok"
			if math.Abs(relErr(r.estWall.Seconds(), r.actWall.Seconds())) > 25 || math.Abs(relErr(r.estGBs, r.actGBs)) > 25 {
				verdict[i] = "MISS"
				misses[i]++
			}
		}
		fmt.Fprintf(&w, "%-11s %-26s |", p.data, p.stage)
		for _, r := range p.rounds {
			fmt.Fprintf(&w, " %-23s", cell(r, true))
		}
		fmt.Fprint(&w, " |")
		for _, r := range p.rounds {
			fmt.Fprintf(&w, " %-23s", cell(r, false))
		}
		fmt.Fprintf(&w, " | %s\n", strings.Join(verdict[:], ", "))
	}
	fmt.Fprintf(&w, "stages longer than 2 s outside ±25%%: fresh %d of %d, from the machine's history %d of %d, from the pipeline's history %d of %d\n\n",
		misses[0], judged[0], misses[1], judged[1], misses[2], judged[2])
	return w.String()
}
