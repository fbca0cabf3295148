package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/manifest"
	"github.com/stratus-ml/stratus/operators"
)

// Operator returns the load operator: its schema, coordinator and task
// handler.
func Operator() *operators.Operator {
	return &operators.Operator{
		Schema:      Schema,
		Coordinator: operators.CoordinatorFunc(Run),
		Handlers:    map[string]operators.Handler{KindParse: parse},
	}
}

// Run is the load coordinator (see the package documentation).
func Run(ctx context.Context, s operators.Stage) (cty.Value, error) {
	cfg, err := decodeConfig(s.Config())
	if err != nil {
		return cty.NilVal, err
	}
	run, err := s.Blob(ctx)
	if err != nil {
		return cty.NilVal, err
	}

	// Resolve every input before anything runs: a missing source fails here.
	inputs := []*input{{attr: "source", spec: cfg.Source, dataset: manifest.Train}}
	if cfg.TestSource != "" {
		inputs = append(inputs, &input{attr: "test_source", spec: cfg.TestSource, dataset: manifest.Test})
	}
	if cfg.ValidationSource != "" {
		inputs = append(inputs, &input{attr: "validation_source", spec: cfg.ValidationSource, dataset: manifest.Validation})
	}
	for _, in := range inputs {
		if err := in.resolve(ctx, s); err != nil {
			return cty.NilVal, err
		}
		if in.total == 0 {
			return cty.NilVal, fmt.Errorf("%s %q holds no data: %s; check the path, or that the file was written completely", in.attr, in.spec, describeEmpty(in))
		}
	}
	if err := sniffAll(ctx, s, cfg.Format, inputs); err != nil {
		return cty.NilVal, err
	}
	if strings.HasPrefix(s.TaskEnv().Blob, "s3://") {
		if err := uploadLocal(ctx, s, run, inputs); err != nil {
			return cty.NilVal, err
		}
	}
	fs, pr, err := formatFor(ctx, s, cfg, inputs)
	if err != nil {
		return cty.NilVal, err
	}

	// One wave: each input cut into ranges, one task per range.
	type taskRef struct {
		input int
		spans []span
	}
	var tasks []operators.Task
	var params []parseParams
	var refs []taskRef
	for ii, in := range inputs {
		n := taskCount(in.total, s.Capacity(), cfg.Tasks)
		shares := cutWhole(in.sizes(), in.whole(), n)
		if cfg.Format == "parquet" {
			shares = parquetShares(in, n)
		}
		var cuts []int64
		var content int64
		if cfg.Format != "parquet" {
			if cuts, content, err = streamCuts(ctx, s, in, cfg.Tasks); err != nil {
				return cty.NilVal, err
			}
		}
		if cfg.Tasks > 0 && len(shares) < n {
			what := "compressed files cannot be split"
			if cfg.Format == "parquet" {
				what = "a Parquet row group is read by one task"
			}
			s.Event(operators.Event{Kind: "note", Note: fmt.Sprintf("%s: %d task(s), not tasks = %d: %s", in.attr, len(shares), cfg.Tasks, what)})
		}
		if c, f := in.compressed(), 0; c > 0 {
			var kinds []string
			if f, kinds = in.framed(); f > 0 {
				s.Event(operators.Event{Kind: "note", Note: fmt.Sprintf("%s: %d compressed file(s) cut into frames (%s), split at frame boundaries and decoded in parallel, as plain files are split", in.attr, f, strings.Join(kinds, ", "))})
			}
			if c > f {
				s.Event(operators.Event{Kind: "note", Note: fmt.Sprintf("%s: %d compressed file(s) (%s), each streamed whole by one task, in %d task(s)", in.attr, c-f, strings.Join(in.codecs(), ", "), len(shares))})
			}
			if len(cuts) > 0 {
				s.Event(operators.Event{Kind: "note", Note: fmt.Sprintf("%s: its %s of content cut into %d pieces, as the plain file's %d tasks would cut it, so that it loads into the plain file's partitions", in.attr, humanBytes(content), len(cuts)+1, len(cuts)+1)})
			}
		}
		for _, share := range shares {
			p := parseParams{Dataset: in.dataset, Format: *fs, Skip: cfg.OnError == "skip", PartitionBytes: cfg.PartitionBytes}
			if in.dataset == manifest.Train {
				p.Split = cfg.Split
			}
			for _, sp := range share {
				o := in.objects[sp.obj]
				p.Segments = append(p.Segments, segment{Store: o.store, Key: o.key, Name: o.name, Start: sp.start, End: sp.end, Codec: o.codec, Framing: o.framing,
					RowGroups: o.parquet != nil, Size: o.size})
				if len(cuts) > 0 {
					p.Segments[len(p.Segments)-1].Cuts, p.Segments[len(p.Segments)-1].Content = cuts, content
				}
			}
			params = append(params, p)
			refs = append(refs, taskRef{input: ii, spans: share})
		}
	}
	// With psstore shards, the tasks reduce their statistics there.
	reduce, endReduce, err := operators.BeginStatsReduce(ctx, s, len(params), pr.Features())
	if err != nil {
		return cty.NilVal, err
	}
	defer endReduce()
	if reduce != nil {
		// A task's contribution is one piece's statistics: a stream is then
		// one piece, not the plain file's shares.
		for i := range params {
			for k := range params[i].Segments {
				params[i].Segments[k].Cuts, params[i].Segments[k].Content = nil, 0
			}
		}
	}
	for i := range params {
		params[i].Reduce = reduce.Task(i, len(params))
		t := operators.Task{Kind: KindParse}
		if err := t.SetParams(params[i]); err != nil {
			return cty.NilVal, err
		}
		tasks = append(tasks, t)
	}
	results, err := s.RunWave(ctx, operators.Wave{Name: "parse", Tasks: tasks})
	if err != nil {
		return cty.NilVal, err
	}
	outs := make([]*parseOutput, len(results))
	for i, r := range results {
		outs[i] = &parseOutput{}
		if err := json.Unmarshal(r.Output, outs[i]); err != nil {
			return cty.NilVal, fmt.Errorf("parse task %d returned a malformed result: %w", i, err)
		}
	}

	// Lines per input, the object line number of each bad line, skipped
	// counts: a bad line's number is its number in its segment plus the
	// lines of the earlier segments of the same object.
	lines := make([]int64, len(inputs))
	skipped := make([]map[string]int64, len(inputs))
	examples := make([]map[string]*dataset.ParseError, len(inputs))
	objLines := make([][]int64, len(inputs))
	firstLabel := map[string]*manifest.LabelLine{} // by dataset
	for ii, in := range inputs {
		objLines[ii] = make([]int64, len(in.objects))
		examples[ii] = map[string]*dataset.ParseError{}
	}
	for ti, o := range outs {
		ii := refs[ti].input
		in := inputs[ii]
		base := make([]int64, len(refs[ti].spans))
		for si, sp := range refs[ti].spans {
			base[si] = objLines[ii][sp.obj]
			if si < len(o.Lines) {
				objLines[ii][sp.obj] += o.Lines[si]
				lines[ii] += o.Lines[si]
			}
		}
		if o.Fatal != "" {
			return cty.NilVal, errors.New(o.Fatal)
		}
		if sg := params[ti].Segments; !o.Failed && len(sg) == 1 && len(sg[0].Cuts) > 0 && o.Content != sg[0].Content {
			s.Event(operators.Event{Kind: "note", Note: fmt.Sprintf("%s: its header stated %d bytes of content, it holds %d (several frames or members?): it was cut into pieces where a file of the stated size would be, so its partitions differ from the plain file's (the rows are the same)", sg[0].Name, sg[0].Content, o.Content)})
		}
		for _, ds := range manifest.Datasets {
			if l := o.FirstLabel[ds]; l != nil && firstLabel[ds] == nil && l.Segment >= 0 && l.Segment < len(base) {
				firstLabel[ds] = &manifest.LabelLine{Object: in.objects[refs[ti].spans[l.Segment].obj].name, Line: base[l.Segment] + l.Line, Value: l.Value}
			}
		}
		for _, b := range o.Bad {
			if b.Segment < 0 || b.Segment >= len(base) {
				return cty.NilVal, fmt.Errorf("parse task %d reported a bad line in segment %d of %d", ti, b.Segment, len(base))
			}
			pe := &dataset.ParseError{Object: in.objects[refs[ti].spans[b.Segment].obj].name, Line: base[b.Segment] + b.Line,
				Column: b.Column, Text: b.Text, Reason: b.Reason, Detail: b.Detail, Field: b.Field}
			if o.Failed && pe.Field != "" {
				return cty.NilVal, fmt.Errorf("%s\nFix the row, or set on_error = \"skip\" to skip bad rows and count them", pe)
			}
			if o.Failed {
				return cty.NilVal, fmt.Errorf("%s\nFix the line, or set on_error = \"skip\" to skip bad lines and count them", pe)
			}
			if examples[ii][b.Reason] == nil {
				examples[ii][b.Reason] = pe
			}
		}
		for reason, n := range o.Skipped {
			if skipped[ii] == nil {
				skipped[ii] = map[string]int64{}
			}
			skipped[ii][reason] += n
		}
	}
	for ii, in := range inputs {
		if len(skipped[ii]) > 0 {
			note, total := skipNote(in, lines[ii], skipped[ii], examples[ii])
			s.Event(operators.Event{Kind: "note", Note: note, Metrics: map[string]float64{"skipped_lines": float64(total)}})
		}
	}

	// Assemble the datasets from the tasks' pieces.
	pieces := map[string][]*manifest.Piece{}
	for _, o := range outs {
		for _, ps := range o.pieceSets() {
			for _, ds := range manifest.Datasets {
				if p := ps[ds]; p != nil {
					pieces[ds] = append(pieces[ds], p)
				}
			}
		}
	}
	var all []*manifest.Piece
	for _, ds := range manifest.Datasets {
		all = append(all, pieces[ds]...)
	}
	storeStats, err := reducedStats(ctx, s, reduce, outs)
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
	base := manifest.Manifest{
		Stage: s.Address(), StageKey: s.Key(), Store: strings.TrimSuffix(run.URI(""), "/"),
		Format: fs.describe(pr), PartitionBytes: cfg.PartitionBytes,
	}
	ms := map[string]*manifest.Manifest{}
	stats := map[string]*manifest.Stats{}
	for _, ds := range manifest.Datasets {
		m := base
		m.Dataset = ds
		if stats[ds], err = manifest.Assemble(&m, pieces[ds]); err != nil {
			return cty.NilVal, fmt.Errorf("%s statistics: %w", ds, err)
		}
		if storeStats != nil {
			if stats[ds], err = storeStats(ds, m.Rows); err != nil {
				return cty.NilVal, err
			}
		}
		if fs.Name == "ratings" {
			m.Ratings = manifest.SummarizeRatings(stats[ds])
		}
		if m.Labels != nil && firstLabel[ds] != nil {
			m.Labels.First = firstLabel[ds]
		}
		ms[ds] = &m
	}
	features := max(pr.Features(), ms[manifest.Train].Features, ms[manifest.Test].Features, ms[manifest.Validation].Features)
	for ii, in := range inputs {
		src := in.describe()
		src.Lines, src.Skipped = lines[ii], skipped[ii]
		ms[in.dataset].Source = src
		if in.dataset == manifest.Train && cfg.Split != nil {
			sp := &manifest.Split{Test: cfg.Split.Test, Validation: cfg.Split.Validation, Seed: cfg.Split.Seed, Hash: SplitHash}
			ms[manifest.Train].Split = sp
			if cfg.Split.Test > 0 {
				ms[manifest.Test].Source, ms[manifest.Test].Split = src, sp
			}
			if cfg.Split.Validation > 0 {
				ms[manifest.Validation].Source, ms[manifest.Validation].Split = src, sp
			}
		}
	}
	for _, in := range inputs {
		if m := ms[in.dataset]; m.Rows == 0 {
			return cty.NilVal, fmt.Errorf("%s %q holds no rows: %s", in.attr, in.spec, describeNoRows(m.Source))
		}
	}
	if cfg.Split != nil && cfg.Split.Test > 0 && ms[manifest.Test].Rows == 0 {
		s.Event(operators.Event{Kind: "note", Note: fmt.Sprintf("split = { test = %g } left the test set empty (%d rows in all): use a larger fraction or more data", cfg.Split.Test, ms[manifest.Train].Rows)})
	}
	if cfg.Split != nil && cfg.Split.Validation > 0 && ms[manifest.Validation].Rows == 0 {
		s.Event(operators.Event{Kind: "note", Note: fmt.Sprintf("split = { validation = %g } left the validation set empty (%d rows in all): use a larger fraction or more data", cfg.Split.Validation, ms[manifest.Train].Rows)})
	}

	// The datasets' manifests and statistics are written at once: each is a
	// blob synced before its Put returns, and one after another their syncs
	// were most of the stage's time after the parse wave on a small set.
	out := map[string]cty.Value{}
	vals := make([]cty.Value, len(manifest.Datasets))
	errs := make([]error, len(manifest.Datasets))
	var wg sync.WaitGroup
	var rows int64
	for i, ds := range manifest.Datasets {
		m := ms[ds]
		m.Features = features
		rows += m.Rows
		wg.Add(1)
		go func() { // owned by this function, which waits for it below
			defer wg.Done()
			vals[i], errs[i] = operators.WriteDataset(ctx, run, s.Key(), m, stats[ds])
		}()
	}
	wg.Wait()
	for i, ds := range manifest.Datasets {
		if errs[i] != nil {
			return cty.NilVal, errs[i]
		}
		out[ds] = vals[i]
	}
	out["rows"] = cty.NumberIntVal(rows)
	out["features"] = cty.NumberIntVal(int64(features))
	tr, te, va := ms[manifest.Train], ms[manifest.Test], ms[manifest.Validation]
	balance := fmt.Sprintf("%.1f%% positive", 100*float64(tr.Positives)/float64(tr.Rows))
	if !tr.Labels.Binary() {
		balance = "labels: " + tr.Labels.Describe()
	}
	note := fmt.Sprintf("train %d rows (%s), test %d rows, %d features, %d+%d partitions",
		tr.Rows, balance, te.Rows, features, len(tr.Partitions), len(te.Partitions))
	metrics := map[string]float64{"train_rows": float64(tr.Rows), "test_rows": float64(te.Rows), "features": float64(features)}
	if va.Rows > 0 {
		note = fmt.Sprintf("train %d rows (%s), validation %d rows, test %d rows, %d features, %d+%d+%d partitions",
			tr.Rows, balance, va.Rows, te.Rows, features, len(tr.Partitions), len(va.Partitions), len(te.Partitions))
		metrics["validation_rows"] = float64(va.Rows)
	}
	if tr.Ratings != nil {
		note = ratingsNote(ms)
	}
	s.Event(operators.Event{Kind: "note", Note: note, Metrics: metrics})
	return cty.ObjectVal(out), nil
}

// uploadLocal copies local input files into the run's (remote) store, so
// that tasks running elsewhere read them by URI.
func uploadLocal(ctx context.Context, s operators.Stage, run blob.Store, inputs []*input) error {
	var files int
	var bytes int64
	for _, in := range inputs {
		for i := range in.objects {
			o := &in.objects[i]
			if !o.local {
				continue
			}
			sent, err := o.upload(ctx, s, run)
			if err != nil {
				return err
			}
			if sent {
				files++
				bytes += o.size
			}
		}
	}
	if files > 0 {
		s.Event(operators.Event{Kind: "note", Note: fmt.Sprintf("uploaded %d local file(s), %s, to %s", files, humanBytes(bytes), run.URI(SourcesPrefix))})
	}
	return nil
}

// formatFor builds the tasks' format: for CSV, the header every object of
// every input must share, and the categorical columns (inferred from the
// first MiB of the first file when not given).
func formatFor(ctx context.Context, s operators.Stage, cfg *config, inputs []*input) (*formatSpec, *parser, error) {
	fs := &formatSpec{Name: cfg.Format, HashBits: cfg.HashBits, Log1p: cfg.Log1p}
	if cfg.Format == "csv" {
		fs.Label, fs.Categorical, fs.Ignore = cfg.Label, cfg.Categorical, cfg.Ignore
		fs.Delimiter, fs.NoHeader = cfg.Delimiter, cfg.NoHeader
		comma := byte(',')
		if cfg.Delimiter != "" {
			comma = cfg.Delimiter[0]
		}
		var first *object
		var fields int
		for _, in := range inputs {
			for i := range in.objects {
				o := &in.objects[i]
				if o.size == 0 {
					continue
				}
				h, err := o.header(ctx, s)
				if err != nil {
					return nil, nil, err
				}
				if cfg.NoHeader {
					// Every file's first row must have the first file's
					// number of fields.
					n, err := dataset.CountCSVFields([]byte(h), comma)
					if err != nil {
						return nil, nil, fmt.Errorf("%s:1: %w", o.name, err)
					}
					if first == nil {
						first, fields = o, n
					} else if n != fields {
						return nil, nil, fmt.Errorf("%s:1: %d fields, but %s's first line has %d; every file of a CSV source (and test_source) must have the same columns", o.name, n, first.name, fields)
					}
					continue
				}
				if first == nil {
					first, fs.Header = o, h
				} else if h != fs.Header {
					return nil, nil, fmt.Errorf("%s: its header differs from %s's:\n  %q\n  %q\nevery file of a CSV source (and test_source) must have the same columns in the same order (or set header = false if the files have no header line)", o.name, first.name, truncate(h), truncate(fs.Header))
				}
			}
		}
		if cfg.NoHeader {
			fs.Columns = dataset.PositionColumns(fields)
		}
		if !cfg.CategoricalSet {
			sample, err := first.head(ctx, s, maxHeader)
			if err != nil {
				return nil, nil, err
			}
			if cfg.NoHeader {
				// Name the columns as a header line would.
				sample = append([]byte(strings.Join(fs.Columns, string(comma))+"\n"), sample...)
			}
			if fs.Categorical, err = dataset.InferCSVCategorical(sample, cfg.Label, comma); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", first.name, err)
			}
			fs.Categorical = without(fs.Categorical, cfg.Ignore)
			if len(fs.Categorical) > 0 {
				s.Event(operators.Event{Kind: "note", Note: fmt.Sprintf("csv: hashing columns %s (non-numeric in the first MiB of %s; set categorical to choose)", strings.Join(fs.Categorical, ", "), first.name)})
			}
		}
		if n := len(fs.Header) + len(strings.Join(fs.Columns, ",")) + len(strings.Join(fs.Categorical, ",")) + len(strings.Join(fs.Ignore, ",")); n > maxCSVSpec {
			return nil, nil, fmt.Errorf("%s: the header and column lists take %d bytes, more than the %d a task's parameters hold; drop unused columns from the file", first.name, n, maxCSVSpec)
		}
		pr, err := fs.build()
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", first.name, err)
		}
		return fs, pr, nil
	}
	if cfg.Format == "jsonl" {
		if err := jsonlFormat(ctx, s, cfg, inputs, fs); err != nil {
			return nil, nil, err
		}
	}
	if cfg.Format == "parquet" {
		if err := parquetFormat(ctx, s, cfg, inputs, fs); err != nil {
			return nil, nil, err
		}
	}
	pr, err := fs.build()
	if err != nil {
		return nil, nil, err
	}
	return fs, pr, nil
}

// jsonlFormat takes the keys of JSON lines from the first MiB of the first
// non-empty object: numeric keys get slots in the order first seen, keys
// holding a string are hashed (unless categorical is set).
func jsonlFormat(ctx context.Context, s operators.Stage, cfg *config, inputs []*input, fs *formatSpec) error {
	fs.Label, fs.Categorical, fs.Ignore = cfg.Label, cfg.Categorical, cfg.Ignore
	var first *object
	for _, in := range inputs {
		for i := range in.objects {
			if first == nil && in.objects[i].size > 0 {
				first = &in.objects[i]
			}
		}
	}
	sample, err := first.head(ctx, s, maxHeader)
	if err != nil {
		return err
	}
	numeric, categorical, nested := dataset.InferJSONL(sample, cfg.Label, cfg.Ignore)
	if len(nested) > 0 {
		return fmt.Errorf("%s: key(s) %s hold objects or arrays, which load cannot turn into features; list them in ignore", first.name, strings.Join(nested, ", "))
	}
	if cfg.CategoricalSet {
		numeric = without(append(numeric, categorical...), cfg.Categorical)
	} else {
		fs.Categorical = categorical
		if len(categorical) > 0 {
			s.Event(operators.Event{Kind: "note", Note: fmt.Sprintf("jsonl: hashing keys %s (strings in the first MiB of %s; set categorical to choose)", strings.Join(categorical, ", "), first.name)})
		}
	}
	fs.Numeric = numeric
	if len(fs.Numeric)+len(fs.Categorical) == 0 {
		return fmt.Errorf("%s: no keys besides the label %q in the first MiB; check label and the data", first.name, cfg.Label)
	}
	if n := len(strings.Join(fs.Numeric, ",")) + len(strings.Join(fs.Categorical, ",")) + len(strings.Join(fs.Ignore, ",")); n > maxCSVSpec {
		return fmt.Errorf("%s: the key lists take %d bytes, more than the %d a task's parameters hold", first.name, n, maxCSVSpec)
	}
	return nil
}

// maxCSVSpec bounds the CSV header and column lists every task receives, so
// that a task stays well under operators.MaxPayload.
const maxCSVSpec = 128 << 10

func without(xs, drop []string) []string {
	var out []string
	for _, x := range xs {
		keep := true
		for _, d := range drop {
			keep = keep && x != d
		}
		if keep {
			out = append(out, x)
		}
	}
	return out
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

func describeEmpty(in *input) string {
	if len(in.objects) == 1 {
		return in.objects[0].name + " is empty"
	}
	return fmt.Sprintf("its %d objects are empty", len(in.objects))
}

func describeNoRows(src *manifest.Source) string {
	var why string
	switch n := src.SkippedLines(); {
	case src.Lines == 0:
		why = "no lines"
	case n == src.Lines:
		why = fmt.Sprintf("%d line(s), every one bad and skipped (%s)", src.Lines, reasons(src.Skipped))
	case n > 0:
		why = fmt.Sprintf("%d line(s): blank, comments or header, and %d bad ones skipped (%s)", src.Lines, n, reasons(src.Skipped))
	default:
		why = fmt.Sprintf("%d line(s), all blank, comments or a header", src.Lines)
	}
	return why + "; check the path and the format"
}

func reasons(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool { return m[keys[a]] > m[keys[b]] || m[keys[a]] == m[keys[b]] && keys[a] < keys[b] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", m[k], k)
	}
	return strings.Join(parts, ", ")
}

// skipNote describes the bad lines skipped in an input, with the first of
// each reason.
func skipNote(in *input, lines int64, skipped map[string]int64, first map[string]*dataset.ParseError) (string, int64) {
	var total int64
	for _, n := range skipped {
		total += n
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: skipped %d bad line(s) of %d: %s", in.attr, total, lines, reasons(skipped))
	keys := make([]string, 0, len(first))
	for k := range first {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  first: %s", first[k])
	}
	return b.String(), total
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// reducedStats reads the statistics the parse tasks (outs) reduced in
// psstore, or returns nil when they did not (reduce nil) or the reduction is
// incomplete (the caller reads the tasks' own copies); the function it returns
// gives a dataset's statistics, checked against the rows its manifest holds.
func reducedStats(ctx context.Context, s operators.Stage, reduce *operators.StatsReduction, outs []*parseOutput) (func(ds string, rows int64) (*manifest.Stats, error), error) {
	if reduce == nil {
		return nil, nil
	}
	reported := map[string]map[int][]int{}
	for ti, o := range outs {
		for ds, blocks := range o.Reduced {
			if reported[ds] == nil {
				reported[ds] = map[int][]int{}
			}
			for _, b := range blocks {
				reported[ds][b] = append(reported[ds][b], ti)
			}
		}
	}
	rows := map[string]int64{}
	for _, ds := range manifest.Datasets {
		for _, o := range outs {
			if p := o.Pieces[ds]; p != nil {
				rows[ds] += p.Rows
			}
		}
	}
	got, err := reduce.Collect(ctx, s, manifest.Datasets, reported, rows, len(outs))
	if got == nil || err != nil {
		return nil, err
	}
	return func(ds string, rows int64) (*manifest.Stats, error) {
		st := got[ds]
		if st.Rows != rows {
			return nil, fmt.Errorf("%s statistics from psstore: over %d rows, the tasks wrote %d", ds, st.Rows, rows)
		}
		return st, nil
	}, nil
}

// streamCuts returns, for an input that is one compressed object read
// whole (not framed) whose content size its bytes state
// (dataset.ContentSize), the offsets in its content where the tasks of the
// plain file would start (all but the first task's; none for one task),
// and that size: its task cuts its rows into pieces there, so that it loads
// into the plain file's partitions.
func streamCuts(ctx context.Context, s operators.Stage, in *input, tasks int) ([]int64, int64, error) {
	var o *object
	for i := range in.objects {
		if in.objects[i].size == 0 {
			continue
		}
		if o != nil {
			return nil, 0, nil
		}
		o = &in.objects[i]
	}
	if o == nil || o.codec == "" || o.framing != "" {
		return nil, 0, nil
	}
	content := o.content
	if o.codec == dataset.CodecGzip && o.size >= 4 {
		st, err := o.open(ctx, s)
		if err != nil {
			return nil, 0, err
		}
		rc, err := st.GetRange(ctx, o.key, o.size-4, 4)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", o.name, err)
		}
		trailer, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, 0, fmt.Errorf("read %s: %w", o.name, err)
		}
		content = dataset.ContentSize(o.codec, nil, trailer, o.size)
	}
	if content <= 0 {
		return nil, 0, nil
	}
	n := taskCount(content, s.Capacity(), tasks)
	var cuts []int64
	for k := 1; k < n; k++ {
		cuts = append(cuts, content*int64(k)/int64(n))
	}
	return cuts, content, nil
}
