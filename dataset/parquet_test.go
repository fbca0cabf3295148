package dataset_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"

	"github.com/stratus-ml/stratus/blob/fileblob"
	"github.com/stratus-ml/stratus/dataset"
)

func rowKey(r dataset.Row) string { return rowString(r) }

// TestParquetMatchesCSV reads testdata/people.parquet, written by Apache
// Arrow's Go writer (see testdata/parquetgen), and checks that its rows are
// exactly those the CSV parser gives for people.csv, the same rows written
// as CSV by the same program.
func TestParquetMatchesCSV(t *testing.T) {
	st, err := fileblob.New("testdata")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	info, err := st.Stat(ctx, "people.parquet")
	if err != nil {
		t.Fatal(err)
	}
	f, err := dataset.OpenParquet(ctx, st, "people.parquet", info.Size)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.RowGroups()); n != 3 {
		t.Fatalf("%d row groups, want 3", n)
	}
	p, err := dataset.NewParquet(f.Schema(), dataset.ParquetOptions{Label: "clicked", Ignore: []string{"id"}, HashBits: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var row dataset.Row
	var first int64
	for _, rg := range f.RowGroups() {
		n, stopped, err := p.ReadRowGroup(ctx, rg, first, &row, func(r *dataset.Row) error {
			got = append(got, rowKey(*r))
			return nil
		}, func(pe *dataset.ParseError) bool { t.Fatalf("bad row: %v", pe); return false })
		if err != nil || stopped || n != rg.NumRows() {
			t.Fatalf("row group: %d rows of %d, %v, %v", n, rg.NumRows(), stopped, err)
		}
		first += n
	}

	data, err := os.ReadFile("testdata/people.csv")
	if err != nil {
		t.Fatal(err)
	}
	header, _, _ := bytes.Cut(data, []byte("\n"))
	c, err := dataset.NewCSV(header, dataset.CSVOptions{Label: "clicked", Ignore: []string{"id"}, Categorical: []string{"city"}, HashBits: 10})
	if err != nil {
		t.Fatal(err)
	}
	sc := dataset.NewScanner(bytes.NewReader(data), c, dataset.ScanOptions{})
	var want []string
	for {
		err := sc.Next(&row)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, rowKey(row))
	}
	if len(got) != 300 || len(want) != 300 {
		t.Fatalf("%d parquet rows, %d csv rows, want 300", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("row %d: parquet %s, csv %s", i+1, got[i], want[i])
		}
	}
	if s := p.NumericColumns(); len(s) != 4 || s[0] != "age" || s[3] != "score" || len(p.CategoricalColumns()) != 1 {
		t.Errorf("numeric %v, categorical %v", s, p.CategoricalColumns())
	}
}
