package load_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
)

// TestLoadParquet loads people.parquet (written by Apache Arrow's Go writer,
// see dataset/testdata/parquetgen) and the same rows as CSV: the rows and
// statistics are the same. A directory of two copies, its six row groups
// shared among four tasks, gives the rows twice, in order.
func TestLoadParquet(t *testing.T) {
	pq := readFile(t, "../../dataset/testdata/people.parquet")
	csv := readFile(t, "../../dataset/testdata/people.csv")
	h := runtimetest.New(t, `
load "pq" {
  source    = "people.parquet"
  format    = "parquet"
  label     = "clicked"
  ignore    = ["id"]
  hash_bits = 10
}
load "csv" {
  source      = "people.csv"
  format      = "csv"
  label       = "clicked"
  ignore      = ["id"]
  categorical = ["city"]
  hash_bits   = 10
}
load "dir" {
  source    = "parts"
  format    = "parquet"
  label     = "clicked"
  ignore    = ["id"]
  hash_bits = 10
  tasks     = 4
}
`)
	h.Write("people.parquet", string(pq))
	h.Write("people.csv", string(csv))
	h.Write("parts/a.parquet", string(pq))
	h.Write("parts/b.parquet", string(pq))
	_, rec := h.MustApply()
	train := func(stage string) []string {
		return runtimetest.RowDigests(h.Rows(h.Dataset(h.Output(stage).GetAttr("train"))))
	}
	m := h.Dataset(h.Output("load.pq").GetAttr("train"))
	ref := h.Dataset(h.Output("load.csv").GetAttr("train"))
	if g, w := strings.Join(train("load.pq"), ","), strings.Join(train("load.csv"), ","); g != w {
		t.Errorf("parquet rows differ from the same rows as csv")
	}
	if m.Rows != 300 || m.Features != 4+1024 || m.StatsDigest != ref.StatsDigest || strings.Join(m.Format.Numeric, ",") != "age,income,member,score" ||
		strings.Join(m.Format.Categorical, ",") != "city" || m.Format.Name != "parquet" || m.Format.HashOffset != 4 {
		t.Errorf("manifest: %d rows, %d features, format %+v", m.Rows, m.Features, m.Format)
	}
	runtimetest.CompareStats(t, "parquet", h.Stats(m), h.Rows(m))
	dir := train("load.dir")
	once := train("load.pq")
	if strings.Join(dir, ",") != strings.Join(append(append([]string(nil), once...), once...), ",") {
		t.Errorf("directory: %d rows, want the file's 300 twice", len(dir))
	}
	if n := rec.Count("task_finished", "load.dir"); n != 4 {
		t.Errorf("directory: %d tasks, want 4 (six row groups)", n)
	}
	if notes := strings.Join(rec.Notes("load.pq"), "\n"); !strings.Contains(notes, "parquet: hashing columns city") {
		t.Errorf("notes: %s", notes)
	}
}

type badRow struct {
	X     float64 `parquet:"x"`
	Label int32   `parquet:"label"`
}

// TestLoadParquetErrors: a bad row names the file, row and column; a file
// that is not Parquet, or cut short, or with columns of its own, says so.
func TestLoadParquetErrors(t *testing.T) {
	var buf bytes.Buffer
	rows := make([]badRow, 50)
	for i := range rows {
		rows[i] = badRow{X: float64(i), Label: int32(i % 2)}
	}
	rows[41].Label = 3
	if err := parquet.Write(&buf, rows); err != nil {
		t.Fatal(err)
	}
	good := readFile(t, "../../dataset/testdata/people.parquet")
	for _, c := range []struct{ name, hcl, file, content, want string }{
		{"csv as parquet", "", "data.parquet", "a,b,label\n1,2,1\n", `data.parquet: not a Parquet file (a Parquet file starts with "PAR1"; this seems to be text); it looks like csv: set format = "csv"`},
		{"cut", `label = "clicked"`, "cut.parquet", string(good[:len(good)/2]), `cut.parquet: parquet: `},
		{"strings", `label = "clicked"` + "\n  categorical = []", "people.parquet", string(good), `people.parquet: parquet: column "city" holds strings; list it in categorical to hash them, or in ignore`},
		{"no label", "", "people.parquet", string(good), `people.parquet: parquet: label column "label" is not in the file (columns: id, age, city, income, member, score, clicked)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := runtimetest.New(t, "load \"x\" {\n  source = \""+c.file+"\"\n  format = \"parquet\"\n  "+c.hcl+"\n}\n")
			h.Write(c.file, c.content)
			msg, _ := stageError(t, h, "load.x")
			if !strings.Contains(msg, c.want) {
				t.Errorf("error does not say %q:\n%s", c.want, msg)
			}
		})
	}
}

// TestLoadParquetCorrupt: a data page that does not decode fails the stage
// at once, naming the file and its row groups, without retrying the task.
func TestLoadParquetCorrupt(t *testing.T) {
	pq := []byte(string(readFile(t, "../../dataset/testdata/people.parquet")))
	for i := 40; i < 200; i++ { // the first column chunk's compressed pages
		pq[i] ^= 0xa5
	}
	h := runtimetest.New(t, "load \"x\" {\n  source = \"bad.parquet\"\n  format = \"parquet\"\n  label  = \"clicked\"\n}\n")
	h.Write("bad.parquet", string(pq))
	msg, rec := stageError(t, h, "load.x")
	for _, want := range []string{"bad.parquet: after row 0 of its row groups 0 to 2", "the parquet data does not decode", "write the file again"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q:\n%s", want, msg)
		}
	}
	if n := rec.Count("task_retried", "load.x"); n != 0 {
		t.Errorf("%d retries", n)
	}
}
