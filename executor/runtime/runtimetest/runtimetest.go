// Package runtimetest runs pipelines through executor.Apply with a real state
// store, blob store and psstore, assembled by runtime.Open exactly as the CLI
// assembles them, for operator tests: write the HCL, plan it as `stratus plan`
// would, apply it, and read the datasets the stages wrote.
package runtimetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/blobs"
	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/manifest"
	"github.com/stratus-ml/stratus/dataset/partition"
	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/executor/executortest"
	"github.com/stratus-ml/stratus/executor/runtime"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/builtin"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/state"
)

// Harness applies the pipeline in Dir against one state store.
type Harness struct {
	T        testing.TB
	Dir      string
	Registry *operators.Registry
	State    *state.Store
	// Env is what tasks receive; Blob defaults to Dir/.stratus/blobs.
	Env operators.TaskEnv
	// Slots is the local backend's concurrency (default 4).
	Slots int
	// Remote digests s3:// sources for the plan; nil digests them as the CLI does,
	// with Env's S3 settings.
	Remote planner.SourceDigester
	// Shards is the number of in-process psstore shards started for an apply that
	// runs a stage using psstore (default 2).
	Shards int
	// Lifetime is the function lifetime of long-running tasks (default 1 minute).
	Lifetime time.Duration
	// Wrap, when set, wraps the local backend (to inject faults).
	Wrap func(executor.Backend) executor.Backend
	// Router, when set, is passed to Apply (to send commands to running stages).
	Router *executor.Router
	// Observer, when set, also receives the apply's events.
	Observer executor.Observer
	// Retries per task (default 1).
	Retries int
}

// New returns a harness for a new pipeline directory holding main.hcl = src.
func New(t testing.TB, src string) *Harness {
	t.Helper()
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, ".stratus", "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &Harness{T: t, Dir: dir, Registry: builtin.Registry(), State: st, Slots: 4,
		Env: operators.TaskEnv{Blob: "file://" + filepath.ToSlash(filepath.Join(dir, ".stratus", "blobs"))}}
	h.Write("main.hcl", src)
	return h
}

// Write writes a file in the pipeline directory.
func (h *Harness) Write(name, content string) {
	h.T.Helper()
	p := filepath.Join(h.Dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.T.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		h.T.Fatal(err)
	}
}

// Plan plans the pipeline, returning its diagnostics.
func (h *Harness) Plan() (*planner.Plan, hcl.Diagnostics) {
	cfg, diags := dsl.Load(h.Dir, dsl.LoadOptions{Registry: h.Registry, Backends: runtime.Decoder{}})
	if diags.HasErrors() {
		return nil, diags
	}
	remote := h.Remote
	if remote == nil {
		remote = runtime.Sources(blobs.Options{Region: h.Env.BlobRegion, Endpoint: h.Env.BlobEndpoint})
	}
	return planner.Build(context.Background(), cfg, planner.Options{State: h.State, Remote: remote})
}

// MustPlan plans the pipeline or fails the test.
func (h *Harness) MustPlan() *planner.Plan {
	h.T.Helper()
	p, diags := h.Plan()
	if diags.HasErrors() {
		h.T.Fatalf("plan: %s", diags.Error())
	}
	return p
}

// Apply plans and applies the pipeline.
func (h *Harness) Apply() (*executor.Summary, *executortest.Recorder, error) {
	h.T.Helper()
	return h.ApplyPlan(h.MustPlan())
}

// ApplyPlan applies p.
func (h *Harness) ApplyPlan(p *planner.Plan) (*executor.Summary, *executortest.Recorder, error) {
	return h.ApplyPlanContext(context.Background(), p)
}

// ApplyPlanContext applies p under ctx on the runtime runtime.Open assembles for
// it (the pipeline's local backend, sized by the harness; psstore shards started
// when a stage that will run uses them).
func (h *Harness) ApplyPlanContext(ctx context.Context, p *planner.Plan) (*executor.Summary, *executortest.Recorder, error) {
	rt, err := runtime.Open(ctx, p, runtime.Options{
		Registry:        h.Registry,
		StateDir:        filepath.Join(h.Dir, ".stratus"),
		BlobRegion:      h.Env.BlobRegion,
		BlobEndpoint:    h.Env.BlobEndpoint,
		PSStore:         h.Env.PSStore,
		PSStoreToken:    h.Env.Token,
		PSStoreReplicas: h.Env.PSStoreReplicas,
		WrapBackend:     h.Wrap,
		Configure: func(s *runtime.Settings) {
			l := &s.Local
			l.MaxConcurrency = h.Slots
			if h.Shards > 0 {
				l.PSStoreShards, l.ShardsAuto = h.Shards, false
			}
			if h.Env.Blob != "" {
				l.Blob = h.Env.Blob
			}
			l.LifetimeD, l.TaskTimeoutD = h.Lifetime, 5*time.Minute
			if l.LifetimeD <= 0 {
				l.LifetimeD = time.Minute
			}
		},
	})
	if err != nil {
		return nil, nil, err
	}
	defer rt.Close()
	retries := h.Retries
	if retries <= 0 {
		retries = 1
	}
	rec := &executortest.Recorder{}
	var obs executor.Observer = rec
	if h.Observer != nil {
		obs = executor.Observers{rec, h.Observer}
	}
	o := rt.ApplyOptions()
	o.Plan, o.State, o.Registry, o.Observer, o.Router = p, h.State, h.Registry, obs, h.Router
	o.Retries, o.RetryBackoff = retries, time.Millisecond
	sum, err := executor.Apply(ctx, o)
	return sum, rec, err
}

// MustApply applies the pipeline or fails the test.
func (h *Harness) MustApply() (*executor.Summary, *executortest.Recorder) {
	h.T.Helper()
	sum, rec, err := h.Apply()
	if err != nil {
		msg := err.Error()
		if sum != nil {
			for _, s := range sum.Stages {
				if s.Error != "" {
					msg += "\n" + s.Address + ": " + s.Error
				}
			}
		}
		h.T.Fatalf("apply: %s", msg)
	}
	return sum, rec
}

// Store opens the run's blob store.
func (h *Harness) Store() blob.Store {
	h.T.Helper()
	st, err := blobs.Open(context.Background(), h.Env.Blob, blobs.Options{Region: h.Env.BlobRegion, Endpoint: h.Env.BlobEndpoint})
	if err != nil {
		h.T.Fatal(err)
	}
	return st
}

// Output returns a stage's recorded output value.
func (h *Harness) Output(addr string) cty.Value {
	h.T.Helper()
	rec, err := h.State.Stage(addr)
	if err != nil || rec == nil {
		h.T.Fatalf("stage %s is not recorded (err %v)", addr, err)
	}
	v, err := state.DecodeValue(rec.Output)
	if err != nil {
		h.T.Fatal(err)
	}
	return v
}

// Dataset reads the manifest a dataset value (load.x.train) points at.
func (h *Harness) Dataset(v cty.Value) *manifest.Manifest {
	h.T.Helper()
	m, err := manifest.Open(context.Background(), h.Store(), v.GetAttr("manifest").AsString())
	if err != nil {
		h.T.Fatal(err)
	}
	if got := Int(v.GetAttr("rows")); got != m.Rows {
		h.T.Errorf("dataset value says %d rows, its manifest %d", got, m.Rows)
	}
	if got := Int(v.GetAttr("partitions")); got != int64(len(m.Partitions)) {
		h.T.Errorf("dataset value says %d partitions, its manifest %d", got, len(m.Partitions))
	}
	if got := Int(v.GetAttr("features")); got != int64(m.Features) {
		h.T.Errorf("dataset value says %d features, its manifest %d", got, m.Features)
	}
	return m
}

// Rows reads every row of a dataset, in order, checking each partition
// against its manifest entry.
func (h *Harness) Rows(m *manifest.Manifest) []dataset.Row {
	h.T.Helper()
	st := h.Store()
	var rows []dataset.Row
	for _, pe := range m.Partitions {
		p, err := partition.Read(context.Background(), st, pe.Key)
		if err != nil {
			h.T.Fatal(err)
		}
		if p.Rows() != pe.Rows || p.NNZ() != pe.NNZ || p.Size() != pe.Bytes || p.Features() != pe.Features {
			h.T.Fatalf("partition %s: %d rows %d nnz %d bytes %d features, manifest says %+v", pe.Key, p.Rows(), p.NNZ(), p.Size(), p.Features(), pe)
		}
		for i := 0; i < p.Rows(); i++ {
			label, idx, val := p.Row(i)
			r := dataset.Row{Label: label, Indices: append([]uint32(nil), idx...)}
			if val == nil {
				r.Values = make([]float32, len(idx))
				for k := range r.Values {
					r.Values[k] = 1
				}
			} else {
				r.Values = append([]float32(nil), val...)
			}
			rows = append(rows, r)
		}
	}
	if int64(len(rows)) != m.Rows {
		h.T.Fatalf("partitions hold %d rows, manifest says %d", len(rows), m.Rows)
	}
	return rows
}

// Stats reads a dataset's statistics.
func (h *Harness) Stats(m *manifest.Manifest) *manifest.Stats {
	h.T.Helper()
	s, err := m.ReadStats(context.Background(), h.Store())
	if err != nil {
		h.T.Fatal(err)
	}
	return s
}

// Feature is a reference computation of one feature's statistics.
type Feature struct {
	Count             int64
	Min, Max          float64
	Sum, SumSq        float64
	AllMin, AllMax    float64 // with the implicit zeros
	Mean, Variance    float64 // over every row
	ImplicitZeroCount int64
}

// Reference computes per-feature statistics of rows the plain way, as the
// check for manifest.Stats.
func Reference(rows []dataset.Row) map[uint32]*Feature {
	out := map[uint32]*Feature{}
	for _, r := range rows {
		for k, i := range r.Indices {
			v := float64(r.Values[k])
			f := out[i]
			if f == nil {
				f = &Feature{Min: math.Inf(1), Max: math.Inf(-1)}
				out[i] = f
			}
			f.Count++
			f.Min, f.Max = math.Min(f.Min, v), math.Max(f.Max, v)
			f.Sum += v
			f.SumSq += v * v
		}
	}
	n := float64(len(rows))
	for _, f := range out {
		f.ImplicitZeroCount = int64(len(rows)) - f.Count
		f.AllMin, f.AllMax = f.Min, f.Max
		if f.ImplicitZeroCount > 0 {
			f.AllMin, f.AllMax = math.Min(f.Min, 0), math.Max(f.Max, 0)
		}
		f.Mean = f.Sum / n
		f.Variance = float64(f.ImplicitZeroCount) * f.Mean * f.Mean // the zeros' share
	}
	// Variance in a second pass, as Σ(x − mean)² / n.
	for _, r := range rows {
		for k, i := range r.Indices {
			f := out[i]
			d := float64(r.Values[k]) - f.Mean
			f.Variance += d * d
		}
	}
	for _, f := range out {
		f.Variance /= n
	}
	return out
}

// CompareStats checks stats against the reference computation over rows:
// the same features, counts, min and max exactly, sums to a relative 1e-9.
func CompareStats(t testing.TB, what string, got *manifest.Stats, rows []dataset.Row) {
	t.Helper()
	ref := Reference(rows)
	if got.Rows != int64(len(rows)) {
		t.Errorf("%s: statistics over %d rows, want %d", what, got.Rows, len(rows))
	}
	if got.Len() != len(ref) {
		t.Errorf("%s: statistics of %d features, the rows have %d", what, got.Len(), len(ref))
	}
	bad := 0
	for i, r := range ref {
		f := got.Feature(i)
		if f.Count != r.Count || float64(f.Min) != r.Min || float64(f.Max) != r.Max || !Close(f.Sum, r.Sum, 1e-9) || !Close(f.SumSq, r.SumSq, 1e-9) {
			if bad++; bad <= 5 {
				t.Errorf("%s: feature %d: stats %+v, rows give count %d min %g max %g sum %g sumsq %g", what, i, f, r.Count, r.Min, r.Max, r.Sum, r.SumSq)
			}
		}
	}
}

// Close reports whether a and b agree to a relative tol (absolute near 0).
func Close(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// RowDigests returns a digest of each row, for comparing row sequences.
func RowDigests(rows []dataset.Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		h := sha256.New()
		fmt.Fprintf(h, "%g|", r.Label)
		for k, ix := range r.Indices {
			fmt.Fprintf(h, "%d:%g ", ix, r.Values[k])
		}
		out[i] = hex.EncodeToString(h.Sum(nil)[:12])
	}
	return out
}

// Int converts a number value.
func Int(v cty.Value) int64 {
	i, _ := v.AsBigFloat().Int64()
	return i
}

// Actions returns each stage's action ("ran", "cached", …), sorted by
// address.
func Actions(sum *executor.Summary) string {
	var parts []string
	for _, s := range sum.Stages {
		parts = append(parts, s.Address+"="+s.Action)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
