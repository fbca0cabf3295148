package load_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
)

// people writes n rows of id, age, city, income, clicked separated by delim
// (with a header line when header), and returns them and the rows load
// should give, with the city hashed under the column name cityName.
func people(n int, delim string, header bool, cityName string) (string, []dataset.Row) {
	cities := []string{"paris", "london", "new york", "lagos", "lima"}
	key := dataset.NamedColumnKey(cityName)
	var b strings.Builder
	if header {
		b.WriteString(strings.Join([]string{"id", "age", "city", "income", "clicked"}, delim) + "\n")
	}
	var want []dataset.Row
	for i := 0; i < n; i++ {
		label := i % 3 % 2
		r := dataset.Row{Label: float32(label)}
		r.Indices, r.Values = append(r.Indices, 0, 1), append(r.Values, float32(18+i%50), float32(float64(i)*10.5))
		r.Indices, r.Values = append(r.Indices, 2+uint32(dataset.Hash(key, []byte(cities[i%5]))&255)), append(r.Values, 1)
		want = append(want, r)
		fmt.Fprintf(&b, "%d%s%d%s%s%s%.1f%s%d\n", i, delim, 18+i%50, delim, cities[i%5], delim, float64(i)*10.5, delim, label)
	}
	return b.String(), want
}

// TestLoadCSVOptions loads TSV (delimiter = "\t") with a header, and CSV
// without one (header = false, columns named by position), gzipped and cut
// into files, and checks the rows.
func TestLoadCSVOptions(t *testing.T) {
	tsv, wantTSV := people(400, "\t", true, "city")
	plain, wantPlain := people(400, ",", false, "2")
	lines := strings.SplitAfter(plain, "\n")
	h := runtimetest.New(t, `
load "tsv" {
  source    = "people.tsv"
  format    = "csv"
  delimiter = "\t"
  label     = "clicked"
  ignore    = ["id"]
  hash_bits = 8
  tasks     = 3
}
load "bare" {
  source    = "bare"
  format    = "csv"
  header    = false
  label     = 4
  ignore    = ["0"]
  hash_bits = 8
}
`)
	h.Write("people.tsv", tsv)
	h.Write("bare/1.csv", strings.Join(lines[:150], ""))
	h.Write("bare/2.csv.gz", string(gzipBytes(t, []byte(strings.Join(lines[150:], "")))))
	_, rec := h.MustApply()
	for _, c := range []struct {
		stage   string
		want    []dataset.Row
		columns string
		cat     string
	}{{"load.tsv", wantTSV, "id,age,city,income,clicked", "city"}, {"load.bare", wantPlain, "0,1,2,3,4", "2"}} {
		m := h.Dataset(h.Output(c.stage).GetAttr("train"))
		got := h.Rows(m)
		if g, w := strings.Join(runtimetest.RowDigests(got), ","), strings.Join(runtimetest.RowDigests(c.want), ","); g != w {
			t.Errorf("%s: rows differ: got %d, first %+v; want %d, first %+v", c.stage, len(got), got[0], len(c.want), c.want[0])
		}
		if strings.Join(m.Format.Columns, ",") != c.columns || strings.Join(m.Format.Categorical, ",") != c.cat {
			t.Errorf("%s: format %+v", c.stage, m.Format)
		}
	}
	if f := h.Dataset(h.Output("load.bare").GetAttr("train")).Format; !f.NoHeader || f.Delimiter != "" {
		t.Errorf("bare: format %+v", f)
	}
	if f := h.Dataset(h.Output("load.tsv").GetAttr("train")).Format; f.NoHeader || f.Delimiter != "\t" {
		t.Errorf("tsv: format %+v", f)
	}
	if notes := strings.Join(rec.Notes("load.bare"), "\n"); !strings.Contains(notes, "hashing columns 2") {
		t.Errorf("notes: %s", notes)
	}
}

// TestLoadCSVOptionErrors: the label left at its default without a header,
// and headerless files of different widths.
func TestLoadCSVOptionErrors(t *testing.T) {
	h := runtimetest.New(t, `
load "x" {
  source = "a.csv"
  format = "csv"
  header = false
}
`)
	h.Write("a.csv", "1,2,1\n3,4,0\n")
	msg, _ := stageError(t, h, "load.x")
	if want := `label column "label" is not a column: without a header line, columns are named by position, 0 to 2 (label = 0 for the first)`; !strings.Contains(msg, want) {
		t.Errorf("error does not say %q:\n%s", want, msg)
	}

	h = runtimetest.New(t, `
load "x" {
  source = "d"
  format = "csv"
  header = false
  label  = 0
}
`)
	h.Write("d/a.csv", "1,2,1\n")
	h.Write("d/b.csv", "1,2\n")
	msg, _ = stageError(t, h, "load.x")
	if want := `d/b.csv:1: 2 fields, but d/a.csv's first line has 3`; !strings.Contains(msg, want) {
		t.Errorf("error does not say %q:\n%s", want, msg)
	}
}
