package dataset_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/dataset"
)

const csvData = `id,age,city,income,label
1,39,"New York, NY",77516,1
2,50,Boston,,0
3,,"Say ""hi""",215646,-1
4, 28 , Boston ,0,+1
`

func TestCSV(t *testing.T) {
	header := []byte(strings.SplitN(csvData, "\n", 2)[0])
	c, err := dataset.NewCSV(header, dataset.CSVOptions{Label: "label", Categorical: []string{"city"}, Ignore: []string{"id"}, HashBits: 8})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.NumericColumns()); got != "[age income]" || c.Features() != 2+256 {
		t.Errorf("numeric columns %s, features %d", got, c.Features())
	}
	rows, errs := parseAll(t, []byte(csvData), c, dataset.ScanOptions{})
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 4 (the header is skipped)", len(rows))
	}
	city := func(v string) uint32 { return 2 + uint32(dataset.Hash(dataset.NamedColumnKey("city"), []byte(v))&255) }
	want := []dataset.Row{
		{Label: 1, Indices: []uint32{0, 1, city("New York, NY")}, Values: []float32{39, 77516, 1}},
		{Label: 0, Indices: []uint32{0, city("Boston")}, Values: []float32{50, 1}},
		{Label: -1, Indices: []uint32{1, city(`Say "hi"`)}, Values: []float32{215646, 1}},
		{Label: 1, Indices: []uint32{0, 1, city("Boston")}, Values: []float32{28, 0, 1}},
	}
	for i := range want {
		if rowString(rows[i]) != rowString(want[i]) {
			t.Errorf("row %d = %s, want %s", i+1, rowString(rows[i]), rowString(want[i]))
		}
	}
}

func TestCSVBadInput(t *testing.T) {
	header := []byte("a,b,label")
	c, _ := dataset.NewCSV(header, dataset.CSVOptions{Label: "label", Categorical: []string{"b"}})
	for _, tc := range []struct{ line, reason string }{
		{"1,x", dataset.ReasonColumns},
		{"1,x,1,4", dataset.ReasonColumns},
		{"abc,x,1", dataset.ReasonValue},
		{"NaN,x,1", dataset.ReasonNonFinite},
		{"1,x,cat", dataset.ReasonLabel},
		{"1,x,", dataset.ReasonLabel},
		{`1,"x,1`, dataset.ReasonQuote},
		{`1,"x"y,1`, dataset.ReasonQuote},
		{"\xff,x,1", dataset.ReasonValue},
	} {
		var row dataset.Row
		_, err := c.ParseLine([]byte(tc.line), &row)
		var pe *dataset.ParseError
		if !errors.As(err, &pe) || pe.Reason != tc.reason {
			t.Errorf("%q: %v, want reason %q", tc.line, err, tc.reason)
		}
	}
	var row dataset.Row
	_, err := c.ParseLine([]byte("abc,x,1"), &row)
	if !strings.Contains(err.Error(), `column "a" is numeric`) {
		t.Errorf("message %q does not name the column", err)
	}
	// Non-UTF-8 bytes in a string column are hashed like any value.
	if ok, err := c.ParseLine([]byte("1,\xff\xfe,1"), &row); !ok || err != nil {
		t.Errorf("non-UTF-8 categorical value: %v", err)
	}

	for _, tc := range []struct {
		header string
		opts   dataset.CSVOptions
		want   string
	}{
		{"a,b", dataset.CSVOptions{Label: "y"}, `label column "y" is not in the header (columns: a, b)`},
		{"a,b", dataset.CSVOptions{}, "no label column"},
		{"a,a,y", dataset.CSVOptions{Label: "y"}, `"a" appears twice`},
		{"a,,y", dataset.CSVOptions{Label: "y"}, "column 2 has no name"},
		{"a,b,y", dataset.CSVOptions{Label: "y", Categorical: []string{"c"}}, `categorical column "c" is not in the header`},
		{"a,b,y", dataset.CSVOptions{Label: "y", Categorical: []string{"y"}}, "cannot be both"},
		{`a,"b,y`, dataset.CSVOptions{Label: "y"}, "not closed"},
	} {
		_, err := dataset.NewCSV([]byte(tc.header), tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewCSV(%q, %+v) = %v, want %q", tc.header, tc.opts, err, tc.want)
		}
	}
}

func TestInferCSVCategorical(t *testing.T) {
	got, err := dataset.InferCSVCategorical([]byte(csvData+"5,3"), "label", 0)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[city]" {
		t.Errorf("InferCSVCategorical = %v, want [city]", got)
	}
}
