package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/manifest"
	"github.com/stratus-ml/stratus/operators"
)

// KindParse is the task kind that parses one byte range of an input.
const KindParse = "load.parse"

// parseParams are a parse task's parameters.
type parseParams struct {
	// Dataset is where the rows go: "train", "test" or "validation"; with
	// Split, each row goes to one of them by its hash.
	Dataset        string     `json:"dataset"`
	Split          *splitSpec `json:"split,omitempty"`
	Segments       []segment  `json:"segments"`
	Format         formatSpec `json:"format"`
	Skip           bool       `json:"skip,omitempty"` // on_error = "skip"
	PartitionBytes int        `json:"partition_bytes"`
	// Reduce, when set, merges the task's statistics into psstore (they
	// are still saved beside its partitions, the durable copy).
	Reduce *operators.StatsReduce `json:"reduce,omitempty"`
}

// segment is a byte range [Start, End) of one object; its lines are those
// whose first byte falls in it.
type segment struct {
	// Store is the root URI of the store holding Key, "" for the run's store.
	Store string `json:"store,omitempty"`
	Key   string `json:"key"`
	// Name is the object as the user knows it, for messages.
	Name  string `json:"name"`
	Start int64  `json:"start"`
	End   int64  `json:"end"`
	// Codec is the object's compression (dataset.Codec*), "" for none. A
	// compressed object cannot be read from the middle: its segment is the
	// whole object, streamed once, unless it has a Framing
	// (dataset.Framing*): then the segment is the frames starting in
	// [Start, End), read as a plain range is (dataset.OpenFramedRange).
	Codec   string `json:"codec,omitempty"`
	Framing string `json:"framing,omitempty"`
	// RowGroups: a Parquet object of Size bytes, whose row groups [Start,
	// End) the segment is.
	RowGroups bool  `json:"row_groups,omitempty"`
	Size      int64 `json:"size,omitempty"`
	// Cuts, for a compressed object read whole whose content is Content
	// bytes, are the offsets in its content where the plain file's tasks
	// would start their ranges (all but the first): the rows of each range
	// go to pieces of their own, as a plain file's tasks write them, so the
	// dataset has the plain file's partitions and statistics.
	Cuts    []int64 `json:"cuts,omitempty"`
	Content int64   `json:"content,omitempty"`
}

// pieceSets returns the task's pieces by dataset, one map per share, in
// order.
func (o *parseOutput) pieceSets() []map[string]*manifest.Piece {
	if o.Pieces == nil {
		return nil
	}
	return append([]map[string]*manifest.Piece{o.Pieces}, o.MorePieces...)
}

// parseOutput is a parse task's result.
type parseOutput struct {
	// Lines consumed from each segment (all of them, whatever they held).
	Lines []int64 `json:"lines"`
	// Pieces by dataset name; MorePieces, those of the second and later
	// shares of a segment with Cuts, in order.
	Pieces     map[string]*manifest.Piece   `json:"pieces,omitempty"`
	MorePieces []map[string]*manifest.Piece `json:"more_pieces,omitempty"`
	// Content is the size of the content of a segment with Cuts, as
	// decoded (the Cuts were made for segment.Content).
	Content int64 `json:"content,omitempty"`
	// Skipped counts bad lines by reason (skip mode).
	Skipped map[string]int64 `json:"skipped,omitempty"`
	// Bad holds the first bad line of each reason (skip mode), or the bad
	// line that stopped the task (fail mode, with Failed set).
	Bad    []badLine `json:"bad,omitempty"`
	Failed bool      `json:"failed,omitempty"`
	// Reduced lists, by dataset, the psstore statistics blocks the task
	// merged into (with Reduce).
	Reduced map[string][]int `json:"reduced,omitempty"`
	// Fatal is an error in the data that is not a line's (compressed data
	// that does not decode), with which the coordinator fails the stage
	// rather than retrying the task.
	Fatal string `json:"fatal,omitempty"`
	// FirstLabel is, per dataset, the first row whose label is not binary
	// (not -1, 0 or 1), located like a bad line (Column unset), for the
	// manifest's label statistics.
	FirstLabel map[string]*labelLine `json:"first_label,omitempty"`
}

// labelLine is a row's label located by segment, as badLine is.
type labelLine struct {
	Segment int     `json:"segment"`
	Line    int64   `json:"line"`
	Value   float64 `json:"value"`
}

// badLine is a ParseError located by segment; Line counts from the
// segment's first line (1-based), the coordinator turns it into the
// object's line number.
type badLine struct {
	Segment int    `json:"segment"`
	Line    int64  `json:"line"`
	Column  int    `json:"column"`
	Text    string `json:"text"`
	Reason  string `json:"reason"`
	Detail  string `json:"detail,omitempty"`
	Field   string `json:"field,omitempty"` // Parquet: the column; Line is then the row
}

// parse is the load.parse handler: it parses its segments in order and
// writes the rows into partitions under the task's output prefix (train/
// and test/), with their statistics.
func parse(ctx context.Context, env operators.Env, t *operators.Task) (*operators.Result, error) {
	var p parseParams
	if err := t.DecodeParams(&p); err != nil {
		return nil, err
	}
	pr, err := p.Format.build()
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", t.Name(), err)
	}
	run, err := env.Blob(ctx)
	if err != nil {
		return nil, err
	}
	var split *splitter
	if p.Split != nil {
		split = newSplitter(p.Split)
	}
	// The rows go to one piece per dataset, or to one per share of a
	// segment with Cuts (see segment): shares[k] builds share k's, under
	// prefixes[k].
	var shares []map[string]*manifest.Builder
	var prefixes []string
	builders := map[string]*manifest.Builder{}
	builder := func(ds string) *manifest.Builder {
		b := builders[ds]
		if b == nil {
			b = manifest.NewBuilder(ctx, run, prefixes[len(prefixes)-1]+ds+"/", p.PartitionBytes)
			builders[ds] = b
		}
		return b
	}
	defer func() { // stop the builders' writers on every path (after Close, a no-op)
		for _, m := range shares {
			for _, b := range m {
				b.Abort()
			}
		}
	}()
	share := func() {
		prefix := t.OutputPrefix
		if len(shares) > 0 {
			prefix = fmt.Sprintf("%sshare-%d/", t.OutputPrefix, len(shares))
		}
		builders = map[string]*manifest.Builder{}
		shares, prefixes = append(shares, builders), append(prefixes, prefix)
		// Every side gets a piece, even an empty one.
		builder(p.Dataset)
		if split != nil {
			builder(manifest.Test)
			builder(manifest.Validation)
		}
	}
	share()

	out := &parseOutput{Lines: make([]int64, len(p.Segments))}
	var total, done int64
	for _, s := range p.Segments {
		total += s.End - s.Start
	}
	var row dataset.Row
	for si, seg := range p.Segments {
		st := run
		if seg.Store != "" {
			if st, err = env.OpenStore(ctx, seg.Store); err != nil {
				return nil, err
			}
		}
		cuts := seg.Cuts
		add := func(r *dataset.Row, line, off int64) error {
			for len(cuts) > 0 && off >= cuts[0] {
				// The row starts the next of the plain file's tasks.
				cuts = cuts[1:]
				share()
			}
			pr.Post(r)
			ds := p.Dataset
			if split != nil {
				if to := split.dataset(r); to != "" {
					ds = to
				}
			}
			if y := r.Label; y != 0 && y != 1 && y != -1 && out.FirstLabel[ds] == nil {
				if out.FirstLabel == nil {
					out.FirstLabel = map[string]*labelLine{}
				}
				out.FirstLabel[ds] = &labelLine{Segment: si, Line: line, Value: float64(y)}
			}
			return builder(ds).Add(r)
		}
		onBad := func(pe *dataset.ParseError, line int64) bool {
			if !p.Skip {
				out.Bad = append(out.Bad, bad(si, line, pe))
				return false
			}
			if out.Skipped == nil {
				out.Skipped = map[string]int64{}
			}
			if out.Skipped[pe.Reason] == 0 {
				out.Bad = append(out.Bad, bad(si, line, pe))
			}
			out.Skipped[pe.Reason]++
			return true
		}
		var lines, end int64
		var failed bool
		if seg.RowGroups {
			rowAdd := func(r *dataset.Row, line int64) error { return add(r, line, 0) }
			lines, failed, err = parseParquetSegment(ctx, st, seg, &p.Format, rowAdd, &row, onBad)
		} else {
			lines, end, failed, err = parseSegment(ctx, st, seg, &p.Format, pr, add, &row, onBad)
		}
		if len(seg.Cuts) > 0 {
			out.Content = end
		}
		var ce *dataset.CorruptError
		if errors.As(err, &ce) {
			out.Lines[si] = lines
			if ce.Codec == "parquet" {
				out.Fatal = fmt.Sprintf("%s: after row %d of its row groups %d to %d, %v; write the file again", seg.Name, lines, seg.Start, seg.End-1, ce)
			} else {
				out.Fatal = fmt.Sprintf("%s: after line %d, %v; check the file (%s -t, or its checksum), or recompress it", seg.Name, lines, ce, testCommand(ce.Codec))
			}
			return result(out)
		}
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", t.Name(), err)
		}
		out.Lines[si] = lines
		if failed {
			// Fail mode: report the line; the coordinator fails the stage
			// with the object's line number. Retrying would not help.
			out.Failed = true
			return result(out)
		}
		done += seg.End - seg.Start
		env.Progress(done, total)
	}

	if p.Reduce != nil && len(shares) > 1 {
		return nil, fmt.Errorf("task %s: %d shares cannot reduce their statistics in psstore", t.Name(), len(shares))
	}
	for k, builders := range shares {
		pieces := map[string]*manifest.Piece{}
		if k == 0 {
			out.Pieces = pieces
		} else {
			out.MorePieces = append(out.MorePieces, pieces)
		}
		for ds, b := range builders {
			piece, err := b.Close()
			if err != nil {
				return nil, fmt.Errorf("task %s: %w", t.Name(), err)
			}
			if err := piece.Save(ctx, run, prefixes[k]+ds+"/"); err != nil {
				return nil, fmt.Errorf("task %s: %w", t.Name(), err)
			}
			pieces[ds] = piece
		}
	}
	for ds, piece := range out.Pieces {
		if p.Reduce != nil {
			blocks, err := operators.MergeStats(ctx, env, p.Reduce, ds, piece.Stats)
			if err != nil {
				return nil, fmt.Errorf("task %s: %w", t.Name(), err)
			}
			if out.Reduced == nil {
				out.Reduced = map[string][]int{}
			}
			out.Reduced[ds] = blocks
		}
	}
	return result(out)
}

func result(out *parseOutput) (*operators.Result, error) {
	r := &operators.Result{Metrics: map[string]float64{}}
	var rows float64
	for _, ps := range out.pieceSets() {
		for _, p := range ps {
			rows += float64(p.Rows)
		}
	}
	r.Metrics["rows"] = rows
	var err error
	if r.Output, err = json.Marshal(out); err != nil {
		return nil, err
	}
	return r, nil
}

func bad(seg int, line int64, pe *dataset.ParseError) badLine {
	return badLine{Segment: seg, Line: line, Column: pe.Column, Text: pe.Text, Reason: pe.Reason, Detail: pe.Detail, Field: pe.Field}
}

// parseSegment parses the lines of one segment, calling add for each row
// and onBad for each bad line (with its line number counted from the
// segment's first line); onBad returns false to stop. It returns the lines
// consumed and whether onBad stopped it. add is given each row with its
// line number in the segment.
func parseSegment(ctx context.Context, st blob.Store, seg segment, format *formatSpec, pr *parser, add func(r *dataset.Row, line, off int64) error, row *dataset.Row, onBad func(*dataset.ParseError, int64) bool) (lines, end int64, stopped bool, err error) {
	var rc io.ReadCloser
	var cl io.Closer
	var sc dataset.RowReader
	var opts dataset.ScanOptions
	switch {
	case seg.Framing != "":
		rc, opts, err = dataset.OpenFramedRange(ctx, st, seg.Key, seg.Codec, seg.Framing, seg.Start, seg.End)
	case seg.Codec != "":
		// One stream, read whole: parsed on the cores its decoder leaves
		// (dataset.StreamScanner), into the same rows in the same order.
		newFormat := func() (dataset.Format, error) { return format.build() }
		var ss *dataset.StreamScanner
		ss, err = dataset.ScanObject(ctx, st, seg.Key, seg.Codec, newFormat, dataset.ScanOptions{Object: seg.Name})
		cl, sc = ss, ss
	default:
		rc, opts, err = dataset.OpenRange(ctx, st, seg.Key, seg.Start, seg.End)
	}
	if err != nil {
		var ce *dataset.CorruptError
		if errors.As(err, &ce) {
			return 0, 0, false, err
		}
		return 0, 0, false, fmt.Errorf("open %s: %w", seg.Name, err)
	}
	if sc == nil {
		cl = rc
		opts.Object = seg.Name
		sc = dataset.NewScanner(rc, pr, opts)
	}
	defer cl.Close()
	for n := 0; ; n++ {
		if n&4095 == 0 && ctx.Err() != nil {
			return sc.Lines(), sc.Pos(), false, ctx.Err()
		}
		err := sc.Next(row)
		if err == io.EOF {
			return sc.Lines(), sc.Pos(), false, nil
		}
		if err != nil {
			var pe *dataset.ParseError
			if errors.As(err, &pe) {
				if !onBad(pe, pe.Line) {
					return sc.Lines(), sc.Pos(), true, nil
				}
				continue
			}
			return sc.Lines(), sc.Pos(), false, err
		}
		if err := add(row, sc.Lines(), sc.RowOffset()); err != nil {
			return sc.Lines(), sc.Pos(), false, err
		}
	}
}

// testCommand is the command that checks a compressed file.
func testCommand(codec string) string {
	switch codec {
	case dataset.CodecZstd:
		return "zstd"
	case dataset.CodecBzip2:
		return "bzip2"
	}
	return "gzip"
}
