package normalize

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/dataset/manifest"
	"github.com/stratus-ml/stratus/operators"
)

// Operator returns the normalize operator: its schema, coordinator and task
// handler.
func Operator() *operators.Operator {
	return &operators.Operator{
		Schema:      Schema,
		Coordinator: operators.CoordinatorFunc(Run),
		Handlers:    map[string]operators.Handler{KindScale: scale},
	}
}

// MaxDensified bounds the entries that densified features may add (rows ×
// features whose implicit zero maps to a non-zero value): about 2 GiB of
// partitions.
const MaxDensified = 1 << 28

// TasksPerSlot is how many scale tasks the coordinator aims for per backend
// slot; each task rescales a run of consecutive partitions of one dataset,
// at least MinTaskBytes of them (a task's fixed cost is the statistics of
// its output, up to 32 bytes per slot of the feature space).
const (
	TasksPerSlot = 4
	MinTaskBytes = 32 << 20
)

// Run is the normalize coordinator: it computes the parameters from the
// input's train statistics, rescales every partition of train and test in
// one wave, and writes the new manifests.
func Run(ctx context.Context, s operators.Stage) (cty.Value, error) {
	cfg := s.Config()
	method := cfg.GetAttr("method").AsString()
	center := cfg.GetAttr("center").True()
	var lo, hi float64
	if r := cfg.GetAttr("range"); !r.IsNull() && r.LengthInt() == 2 {
		lo, _ = r.Index(cty.NumberIntVal(0)).AsBigFloat().Float64()
		hi, _ = r.Index(cty.NumberIntVal(1)).AsBigFloat().Float64()
	} else {
		lo, hi = 0, 1
	}
	uris, err := inputURIs(cfg.GetAttr("input"))
	if err != nil {
		return cty.NilVal, err
	}
	run, err := s.Blob(ctx)
	if err != nil {
		return cty.NilVal, err
	}
	in := map[string]*manifest.Manifest{}
	sets := []string{manifest.Train, manifest.Test}
	if uris[manifest.Validation] != "" {
		sets = append(sets, manifest.Validation)
	}
	for _, ds := range sets {
		if in[ds], err = manifest.Open(ctx, run, uris[ds]); err != nil {
			return cty.NilVal, fmt.Errorf("input %s: %w", ds, err)
		}
	}
	train, test := in[manifest.Train], in[manifest.Test]
	if train.Rows == 0 {
		return cty.NilVal, fmt.Errorf("input train set %s has no rows", uris[manifest.Train])
	}
	for _, ds := range sets[1:] {
		if m := in[ds]; m.Rows > 0 && m.Features != train.Features {
			return cty.NilVal, fmt.Errorf("input train and %s sets have %d and %d features; normalize needs one feature space", ds, train.Features, m.Features)
		}
	}
	stats, err := train.ReadStats(ctx, run)
	if err != nil {
		return cty.NilVal, err
	}

	// Parameters of this step, from the train statistics, and their
	// composition with any earlier normalization (raw slots → output).
	var step *manifest.Affine
	norm := &manifest.Normalization{Method: method, Input: uris[manifest.Train], StatsFrom: uris[manifest.Train]}
	switch method {
	case "min_max":
		step = MinMax(stats, lo, hi, NumericSlots(train.Format))
		norm.Range = []float64{lo, hi}
	case "standard":
		step = Standard(stats, center, NumericSlots(train.Format))
		norm.Center = center
	default:
		return cty.NilVal, fmt.Errorf("unknown method %q (want min_max or standard)", method)
	}
	dense := len(step.Densified())
	norm.Densified = dense
	allRows := train.Rows + test.Rows
	if v := in[manifest.Validation]; v != nil {
		allRows += v.Rows
	}
	if added := allRows * int64(dense); added > MaxDensified {
		return cty.NilVal, fmt.Errorf("%s would give %d features a non-zero value where rows store none, adding up to %d entries (%d rows): more than the %d this stage allows. Use method = \"standard\" without center (zeros stay zero), or min_max with range = [0, hi] on non-negative features", describe(method, lo, hi, center), dense, added, allRows, MaxDensified)
	}
	total := step
	if train.Normalization != nil {
		prev, err := train.ReadParams(ctx, run)
		if err != nil {
			return cty.NilVal, err
		}
		total = prev.Then(step)
	}
	stepKey := manifest.Key(s.Key(), "step.params")
	if _, err := manifest.PutParams(ctx, run, stepKey, step); err != nil {
		return cty.NilVal, err
	}
	norm.Params = manifest.Key(s.Key(), "normalization.params")
	if norm.ParamsDigest, err = manifest.PutParams(ctx, run, norm.Params, total); err != nil {
		return cty.NilVal, err
	}

	// One wave: runs of consecutive partitions, train then test.
	type taskRef struct{ ds string }
	var tasks []operators.Task
	var refs []taskRef
	nparts := 0
	for _, ds := range sets {
		nparts += len(in[ds].Partitions)
	}
	slots := TasksPerSlot * max(1, s.Capacity())
	per := max(1, (nparts+slots-1)/slots, MinTaskBytes/max(1, train.PartitionBytes))
	var params []scaleParams
	for _, ds := range sets {
		m := in[ds]
		key, _ := manifest.KeyOf(run, uris[ds])
		for lo := 0; lo < len(m.Partitions); lo += per {
			params = append(params, scaleParams{Dataset: ds, Manifest: key, From: lo, To: min(lo+per, len(m.Partitions)), Params: stepKey})
			refs = append(refs, taskRef{ds})
		}
	}
	// With psstore shards, the tasks reduce their statistics there.
	reduce, endReduce, err := operators.BeginStatsReduce(ctx, s, len(params), train.Features)
	if err != nil {
		return cty.NilVal, err
	}
	defer endReduce()
	for i, p := range params {
		p.Reduce = reduce.Task(i, len(params))
		t := operators.Task{Kind: KindScale}
		if err := t.SetParams(p); err != nil {
			return cty.NilVal, err
		}
		tasks = append(tasks, t)
	}
	results, err := s.RunWave(ctx, operators.Wave{Name: "scale", Tasks: tasks})
	if err != nil {
		return cty.NilVal, err
	}
	pieces := map[string][]*manifest.Piece{}
	reported := map[string]map[int][]int{}
	for i, r := range results {
		var p manifest.Piece
		if err := json.Unmarshal(r.Output, &p); err != nil {
			return cty.NilVal, fmt.Errorf("scale task %d returned a malformed result: %w", i, err)
		}
		ds := refs[i].ds
		pieces[ds] = append(pieces[ds], &p)
		if reported[ds] == nil {
			reported[ds] = map[int][]int{}
		}
		for _, b := range p.StatsBlocks {
			reported[ds][b] = append(reported[ds][b], i)
		}
	}
	var all []*manifest.Piece
	for _, ds := range sets {
		all = append(all, pieces[ds]...)
	}
	setRows := map[string]int64{}
	for _, ds := range sets {
		for _, p := range pieces[ds] {
			setRows[ds] += p.Rows
		}
	}
	storeStats, err := reduce.Collect(ctx, s, sets, reported, setRows, len(results))
	if err != nil {
		return cty.NilVal, err
	}
	if storeStats != nil {
		err = manifest.LoadPartitionLists(ctx, run, all)
	} else {
		err = manifest.LoadPieces(ctx, run, all)
	}
	if err != nil {
		return cty.NilVal, err
	}

	out := map[string]cty.Value{}
	var rows int64
	for _, ds := range manifest.Datasets {
		src := in[ds]
		if src == nil { // an input without a validation set: an empty one
			m := &manifest.Manifest{Dataset: ds, Stage: s.Address(), StageKey: s.Key(), Store: strings.TrimSuffix(run.URI(""), "/"),
				Format: train.Format, Features: train.Features, Normalization: norm}
			empty, err := manifest.Assemble(m, nil)
			if err != nil {
				return cty.NilVal, err
			}
			if out[ds], err = operators.WriteDataset(ctx, run, s.Key(), m, empty); err != nil {
				return cty.NilVal, err
			}
			continue
		}
		m := &manifest.Manifest{
			Dataset: ds, Stage: s.Address(), StageKey: s.Key(), Store: strings.TrimSuffix(run.URI(""), "/"),
			Format: src.Format, Source: src.Source, Split: src.Split, PartitionBytes: src.PartitionBytes,
		}
		n := *norm
		n.Input = uris[ds]
		m.Normalization = &n
		st, err := manifest.Assemble(m, pieces[ds])
		if err != nil {
			return cty.NilVal, fmt.Errorf("%s statistics: %w", ds, err)
		}
		m.Labels = src.Labels // the same rows: keep where the input's labels were first non-binary
		if ss := storeStats[ds]; ss != nil {
			if ss.Rows != m.Rows {
				return cty.NilVal, fmt.Errorf("%s statistics from psstore: over %d rows, the tasks wrote %d", ds, ss.Rows, m.Rows)
			}
			st = ss
		}
		if m.Rows != src.Rows {
			return cty.NilVal, fmt.Errorf("%s: rescaled %d rows of %d (a bug in normalize)", ds, m.Rows, src.Rows)
		}
		m.Features = train.Features
		if out[ds], err = operators.WriteDataset(ctx, run, s.Key(), m, st); err != nil {
			return cty.NilVal, err
		}
		rows += m.Rows
	}
	out["rows"] = cty.NumberIntVal(rows)
	out["features"] = cty.NumberIntVal(int64(train.Features))
	s.Event(operators.Event{Kind: "note", Note: fmt.Sprintf("%s: %d of %d features rescaled, %d densified", describe(method, lo, hi, center), step.Len(), stats.Len(), dense),
		Metrics: map[string]float64{"rescaled_features": float64(step.Len()), "densified_features": float64(dense)}})
	return cty.ObjectVal(out), nil
}

func describe(method string, lo, hi float64, center bool) string {
	if method == "min_max" {
		return fmt.Sprintf("min_max to [%g, %g]", lo, hi)
	}
	if center {
		return "standard with center"
	}
	return "standard"
}

// inputURIs returns the manifest URIs of the input's train and test sets.
func inputURIs(v cty.Value) (map[string]string, error) {
	const want = "input must be a stage with train and test datasets, such as load.adult"
	if v.IsNull() || !v.Type().IsObjectType() {
		return nil, fmt.Errorf("%s; got %s", want, v.Type().FriendlyName())
	}
	out := map[string]string{}
	for _, ds := range manifest.Datasets {
		if ds == manifest.Validation && !v.Type().HasAttribute(ds) {
			continue // optional: an input from before validation sets
		}
		if !v.Type().HasAttribute(ds) {
			return nil, fmt.Errorf("%s; this value has no %q attribute", want, ds)
		}
		d := v.GetAttr(ds)
		if ds == manifest.Validation && d.IsNull() {
			continue
		}
		if d.IsNull() || !d.Type().IsObjectType() || !d.Type().HasAttribute("manifest") || d.GetAttr("manifest").IsNull() || !d.GetAttr("manifest").Type().Equals(cty.String) {
			return nil, fmt.Errorf("%s; its %q is not a dataset", want, ds)
		}
		out[ds] = d.GetAttr("manifest").AsString()
	}
	return out, nil
}
