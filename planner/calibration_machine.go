package planner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/state"
)

// The machine's own history: every apply folds what its stages measured into
// one small file per user (MachineHistoryPath), so that a pipeline whose state
// holds no record of an operator is estimated from this machine's earlier runs
// of it (on the same backend) instead of the documented defaults:
//
//   - an entry is one stage run's figures as a state record keeps them (wall
//     time, GB-seconds and the memory they were measured at, tasks, input bytes,
//     calibration), with the numeric parameters the planner's model scales by —
//     the planner's choices in place of "auto", so a run at 1 worker scales to a
//     plan of 4 — and the class of the operator's work (load's format, train's
//     model and solver), which must match;
//   - the file keeps at most machineKeep entries per backend, operator and class;
//     a run is averaged into the entry of a size within a factor of
//     machineSameSize of its own (blend: the mean of the last few such runs),
//     else added, and the oldest goes;
//   - a plan takes the entry whose input size is nearest its own (by ratio; the
//     newest of equals) and scales it as it scales a record of the pipeline's
//     history.
//
// Writes are atomic (a temporary file renamed over the old) and serialized by
// an flock(2) on a lock file beside it, so concurrent applies each add their
// runs. A file that cannot be read or decoded is ignored with a note; the next
// apply replaces it. Neither ever fails a plan or an apply.

// MachineHistoryEnv names the environment variable that overrides the file's
// path; "off" disables the machine history (plans read none, applies write
// none).
const MachineHistoryEnv = "STRATUS_CALIBRATION"

// machineKeep, machineSameSize and machineLockWait: see above; the lock is
// waited for at most machineLockWait before the fold gives up (with an error
// the caller shows as a note).
const (
	machineKeep     = 8
	machineSameSize = 1.25
	machineLockWait = 5 * time.Second
	// machineBlend bounds the runs an entry averages (blend).
	machineBlend  = 4
	machineFormat = 1
)

// BasisMachine marks an estimate made from the machine's history.
const BasisMachine Basis = "machine"

// MachineEntry is one stage run of the machine's history.
type MachineEntry struct {
	Backend  string `json:"backend"`
	Operator string `json:"operator"`
	// Class is what of the operator's arguments makes its throughput another
	// (machineClass); entries of another class are never used.
	Class string `json:"class,omitempty"`
	// Params are the numeric arguments the run had, by their display form.
	Params     map[string]string `json:"params,omitempty"`
	InputBytes int64             `json:"input_bytes"`
	WallNS     int64             `json:"wall_ns"`
	GBSeconds  float64           `json:"gb_seconds"`
	MemoryMB   int               `json:"memory_mb,omitempty"`
	Tasks      int               `json:"tasks"`
	// BytesPerFunctionSecond is the run's throughput (input bytes over its
	// function-seconds), for people reading the file; plans scale the figures
	// above instead.
	BytesPerFunctionSecond float64            `json:"bytes_per_function_second,omitempty"`
	Calibration            map[string]float64 `json:"calibration,omitempty"`
	Finished               time.Time          `json:"finished"`
	// Runs is how many runs of about this size the figures average (blend).
	Runs int `json:"runs,omitempty"`
}

// machineFile is the file's JSON.
type machineFile struct {
	FormatVersion int            `json:"format_version"`
	Entries       []MachineEntry `json:"entries"`
}

// MachineHistory is the machine's history as a plan reads it.
type MachineHistory struct {
	// Path is the file read ("" when disabled).
	Path    string
	entries []MachineEntry
	// Note says why the file was ignored ("" when it was read or is absent).
	Note string
}

// MachineHistoryPath is the file of the machine's history: $STRATUS_CALIBRATION
// when set, else calibration.json in the user's cache directory under stratus
// ($XDG_CACHE_HOME/stratus or ~/.cache/stratus on Linux,
// ~/Library/Caches/stratus on macOS). "" when disabled or when there is no
// cache directory.
func MachineHistoryPath() string {
	if p, ok := os.LookupEnv(MachineHistoryEnv); ok && p != "" {
		if p == "off" {
			return ""
		}
		return p
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "stratus", "calibration.json")
}

// LoadMachineHistory reads the machine's history at path. It never fails: a
// missing file is an empty history, and one that cannot be read or decoded is
// an empty history whose Note says so.
func LoadMachineHistory(path string) *MachineHistory {
	h := &MachineHistory{Path: path}
	if path == "" {
		return h
	}
	f, err := readMachineFile(path)
	if err != nil {
		h.Note = fmt.Sprintf("ignoring this machine's calibration history %s (%v); estimates use the pipeline's history or the defaults, and the next apply rewrites it", path, err)
		return h
	}
	h.entries = f.Entries
	return h
}

// Entries are the history's runs.
func (h *MachineHistory) Entries() []MachineEntry { return h.entries }

// readMachineFile reads and decodes the file; a missing one is empty.
func readMachineFile(path string) (*machineFile, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &machineFile{FormatVersion: machineFormat}, nil
	}
	if err != nil {
		return nil, err
	}
	var f machineFile
	if err := json.Unmarshal(b, &f); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("not JSON at byte %d: %v", se.Offset, err)
		}
		return nil, fmt.Errorf("not a calibration file: %v", err)
	}
	if f.FormatVersion != machineFormat {
		return nil, fmt.Errorf("format_version %d, this stratus reads %d", f.FormatVersion, machineFormat)
	}
	kept := f.Entries[:0]
	for _, e := range f.Entries {
		if e.Operator != "" && e.InputBytes > 0 && e.WallNS > 0 && e.GBSeconds >= 0 && !math.IsNaN(e.GBSeconds) && !math.IsInf(e.GBSeconds, 0) {
			kept = append(kept, e)
		}
	}
	f.Entries = kept
	return &f, nil
}

// classParams are the arguments machineClass reads, kept in entries.
var classParams = map[string]bool{"format": true, "model": true, "solver": true}

// classDefaults are the values of classParams when a stage leaves them out.
var classDefaults = map[string]string{"format": "libsvm", "model": "logistic_regression", "solver": "auto"}

// machineClass is what of a stage's arguments (display forms) makes its
// throughput another: load's format, train's model and solver (a stage that
// leaves one out has the operator's default); "" for other operators.
func machineClass(op string, params map[string]string) string {
	var keys []string
	switch op {
	case "load":
		keys = []string{"format"}
	case "train":
		keys = []string{"model", "solver"}
	default:
		return ""
	}
	var parts []string
	for _, k := range keys {
		v := strings.Trim(params[k], `"`)
		if v == "" || v == "null" {
			v = classDefaults[k] // left out is the operator's default
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

// displays is params' display forms.
func displays(params map[string]state.Param) map[string]string {
	out := make(map[string]string, len(params))
	for k, p := range params {
		out[k] = p.Display
	}
	return out
}

// MachineEntries turns the records of the stages of p that ran (recs, as the
// state now holds them) into entries of the machine's history: with the
// planner's choices in place of "auto" arguments. Records of runs cut short
// by a budget or deadline (they would teach the plan a stop, not a
// throughput), or without measurements, input bytes or a backend, are left
// out.
func MachineEntries(p *Plan, recs []*state.StageRecord) []MachineEntry {
	var out []MachineEntry
	for _, r := range recs {
		if r == nil || r.Stopped != "" || r.InputBytes <= 0 || !r.Finished.After(r.Started) || r.Backend == "" {
			continue
		}
		disp := displays(r.Params)
		params := map[string]string{}
		for k, v := range disp {
			if _, err := strconv.ParseFloat(v, 64); err == nil || classParams[k] {
				params[k] = v
			}
		}
		if p != nil {
			if sp := p.Stage(r.Address); sp != nil {
				for _, c := range sp.Sizing {
					if c.Auto && c.numeric() { // not the solver plan foresaw: the record says what ran
						params[c.Param] = strconv.Itoa(c.Value)
					}
				}
			}
		}
		e := MachineEntry{
			Backend: r.Backend, Operator: r.Operator, Class: machineClass(r.Operator, disp) + ranSolver(r, disp), Params: params,
			InputBytes: r.InputBytes, WallNS: int64(r.Finished.Sub(r.Started)), GBSeconds: r.GBSeconds,
			MemoryMB: r.MemoryMB, Tasks: r.Tasks, Calibration: r.Calibration, Finished: r.Finished, Runs: 1,
		}
		if mem := r.MemoryMB; mem > 0 && r.GBSeconds > 0 {
			e.BytesPerFunctionSecond = math.Round(float64(r.InputBytes) / (r.GBSeconds * 1024 / float64(mem)))
		}
		out = append(out, e)
	}
	return out
}

// FoldMachineHistory adds entries to the machine's history at path: under the
// file's lock, it reads the file (a corrupt one is replaced, and the returned
// note says so), folds the entries in (see the top of this file) and writes
// the result atomically. Errors are for a note: the caller's apply succeeded.
func FoldMachineHistory(path string, entries []MachineEntry) (note string, err error) {
	if path == "" || len(entries) == 0 {
		return "", nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("calibration history: %w", err)
	}
	unlock, err := lockMachineFile(path + ".lock")
	if err != nil {
		return "", fmt.Errorf("calibration history %s: %w", path, err)
	}
	defer unlock()
	f, rerr := readMachineFile(path)
	if rerr != nil {
		note = fmt.Sprintf("replaced this machine's calibration history %s, which could not be read (%v)", path, rerr)
		f = &machineFile{}
	}
	f.FormatVersion = machineFormat
	for _, e := range entries {
		f.Entries = foldEntry(f.Entries, e)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return note, fmt.Errorf("calibration history: %w", err)
	}
	if err := writeAtomic(path, append(b, '\n')); err != nil {
		return note, fmt.Errorf("calibration history %s: %w", path, err)
	}
	return note, nil
}

// foldEntry adds e to entries: it replaces an entry of its backend, operator
// and class whose size is within machineSameSize of its own, else it is added
// and the oldest of its kind beyond machineKeep go.
func foldEntry(entries []MachineEntry, e MachineEntry) []MachineEntry {
	same := func(x MachineEntry) bool {
		return x.Backend == e.Backend && x.Operator == e.Operator && x.Class == e.Class
	}
	for i, x := range entries {
		if same(x) && sizeRatio(x.InputBytes, e.InputBytes) <= machineSameSize {
			entries[i] = blend(x, e)
			return entries
		}
	}
	entries = append(entries, e)
	var kind []int
	for i, x := range entries {
		if same(x) {
			kind = append(kind, i)
		}
	}
	if len(kind) <= machineKeep {
		return entries
	}
	sort.Slice(kind, func(a, b int) bool { return entries[kind[a]].Finished.Before(entries[kind[b]].Finished) })
	drop := map[int]bool{}
	for _, i := range kind[:len(kind)-machineKeep] {
		drop[i] = true
	}
	kept := entries[:0]
	for i, x := range entries {
		if !drop[i] {
			kept = append(kept, x)
		}
	}
	return kept
}

// blend folds the run e into the entry x of about its size: e's figures
// averaged with x's scaled to e's input bytes, each weighing its runs (x at
// most machineBlend less e's), so the entry is the mean of a few recent runs rather
// than the last alone (a run on a loaded machine moves it by a part). The rest
// (parameters, calibration, throughput) is e's.
func blend(x, e MachineEntry) MachineEntry {
	re := max(e.Runs, 1)
	rx := min(max(x.Runs, 1), machineBlend-re)
	k := float64(e.InputBytes) / float64(x.InputBytes)
	if rx <= 0 || x.InputBytes <= 0 || math.IsNaN(k) || math.IsInf(k, 0) || x.MemoryMB != e.MemoryMB {
		e.Runs = re
		return e
	}
	w := float64(re) / float64(re+rx)
	e.WallNS = int64(w*float64(e.WallNS) + (1-w)*k*float64(x.WallNS))
	e.GBSeconds = w*e.GBSeconds + (1-w)*k*x.GBSeconds
	if e.GBSeconds > 0 && e.MemoryMB > 0 {
		e.BytesPerFunctionSecond = math.Round(float64(e.InputBytes) / (e.GBSeconds * 1024 / float64(e.MemoryMB)))
	}
	e.Runs = re + rx
	return e
}

// sizeRatio is the larger of a/b and b/a (≥ 1).
func sizeRatio(a, b int64) float64 {
	if a <= 0 || b <= 0 {
		return math.Inf(1)
	}
	r := float64(a) / float64(b)
	return math.Max(r, 1/r)
}

// writeAtomic writes b to a temporary file beside path, syncs it and renames it
// over path, so a reader sees the old file or the new one, never part of one.
func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing is there
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// lockMachineFile takes an exclusive flock(2) on the lock file, waiting at
// most machineLockWait; the kernel releases it if the holder dies.
func lockMachineFile(name string) (unlock func(), err error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(machineLockWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("another apply has held its lock for %s", machineLockWait)
			}
			return nil, err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// find is the entry for a stage of operator op and class on backend whose
// input is nearest in size to in (by ratio; the newest of equals), as a state
// record for fromHistory, or nil.
func (h *MachineHistory) find(backend, op, class string, in int64) *state.StageRecord {
	if h == nil || in <= 0 {
		return nil
	}
	var best *MachineEntry
	for i := range h.entries {
		e := &h.entries[i]
		if e.Operator != op || !classMatch(e.Class, class) || (backend != "" && e.Backend != backend) {
			continue
		}
		if best == nil {
			best = e
			continue
		}
		d, bd := sizeRatio(e.InputBytes, in), sizeRatio(best.InputBytes, in)
		if d < bd || (d == bd && e.Finished.After(best.Finished)) {
			best = e
		}
	}
	if best == nil {
		return nil
	}
	params := make(map[string]state.Param, len(best.Params))
	for k, v := range best.Params {
		params[k] = state.Param{Display: v}
	}
	return &state.StageRecord{
		Operator: best.Operator, Backend: best.Backend, Params: params, InputBytes: best.InputBytes,
		Started: best.Finished.Add(-time.Duration(best.WallNS)), Finished: best.Finished,
		Tasks: best.Tasks, GBSeconds: best.GBSeconds, MemoryMB: best.MemoryMB, Calibration: best.Calibration,
	}
}

// machineRecord is the machine's history for sp (its operator and class, on
// the plan's backend, nearest in input size in), or nil.
func (m *costModel) machineRecord(sp *StagePlan, cfg cty.Value, p *Plan, in int64) *state.StageRecord {
	if m.machine == nil {
		return nil
	}
	class := machineClass(sp.Operator, displays(sp.Params))
	if sp.Operator == "train" && strings.HasSuffix(class, "solver=auto") {
		switch solver, _ := sp.PlannedSolver(); solver {
		case "sgd":
			class += autoSGD
		case "lbfgs", "newton":
			class += autoFullBatch
		}
	}
	return m.machine.find(m.limits.Backend, sp.Operator, class, in)
}

// The solver a train stage with solver "auto" ran, as its entry's class
// ends: SGD streams minibatches; the full-batch solvers (L-BFGS and others
// that count gradient passes) make passes over data in memory, at another
// throughput. A plan that cannot tell which auto will choose takes either.
const (
	autoSGD       = ":sgd"
	autoFullBatch = ":full_batch"
)

// ranSolver is the class suffix of a train record with solver "auto": which
// kind of solver ran, from its metrics ("passes" for a full-batch solver, a
// minibatch iteration's timings for SGD); "" otherwise.
func ranSolver(r *state.StageRecord, disp map[string]string) string {
	if r.Operator != "train" || !strings.HasSuffix(machineClass("train", disp), "solver=auto") {
		return ""
	}
	if _, ok := r.Metrics["passes"]; ok {
		return autoFullBatch
	}
	if _, ok := r.Metrics["iteration_p50_us"]; ok {
		return autoSGD
	}
	return ""
}

// classMatch reports whether an entry of class have serves a plan of class
// want: the same, or want leaves open which solver "auto" chooses.
func classMatch(have, want string) bool {
	if have == want {
		return true
	}
	return strings.HasSuffix(want, "solver=auto") && strings.HasPrefix(have, want+":")
}
