package planner

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/state"
)

// machineRun records a run of every stage of p, as apply does (40 s, 12 GB-s at
// 1769 MB, three tasks, the plan's input bytes), and returns the records.
func machineRun(p *Plan, backend string, wall time.Duration) []*state.StageRecord {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var recs []*state.StageRecord
	for _, s := range p.Stages {
		recs = append(recs, &state.StageRecord{
			Address: s.Address, Operator: s.Operator, Version: s.Version, Key: s.Key,
			Params: s.Params, Started: start, Finished: start.Add(wall), Tasks: 3, GBSeconds: 12,
			MemoryMB: 1769, Backend: backend, InputBytes: s.Estimate.InputBytes,
		})
	}
	return recs
}

func planMachine(t *testing.T, dir, backend string, h *MachineHistory) *Plan {
	t.Helper()
	p, diags := Build(t.Context(), load(t, dir), Options{Machine: h, Limits: Limits{Backend: backend, Functions: 100, Cores: 2}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return p
}

// TestMachineHistory: a pipeline that never ran is estimated from this
// machine's runs of its operators in another pipeline, on the same backend only,
// scaled by input size as the pipeline's own history is; the pipeline's own
// record wins over it.
func TestMachineHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stratus", "calibration.json")
	other := estimateDir(t, 1000, 5)
	note, err := FoldMachineHistory(path, MachineEntries(nil, machineRun(planMachine(t, other, "local", nil), "local", 40*time.Second)))
	if err != nil || note != "" {
		t.Fatalf("fold: %q, %v", note, err)
	}
	h := LoadMachineHistory(path)
	if h.Note != "" || len(h.entries) != 3 {
		t.Fatalf("loaded %d entries, note %q", len(h.entries), h.Note)
	}

	// Another pipeline, the same stages on twice the data.
	dir := estimateDir(t, 2000, 5)
	p := planMachine(t, dir, "local", h)
	for _, s := range p.Stages {
		e := s.Estimate
		if e.Basis != BasisMachine {
			t.Fatalf("%s: basis %s, want machine", s.Address, e.Basis)
		}
		// Twice the bytes: twice the record's GB-seconds and wall time.
		if e.GBSeconds < 23.9 || e.GBSeconds > 24.1 || e.Wall < 79*time.Second || e.Wall > 81*time.Second {
			t.Errorf("%s: %.2f GB-s in %s; want the record's 12 GB-s and 40s doubled", s.Address, e.GBSeconds, e.Wall)
		}
	}
	for _, s := range planMachine(t, dir, "lambda", h).Stages {
		if s.Estimate.Basis != BasisDefaults {
			t.Errorf("lambda plan from local machine history, %s: basis %s, want defaults", s.Address, s.Estimate.Basis)
		}
	}
	// The pipeline's own record comes first.
	st := openState(t)
	recordOn(t, st, p, "local", nil)
	q, diags := Build(t.Context(), load(t, dir), Options{State: st, Machine: h, Limits: Limits{Backend: "local", Functions: 100, Cores: 2}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, s := range q.Stages {
		if s.Action != Cached && s.Estimate.Basis != BasisHistory {
			t.Errorf("%s (%s): basis %s, want history", s.Address, s.Action, s.Estimate.Basis)
		}
	}
}

// TestMachineHistoryClassAndSize: an entry of another model or format is never
// used, and of several sizes the nearest is.
func TestMachineHistoryClassAndSize(t *testing.T) {
	mk := func(op, class string, in int64, gbs float64) MachineEntry {
		return MachineEntry{Backend: "local", Operator: op, Class: class, InputBytes: in, WallNS: int64(time.Second), GBSeconds: gbs, MemoryMB: 1769, Tasks: 1, Finished: time.Now()}
	}
	lr := machineClass("train", map[string]string{"model": `"logistic_regression"`})
	mf := machineClass("train", map[string]string{"model": `"matrix_factorization"`})
	if lr == mf || machineClass("load", nil) != machineClass("load", map[string]string{"format": `"libsvm"`}) || machineClass("train", nil) != lr {
		t.Fatalf("classes %q %q", lr, mf)
	}
	h := &MachineHistory{entries: []MachineEntry{mk("train", mf, 1000, 1), mk("train", lr, 1e6, 2), mk("train", lr, 1e3, 3), mk("train", lr, 1e9, 4)}}
	for _, c := range []struct {
		in   int64
		want float64
	}{{900, 3}, {2e6, 2}, {1e8, 4}} {
		r := h.find("local", "train", lr, c.in)
		if r == nil || r.GBSeconds != c.want {
			t.Errorf("input %d: got %+v, want the entry of %g GB-s", c.in, r, c.want)
		}
	}
	if r := h.find("local", "train", machineClass("train", map[string]string{"model": `"softmax"`}), 1000); r != nil {
		t.Errorf("softmax found %+v", r)
	}

	// Solver "auto": an entry says which kind of solver ran; a plan that
	// knows auto will choose SGD takes only SGD's, one that cannot tell
	// either.
	auto := machineClass("train", nil)
	sgd := ranSolver(&state.StageRecord{Operator: "train", Metrics: map[string]float64{"iteration_p50_us": 50}}, nil)
	full := ranSolver(&state.StageRecord{Operator: "train", Metrics: map[string]float64{"passes": 12}}, nil)
	if sgd != autoSGD || full != autoFullBatch || ranSolver(&state.StageRecord{Operator: "train", Metrics: map[string]float64{"passes": 1}}, map[string]string{"solver": `"sgd"`}) != "" {
		t.Fatalf("ran solvers %q %q", sgd, full)
	}
	h = &MachineHistory{entries: []MachineEntry{mk("train", auto+full, 1000, 1), mk("train", auto+sgd, 1e6, 2)}}
	if r := h.find("local", "train", auto+autoSGD, 1000); r == nil || r.GBSeconds != 2 {
		t.Errorf("known SGD: %+v, want the SGD entry", r)
	}
	if r := h.find("local", "train", auto, 1000); r == nil || r.GBSeconds != 1 {
		t.Errorf("either solver: %+v, want the nearest entry", r)
	}
}

// TestMachineHistoryFold: a run replaces the entry of about its size; the file
// keeps machineKeep entries per kind, the newest.
func TestMachineHistoryFold(t *testing.T) {
	var es []MachineEntry
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := func(in int64, i int) MachineEntry {
		return MachineEntry{Backend: "local", Operator: "load", InputBytes: in, WallNS: 1, Finished: base.Add(time.Duration(i) * time.Minute)}
	}
	es = foldEntry(es, e(1000, 0))
	es = foldEntry(es, e(1100, 1)) // within 1.25×: replaces
	if len(es) != 1 || es[0].InputBytes != 1100 {
		t.Fatalf("after a run of about the same size: %+v", es)
	}
	// Runs of about one size average: the mean of the runs up to
	// machineBlend of them, then each new run weighs 1/machineBlend.
	x := MachineEntry{Backend: "local", Operator: "train", InputBytes: 1000, WallNS: 10, GBSeconds: 10, MemoryMB: 1769, Runs: 1}
	for i, want := range []float64{15, 20, 25, 31.25} { // 10, then 20, 30, 40: their means; then 50 weighs ¼: 50/4 + 25·¾
		next := MachineEntry{Backend: "local", Operator: "train", InputBytes: 1000, WallNS: int64(20 + 10*i), GBSeconds: float64(20 + 10*i), MemoryMB: 1769, Runs: 1}
		x = blend(x, next)
		if math.Abs(x.GBSeconds-want) > 1e-9 || x.Runs != min(i+2, machineBlend) {
			t.Fatalf("after %d runs: %g GB-s over %d runs, want %g", i+2, x.GBSeconds, x.Runs, want)
		}
	}
	if y := blend(MachineEntry{InputBytes: 1000, GBSeconds: 10, MemoryMB: 1769, Runs: 1}, MachineEntry{InputBytes: 1200, GBSeconds: 12, MemoryMB: 1769, Runs: 1}); y.GBSeconds != 12 {
		t.Errorf("a run of 1.2× the bytes and 1.2× the GB-s: blended to %g, want 12", y.GBSeconds)
	}
	for i := 2; i < 20; i++ {
		es = foldEntry(es, e(int64(1000)<<i, i))
	}
	if len(es) != machineKeep {
		t.Fatalf("%d entries, want %d", len(es), machineKeep)
	}
	for _, x := range es {
		if x.Finished.Before(base.Add(12 * time.Minute)) {
			t.Errorf("kept an old entry %+v", x)
		}
	}
}

// TestMachineHistoryCorrupt: a file that is not a calibration history is
// ignored with a note (the plan goes on from the defaults), and the next fold
// replaces it and says so.
func TestMachineHistoryCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calibration.json")
	for _, bad := range []string{`{"format_version": 1, "entries": [`, `not json`, `{"format_version": 99}`} {
		if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		h := LoadMachineHistory(path)
		if !strings.Contains(h.Note, "ignoring this machine's calibration history "+path) || len(h.entries) != 0 {
			t.Errorf("%q: note %q, %d entries", bad, h.Note, len(h.entries))
		}
		p := planMachine(t, estimateDir(t, 1000, 5), "local", h)
		if b := p.Stages[0].Estimate.Basis; b != BasisDefaults {
			t.Errorf("%q: basis %s", bad, b)
		}
	}
	note, err := FoldMachineHistory(path, []MachineEntry{{Backend: "local", Operator: "load", InputBytes: 10, WallNS: 10, Finished: time.Now()}})
	if err != nil || !strings.Contains(note, "replaced") {
		t.Fatalf("fold over a corrupt file: %q, %v", note, err)
	}
	if h := LoadMachineHistory(path); h.Note != "" || len(h.entries) != 1 {
		t.Fatalf("after the fold: note %q, %d entries", h.Note, len(h.entries))
	}
}

// TestMachineHistoryConcurrent: applies folding at once each add their run
// (none is lost to another's read-modify-write), and a reader meanwhile never
// sees a partial file.
func TestMachineHistoryConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calibration.json")
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := FoldMachineHistory(path, []MachineEntry{{Backend: "local", Operator: fmt.Sprintf("op%d", i), InputBytes: 10, WallNS: 10, Finished: time.Now()}})
			errs <- err
		}()
		go func() {
			defer wg.Done()
			if h := LoadMachineHistory(path); h.Note != "" {
				errs <- fmt.Errorf("a reader saw %s", h.Note)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if h := LoadMachineHistory(path); len(h.entries) != n {
		t.Fatalf("%d entries after %d concurrent folds", len(h.entries), n)
	}
}

// TestMachineHistoryPath: the variable overrides the user cache directory,
// and "off" disables the history.
func TestMachineHistoryPath(t *testing.T) {
	t.Setenv(MachineHistoryEnv, "")
	t.Setenv("XDG_CACHE_HOME", "/x/cache")
	t.Setenv("HOME", "/x/home")
	if got := MachineHistoryPath(); got != filepath.Join("/x/cache", "stratus", "calibration.json") && !strings.HasSuffix(got, filepath.Join("stratus", "calibration.json")) {
		t.Errorf("default path %q", got)
	}
	t.Setenv(MachineHistoryEnv, "/y/c.json")
	if got := MachineHistoryPath(); got != "/y/c.json" {
		t.Errorf("with %s set: %q", MachineHistoryEnv, got)
	}
	t.Setenv(MachineHistoryEnv, "off")
	if got := MachineHistoryPath(); got != "" {
		t.Errorf("off: %q", got)
	}
}
