package manifest

import (
	"fmt"
	"testing"
)

func labelsOf(ys ...float32) *Labels {
	var l Labels
	for _, y := range ys {
		l.add(y)
	}
	return l.toPiece().labels()
}

func TestLabelsMerge(t *testing.T) {
	var all Labels
	all.merge(labelsOf(1, -1, 1))
	all.merge(labelsOf(3, 2, 1))
	all.merge(nil)
	all.finish()
	if got, want := fmt.Sprint(all.Distinct), "[{-1 1} {1 3} {2 1} {3 1}]"; got != want {
		t.Errorf("distinct %s, want %s", got, want)
	}
	if all.Binary() || all.First == nil || all.First.Value != 3 {
		t.Errorf("first non-binary %+v, want label 3 (the first in order)", all.First)
	}
	if all.Min != -1 || all.Max != 3 || all.Mean != 7.0/6 || !all.Integer {
		t.Errorf("min %g max %g mean %g integer %v", all.Min, all.Max, all.Mean, all.Integer)
	}
	cs, err := all.Classes()
	if err != nil || fmt.Sprint(cs) != "[-1 1 2 3]" {
		t.Errorf("classes %v, %v", cs, err)
	}
	if !labelsOf(0, 1, -1).Binary() || (*Labels)(nil).Binary() != true {
		t.Error("-1, 0, 1 are binary, and so is a manifest without label statistics")
	}
}

func TestLabelsReal(t *testing.T) {
	var ys []float32
	for i := range MaxDistinctLabels + 1 {
		ys = append(ys, float32(i))
	}
	l := labelsOf(ys...)
	if !l.Many || l.Distinct != nil {
		t.Errorf("%d distinct values: many %v, %d listed", len(ys), l.Many, len(l.Distinct))
	}
	if _, err := l.Classes(); err == nil {
		t.Error("more than MaxDistinctLabels values are classes")
	}
	r := labelsOf(0.5, 1.5)
	if r.Integer || r.Var != 0.25 {
		t.Errorf("0.5, 1.5: integer %v var %g", r.Integer, r.Var)
	}
	if _, err := r.Classes(); err == nil {
		t.Error("fractional labels are classes")
	}
}
