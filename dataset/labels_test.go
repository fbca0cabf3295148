package dataset_test

import (
	"testing"

	"github.com/stratus-ml/stratus/dataset"
)

// TestLabelsAsNumbers: every text format reads a label as the number it spells —
// a class of a multiclass file, a regression target — keeping binary −1 as −1;
// JSON booleans are 1 and 0; a label that is no finite number is a bad line.
func TestLabelsAsNumbers(t *testing.T) {
	csv, err := dataset.NewCSV([]byte("x,label"), dataset.CSVOptions{Label: "label"})
	if err != nil {
		t.Fatal(err)
	}
	jl, err := dataset.NewJSONL(dataset.JSONLOptions{Label: "y", Numeric: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		f    dataset.Format
		line string
		want float32
		bad  bool
	}{
		{"libsvm class", dataset.NewLIBSVM(), "3 1:1", 3, false},
		{"libsvm -1", dataset.NewLIBSVM(), "-1 1:1", -1, false},
		{"libsvm real", dataset.NewLIBSVM(), "-12.25 1:1", -12.25, false},
		{"libsvm nan", dataset.NewLIBSVM(), "nan 1:1", 0, true},
		{"csv real", csv, "1,2.5", 2.5, false},
		{"csv class name", csv, "1,setosa", 0, true},
		{"jsonl number", jl, `{"x": 1, "y": 7}`, 7, false},
		{"jsonl string", jl, `{"x": 1, "y": "4"}`, 4, false},
		{"jsonl true", jl, `{"x": 1, "y": true}`, 1, false},
		{"jsonl name", jl, `{"x": 1, "y": "setosa"}`, 0, true},
	} {
		var row dataset.Row
		ok, err := c.f.ParseLine([]byte(c.line), &row)
		if c.bad {
			if err == nil {
				t.Errorf("%s: %q parsed (label %g); want an invalid label", c.name, c.line, row.Label)
			}
			continue
		}
		if err != nil || !ok || row.Label != c.want {
			t.Errorf("%s: %q: label %g, %v, %v; want %g", c.name, c.line, row.Label, ok, err, c.want)
		}
	}
}
