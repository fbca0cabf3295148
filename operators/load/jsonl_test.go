package load_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/executor/runtime/runtimetest"
)

// TestLoadJSONL loads JSON lines with keys in varying order, nulls, booleans,
// an ignored nested key and an inferred categorical key, cut into tasks, and
// checks they give the rows the same data as CSV gives.
func TestLoadJSONL(t *testing.T) {
	cities := []string{"paris", "london", "new york", "lagos", "lima"}
	var js, csv strings.Builder
	csv.WriteString("age,city,income,clicked\n")
	for i := 0; i < 500; i++ {
		age := fmt.Sprint(18 + i%50)
		if i%7 == 0 {
			age = "null"
		}
		label := i % 3 % 2
		if i%2 == 0 {
			fmt.Fprintf(&js, `{"age": %s, "city": %q, "income": %.1f, "clicked": %d, "meta": {"id": [%d]}}`+"\n", age, cities[i%5], float64(i)*10.5, label, i)
		} else {
			fmt.Fprintf(&js, `{"clicked":%v,"income":%.1f,"meta":null,"city":%q,"age":%s}`+"\n", label == 1, float64(i)*10.5, cities[i%5], age)
		}
		if age == "null" {
			age = ""
		}
		fmt.Fprintf(&csv, "%s,%s,%.1f,%d\n", age, cities[i%5], float64(i)*10.5, label)
	}
	h := runtimetest.New(t, `
load "js" {
  source    = "people.jsonl"
  format    = "jsonl"
  label     = "clicked"
  ignore    = ["meta"]
  hash_bits = 8
  tasks     = 3
}
load "csv" {
  source    = "people.csv"
  format    = "csv"
  label     = "clicked"
  hash_bits = 8
}
`)
	h.Write("people.jsonl", js.String())
	h.Write("people.csv", csv.String())
	_, rec := h.MustApply()
	m := h.Dataset(h.Output("load.js").GetAttr("train"))
	ref := h.Dataset(h.Output("load.csv").GetAttr("train"))
	if g, w := strings.Join(runtimetest.RowDigests(h.Rows(m)), ","), strings.Join(runtimetest.RowDigests(h.Rows(ref)), ","); g != w {
		t.Errorf("jsonl rows differ from the same rows as csv")
	}
	if m.Rows != 500 || m.Features != 2+256 || m.Format.Name != "jsonl" || strings.Join(m.Format.Numeric, ",") != "age,income" ||
		strings.Join(m.Format.Categorical, ",") != "city" || m.Format.HashOffset != 2 || m.StatsDigest != ref.StatsDigest {
		t.Errorf("manifest: %d rows, %d features, format %+v", m.Rows, m.Features, m.Format)
	}
	if notes := strings.Join(rec.Notes("load.js"), "\n"); !strings.Contains(notes, "jsonl: hashing keys city") {
		t.Errorf("notes: %s", notes)
	}
}

// TestLoadJSONLErrors: bad lines name line, column and what to do.
func TestLoadJSONLErrors(t *testing.T) {
	// Past the first MiB, which the keys are taken from.
	big := strings.Repeat(`{"label": 1, "x": 2}`+"\n", 60000)
	for _, c := range []struct{ name, data, want string }{
		{"nested", `{"label": 1, "x": {"a": 1}}` + "\n", `data.jsonl: key(s) x hold objects or arrays, which load cannot turn into features; list them in ignore`},
		{"syntax", `{"label": 1, "x": 2}` + "\n" + `{"label": 0, "x": 2,}` + "\n", `data.jsonl:2:21: malformed feature "}": expected a quoted key`},
		{"unknown numeric", big + `{"label": 0, "y": 2}` + "\n", `data.jsonl:60001:14: unknown key "\"y\": 2": key "y" was not in the sample the numeric keys were taken from; list it in ignore or categorical`},
		{"label", `{"label": "two", "x": 2}` + "\n", `data.jsonl:1:12: invalid label "two": label key "label" must be a finite number (as a number or a string), true or false; map class names to numbers first`},
		{"numeric string", big + `{"label": 1, "x": "big"}` + "\n", `data.jsonl:60001:20: invalid value "big": key "x" is numeric (list it as categorical to hash its values)`},
		{"not an object", `{"label": 1, "x": 2}` + "\n" + `[1, 2]` + "\n", `data.jsonl:2:1: malformed feature "[": each line must be one JSON object`},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := runtimetest.New(t, "load \"x\" {\n  source = \"data.jsonl\"\n  format = \"jsonl\"\n}\n")
			h.Write("data.jsonl", c.data)
			msg, _ := stageError(t, h, "load.x")
			if !strings.Contains(msg, c.want) {
				t.Errorf("error does not say %q:\n%s", c.want, msg)
			}
		})
	}
}
