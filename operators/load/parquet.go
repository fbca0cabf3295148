package load

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/operators"
)

// Parquet inputs. The unit of parallelism is the row group: the coordinator
// reads every file's footer, checks that all files have the first one's
// columns, and shares the row groups (by stored size) among tasks as it
// shares compressed files (cutWhole); a task reads its row groups with
// ranged reads of their column chunks.

// parquetInfo is what a Parquet object's footer says.
type parquetInfo struct {
	groups []int64 // stored size of each row group
	rows   []int64 // rows of each row group
}

// parquetFormat reads the footers of every object of the inputs, fills fs
// (columns, numeric and categorical ones) from the first, checks the others
// agree, and records each object's row groups.
func parquetFormat(ctx context.Context, s operators.Stage, cfg *config, inputs []*input, fs *formatSpec) error {
	fs.Label, fs.Ignore = cfg.Label, cfg.Ignore
	var objs []*object
	for _, in := range inputs {
		for i := range in.objects {
			if in.objects[i].size > 0 {
				objs = append(objs, &in.objects[i])
			}
		}
	}
	readers := make([]*dataset.Parquet, len(objs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(sniffConcurrency)
	for i, o := range objs {
		g.Go(func() error {
			st, err := o.open(gctx, s)
			if err != nil {
				return err
			}
			f, err := dataset.OpenParquet(gctx, st, o.key, o.size)
			if err != nil {
				return fmt.Errorf("%s: %w; check that the file was written completely", o.name, err)
			}
			info := &parquetInfo{groups: dataset.RowGroupSizes(f.File)}
			for _, rg := range f.RowGroups() {
				info.rows = append(info.rows, rg.NumRows())
			}
			o.parquet = info
			opts := dataset.ParquetOptions{Label: cfg.Label, Categorical: cfg.Categorical, CategoricalSet: cfg.CategoricalSet, Ignore: cfg.Ignore, HashBits: cfg.HashBits}
			if readers[i], err = dataset.NewParquet(f.Schema(), opts); err != nil {
				return fmt.Errorf("%s: %w", o.name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	first := readers[0]
	for i, r := range readers[1:] {
		if !slices.Equal(r.Columns(), first.Columns()) || !slices.Equal(r.NumericColumns(), first.NumericColumns()) || !slices.Equal(r.CategoricalColumns(), first.CategoricalColumns()) {
			return fmt.Errorf("%s: its columns differ from %s's:\n  %s\n  %s\nevery file of a Parquet source (and test_source) must have the same columns of the same types", objs[i+1].name, objs[0].name,
				describeColumns(r), describeColumns(first))
		}
	}
	fs.Columns, fs.Numeric, fs.Categorical = first.Columns(), first.NumericColumns(), first.CategoricalColumns()
	if !cfg.CategoricalSet && len(fs.Categorical) > 0 {
		s.Event(operators.Event{Kind: "note", Note: fmt.Sprintf("parquet: hashing columns %s (string columns; set categorical to choose)", strings.Join(fs.Categorical, ", "))})
	}
	if n := len(strings.Join(fs.Columns, ",")) + len(strings.Join(fs.Numeric, ",")) + len(strings.Join(fs.Categorical, ",")) + len(strings.Join(fs.Ignore, ",")); n > maxCSVSpec {
		return fmt.Errorf("%s: the column lists take %d bytes, more than the %d a task's parameters hold", objs[0].name, n, maxCSVSpec)
	}
	return nil
}

func describeColumns(p *dataset.Parquet) string {
	return fmt.Sprintf("columns %s; numeric %s; hashed %s", strings.Join(p.Columns(), ","), strings.Join(p.NumericColumns(), ","), strings.Join(p.CategoricalColumns(), ","))
}

// parquetShares shares an input's row groups among n tasks: each task's
// segments are runs of consecutive row groups of one object ([Start, End)
// row group indexes).
func parquetShares(in *input, n int) [][]span {
	var sizes []int64
	type ref struct{ obj, group int }
	var refs []ref
	for oi, o := range in.objects {
		if o.parquet == nil {
			continue
		}
		for gi, sz := range o.parquet.groups {
			sizes = append(sizes, sz)
			refs = append(refs, ref{oi, gi})
		}
	}
	whole := make([]bool, len(sizes))
	for i := range whole {
		whole[i] = true
	}
	var out [][]span
	for _, share := range cutWhole(sizes, whole, n) {
		var spans []span
		for _, sp := range share {
			r := refs[sp.obj]
			if k := len(spans) - 1; k >= 0 && spans[k].obj == r.obj && spans[k].end == int64(r.group) {
				spans[k].end++
				continue
			}
			spans = append(spans, span{obj: r.obj, start: int64(r.group), end: int64(r.group) + 1})
		}
		out = append(out, spans)
	}
	return out
}

// parseParquetSegment reads row groups [seg.Start, seg.End) of a Parquet
// object, as parseSegment reads lines: rows are numbered from the segment's
// first row (the coordinator adds the rows of the earlier segments).
func parseParquetSegment(ctx context.Context, st blob.Store, seg segment, fs *formatSpec, add func(*dataset.Row, int64) error, row *dataset.Row, onBad func(*dataset.ParseError, int64) bool) (rows int64, stopped bool, err error) {
	f, err := dataset.OpenParquet(ctx, st, seg.Key, seg.Size)
	if err != nil {
		return 0, false, fmt.Errorf("open %s: %w", seg.Name, err)
	}
	r, err := dataset.NewParquet(f.Schema(), dataset.ParquetOptions{Label: fs.Label, Categorical: fs.Categorical, CategoricalSet: true, Ignore: fs.Ignore, HashBits: fs.HashBits})
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", seg.Name, err)
	}
	if !slices.Equal(r.NumericColumns(), fs.Numeric) || !slices.Equal(r.Columns(), fs.Columns) {
		return 0, false, fmt.Errorf("%s: its columns (%s) are not those the load started with; was it rewritten during the load?", seg.Name, describeColumns(r))
	}
	groups := f.RowGroups()
	if seg.End > int64(len(groups)) {
		return 0, false, fmt.Errorf("%s: %d row groups, the load started with at least %d; was it rewritten during the load?", seg.Name, len(groups), seg.End)
	}
	for gi := seg.Start; gi < seg.End; gi++ {
		if err := f.CheckRowGroup(r, int(gi)); err != nil {
			if errors.Is(err, dataset.ErrParquetBounds) {
				return rows, false, &dataset.CorruptError{Codec: "parquet", Err: err}
			}
			return rows, false, fmt.Errorf("%s: %w", seg.Name, err)
		}
		at := rows // rows of the segment so far: every row is added or bad, in order
		n, stop, err := r.ReadRowGroup(ctx, groups[gi], rows, row, func(r *dataset.Row) error {
			at++
			return add(r, at)
		}, func(pe *dataset.ParseError) bool {
			at++
			pe.Object = seg.Name
			return onBad(pe, pe.Line)
		})
		rows += n
		if err != nil && ctx.Err() == nil && f.StoreError() == nil {
			// The file's own bytes failed to decode: retrying cannot help.
			return rows, false, &dataset.CorruptError{Codec: "parquet", Err: err}
		}
		if err != nil || stop {
			return rows, stop, err
		}
	}
	return rows, false, nil
}
