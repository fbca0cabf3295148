package dsl_test

import (
	"fmt"
	"strings"
	"testing"
)

// costlyInputs each make evaluation explode — in time or in memory — unless it is
// bounded; each must end promptly with the diagnostic named. They are also seeds of
// planner's FuzzPlan.
var costlyInputs = []struct {
	name, src, summary, detail string
}{
	{"nested for", `locals { x = length([for a in range(1000) : [for b in range(1000) : [for c in range(1000) : c]]]) }`,
		"Expression too costly", "units of work"},
	{"template for", `locals { x = "%{for a in range(1000)}%{for b in range(1000)}%{for c in range(1000)}x%{endfor}%{endfor}%{endfor}" }`,
		"Expression too costly", "units of work"},
	{"nested for of a literal, in a default", `variable "v" { default = [for a in [` + strings.Repeat("1,", 1000) + `] : [for b in [` + strings.Repeat("1,", 1000) + `] : [for c in [` + strings.Repeat("1,", 1000) + `] : c]]] }`,
		"Expression too costly", "units of work"},
	{"format width", `locals { x = format("%999999999s", "") }`, "Expression too costly", "format width or precision of 999999999"},
	{"format precision", `locals { x = format("%.999999999f", 1) }`, "Expression too costly", "format width or precision"},
	{"setproduct", `locals { x = setproduct(range(1000), range(1000), range(1000)) }`, "Expression too costly", "more than"},
	{"replace squares", `locals {
  a = join("", [for i in range(1000) : "xxxxxxxxxxxxxxxx"])
  b = replace(local.a, "x", local.a)
}`, "Expression too costly", "replace()"},
	{"doubling locals", doublingLocals(40), "", "too"},
	{"references to a shared value", `locals {
  a = [for i in range(1000) : "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]
  b = [local.a, local.a, local.a, local.a, local.a, local.a, local.a, local.a]
  c = [local.b, local.b, local.b, local.b, local.b, local.b, local.b, local.b]
  d = [local.c, local.c, local.c, local.c, local.c, local.c, local.c, local.c]
  e = jsonencode(local.d)
}`, "", "too"},
	{"huge number to string", `locals { x = "n${1e600000000}" }`, "Expression too costly", "units of work"},
	{"huge number argument", `load "d" {
  source = 1e600000000
}`, "Value too large", `"source"`},
	{"inside try", `locals {
  x = try([for a in range(1000) : [for b in range(1000) : [for c in range(1000) : c]]], "fallback")
}
load "d" {
  source = "d.svm"
}`, "Expression too costly", "try()"},
	{"inside can", `locals { x = can([for a in range(1000) : [for b in range(1000) : [for c in range(1000) : c]]]) }`,
		"Expression too costly", "can()"},
	{"distinct", `locals { x = distinct(split(",", join(",", [for i in range(1000) : join(",", range(100))]))) }`, "Expression too costly", "distinct"},
}

func doublingLocals(n int) string {
	var b strings.Builder
	b.WriteString("locals {\n  a0 = \"xxxxxxxx\"\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  a%d = \"${local.a%d}${local.a%d}\"\n", i, i-1, i-1)
	}
	b.WriteString("}\n")
	return b.String()
}

func TestCostlyExpressionsAreBounded(t *testing.T) {
	for _, c := range costlyInputs {
		t.Run(c.name, func(t *testing.T) {
			cfg, errs := loadErrs(t, map[string]string{"main.hcl": c.src, "d.svm": "1 1:1\n"})
			if len(errs) == 0 {
				t.Fatal("no error")
			}
			text := diagString(cfg, errs)
			if c.summary != "" && errs[0].Summary != c.summary {
				t.Errorf("summary %q, want %q:\n%s", errs[0].Summary, c.summary, text)
			}
			if !strings.Contains(text, c.detail) {
				t.Errorf("diagnostics do not mention %q:\n%s", c.detail, text)
			}
			for _, d := range errs {
				if d.Subject == nil {
					t.Errorf("diagnostic without a source range: %s", d.Summary)
				}
			}
		})
	}
}

// TestModestExpressionsStillWork: the bound leaves room for real configurations.
func TestModestExpressionsStillWork(t *testing.T) {
	_, ev := loadOK(t, map[string]string{"main.hcl": `
variable "grid" {
  default = [for a in [1, 2, 3] : [for b in ["x", "y"] : "${b}${a}"]]
}
locals {
  pairs  = [for p in setproduct(range(100), range(100)) : "${p[0]}-${p[1]}"]
  padded = format("%08d|%-10s|%.3f", 42, "x", 3.14159)
  table  = { for i in range(300) : "k${i}" => [for j in range(100) : j * i] }
  text   = replace(join(",", range(1000)), ",", ", ")
  uniq   = distinct(concat(range(300), range(300)))
}
`})
	for addr, want := range map[string]int{"local.pairs": 10000, "local.table": 300, "local.uniq": 300, "var.grid": 3} {
		v, diags := ev.Value(addr)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", addr, diags.Error())
		}
		if v.LengthInt() != want {
			t.Errorf("%s has %d elements, want %d", addr, v.LengthInt(), want)
		}
	}
	if v, _ := ev.Value("local.padded"); v.AsString() != "00000042|x         |3.142" {
		t.Errorf("padded = %q", v.AsString())
	}
}

func TestModuleFanOutIsBounded(t *testing.T) {
	files := map[string]string{"main.hcl": `module "a" { source = "./m0" }
module "b" { source = "./m0" }
`}
	for i := 0; i < 12; i++ {
		files[fmt.Sprintf("m%d/main.hcl", i)] = fmt.Sprintf("module \"a\" { source = \"../m%d\" }\nmodule \"b\" { source = \"../m%d\" }\n", i+1, i+1)
	}
	files["m12/main.hcl"] = `load "d" { source = "../d.svm" }`
	files["d.svm"] = "1 1:1\n"
	cfg, errs := loadErrs(t, files)
	if len(errs) == 0 || !strings.Contains(diagString(cfg, errs), "Too many modules") {
		t.Fatalf("want Too many modules, got:\n%s", diagString(cfg, errs))
	}
}
