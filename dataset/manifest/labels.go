package manifest

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// MaxDistinctLabels bounds the distinct label values a manifest lists with
// their counts. A dataset with more (a regression target) records only
// their range, mean and variance.
const MaxDistinctLabels = 1000

// Labels are the statistics of a dataset's labels, as the input spells them
// (LIBSVM −1 stays −1): what tells a binary file from a multiclass or a
// regression one, so that train can refuse a model that does not fit.
type Labels struct {
	// Distinct lists the distinct values in increasing order with their
	// counts; nil when there are more than MaxDistinctLabels (Many).
	Distinct []LabelCount `json:"distinct,omitempty"`
	Many     bool         `json:"many,omitempty"`
	// Integer is true when every value is an integer.
	Integer bool `json:"integer"`
	// Min, Max, Mean and Var (the population variance) over every row.
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
	Var  float64 `json:"var"`
	// First is the first row whose label is not binary (not −1, 0 or 1), in
	// input order; nil when every label is binary. Load sets its Object and
	// Line; a builder knows only the value.
	First *LabelLine `json:"first_non_binary,omitempty"`

	rows  int64
	sum   float64
	sumsq float64
	seen  map[float32]int64
}

// LabelCount is one distinct label value and the rows that have it.
type LabelCount struct {
	Value float64 `json:"value"`
	Count int64   `json:"count"`
}

// LabelLine locates a label in the input.
type LabelLine struct {
	Object string  `json:"object,omitempty"`
	Line   int64   `json:"line,omitempty"` // 1-based; for Parquet, the row
	Value  float64 `json:"value"`
}

// String says where the line is: "file:12 (label 3)".
func (l *LabelLine) String() string {
	switch {
	case l.Object != "" && l.Line > 0:
		return fmt.Sprintf("%s:%d (label %g)", l.Object, l.Line, l.Value)
	case l.Object != "":
		return fmt.Sprintf("%s (label %g)", l.Object, l.Value)
	}
	return fmt.Sprintf("label %g", l.Value)
}

// Binary reports whether every label is −1, 0 or 1: a binary data set, whose
// positives are the labels above 0. A manifest without label statistics
// (written before they were recorded, when load accepted binary labels
// only) is binary.
func (l *Labels) Binary() bool { return l == nil || l.First == nil }

// Classes returns the distinct values in increasing order — class k of a
// softmax model is the k-th — or an error when they are too many to be
// classes or are not integers.
func (l *Labels) Classes() ([]float64, error) {
	if l == nil {
		return []float64{0, 1}, nil
	}
	if l.Many {
		return nil, fmt.Errorf("the labels take more than %d distinct values (%g to %g): a real target, not classes", MaxDistinctLabels, l.Min, l.Max)
	}
	if !l.Integer {
		return nil, fmt.Errorf("the labels are not integers (%d distinct values, %g to %g): a real target, not classes", len(l.Distinct), l.Min, l.Max)
	}
	cs := make([]float64, len(l.Distinct))
	for i, d := range l.Distinct {
		cs[i] = d.Value
	}
	return cs, nil
}

// Describe summarises the labels in a few words: "3 classes (1, 2, 3)" or
// "real values 0.5 to 50, mean 22.5".
func (l *Labels) Describe() string {
	if l == nil {
		return "binary"
	}
	if l.Many || !l.Integer {
		return fmt.Sprintf("real values %g to %g, mean %.4g", l.Min, l.Max, l.Mean)
	}
	var vs []string
	for i, d := range l.Distinct {
		if i == 10 {
			vs = append(vs, "…")
			break
		}
		vs = append(vs, fmt.Sprint(d.Value))
	}
	return fmt.Sprintf("%d distinct values (%s)", len(l.Distinct), strings.Join(vs, ", "))
}

// add counts one label.
func (l *Labels) add(y float32) {
	if l.seen == nil && !l.Many {
		l.seen = map[float32]int64{}
		l.Integer = true
		l.Min, l.Max = math.Inf(1), math.Inf(-1)
	}
	v := float64(y)
	l.rows++
	l.sum += v
	l.sumsq += v * v
	l.Min, l.Max = min(l.Min, v), max(l.Max, v)
	if v != math.Trunc(v) {
		l.Integer = false
	}
	if y != 0 && y != 1 && y != -1 && l.First == nil {
		l.First = &LabelLine{Value: v}
	}
	if !l.Many {
		l.seen[y]++
		if len(l.seen) > MaxDistinctLabels {
			l.Many, l.seen = true, nil
		}
	}
}

// finish fills Distinct, Mean and Var from the counts.
func (l *Labels) finish() {
	l.Distinct = nil
	for v, n := range l.seen {
		l.Distinct = append(l.Distinct, LabelCount{Value: float64(v), Count: n})
	}
	slices.SortFunc(l.Distinct, func(a, b LabelCount) int {
		if a.Value < b.Value {
			return -1
		}
		if a.Value > b.Value {
			return 1
		}
		return 0
	})
	if l.rows > 0 {
		l.Mean = l.sum / float64(l.rows)
		l.Var = max(0, l.sumsq/float64(l.rows)-l.Mean*l.Mean)
	}
}

// merge adds o's counts to l; l's First, if set, stays (it comes earlier).
func (l *Labels) merge(o *Labels) {
	if o == nil || o.rows == 0 {
		return
	}
	if l.rows == 0 {
		l.Min, l.Max, l.Integer = o.Min, o.Max, o.Integer
	} else {
		l.Min, l.Max, l.Integer = min(l.Min, o.Min), max(l.Max, o.Max), l.Integer && o.Integer
	}
	l.rows += o.rows
	l.sum += o.sum
	l.sumsq += o.sumsq
	if l.First == nil && o.First != nil {
		f := *o.First
		l.First = &f
	}
	if l.Many || o.Many {
		l.Many, l.seen = true, nil
		return
	}
	if l.seen == nil {
		l.seen = map[float32]int64{}
	}
	for _, d := range o.Distinct {
		l.seen[float32(d.Value)] += d.Count
	}
	if len(l.seen) > MaxDistinctLabels {
		l.Many, l.seen = true, nil
	}
}

// pieceLabels is Labels as a task's result carries it: the sums travel, so
// the coordinator can merge exactly.
type pieceLabels struct {
	Labels
	Rows  int64   `json:"rows"`
	Sum   float64 `json:"sum"`
	SumSq float64 `json:"sumsq"`
}

func (l *Labels) toPiece() *pieceLabels {
	if l == nil || l.rows == 0 {
		return nil
	}
	l.finish()
	return &pieceLabels{Labels: *l, Rows: l.rows, Sum: l.sum, SumSq: l.sumsq}
}

func (p *pieceLabels) labels() *Labels {
	if p == nil {
		return nil
	}
	l := p.Labels
	l.rows, l.sum, l.sumsq = p.Rows, p.Sum, p.SumSq
	return &l
}
