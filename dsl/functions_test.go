package dsl_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestFunctions(t *testing.T) {
	tests := []struct {
		expr string
		want cty.Value
	}{
		{"min(3, 1, 2)", cty.NumberIntVal(1)},
		{"max(3, 1, 2)", cty.NumberIntVal(3)},
		{"abs(-2.5)", cty.NumberFloatVal(2.5)},
		{"ceil(1.2)", cty.NumberIntVal(2)},
		{"floor(1.8)", cty.NumberIntVal(1)},
		{"log(100, 10)", cty.NumberIntVal(2)},
		{"pow(2, 10)", cty.NumberIntVal(1024)},
		{"concat([1], [2, 3])", cty.TupleVal([]cty.Value{cty.NumberIntVal(1), cty.NumberIntVal(2), cty.NumberIntVal(3)})},
		{"length([1, 2, 3])", cty.NumberIntVal(3)},
		{"length(range(0, 10, 2))", cty.NumberIntVal(5)},
		{"length(setproduct([1, 2], [\"a\", \"b\", \"c\"]))", cty.NumberIntVal(6)},
		{`format("lr=%.2f", 0.1)`, cty.StringVal("lr=0.10")},
		{`join("-", ["a", "b"])`, cty.StringVal("a-b")},
		{`lower("MIN_MAX")`, cty.StringVal("min_max")},
		{`upper("sgd")`, cty.StringVal("SGD")},
		{`jsonencode({ a = [1, true] })`, cty.StringVal(`{"a":[1,true]}`)},
		{`merge({ a = 1 }, { b = 2 }).b`, cty.NumberIntVal(2)},
		{`lookup({ a = "x" }, "b", "dflt")`, cty.StringVal("dflt")},
		{`element(["a", "b", "c"], 4)`, cty.StringVal("b")},
		{`contains(["sgd", "adagrad"], "sgd")`, cty.True},
		{`coalesce(null, "b")`, cty.StringVal("b")},
		{`startswith("s3://b/k", "s3://")`, cty.True},
		{`basename("a/b/c.svm")`, cty.StringVal("c.svm")},
		{`try(tonumber("x"), 7)`, cty.NumberIntVal(7)},
		{`can(tonumber("x"))`, cty.False},
		{`loguniform(0.001, 1).distribution`, cty.StringVal("loguniform")},
		{`choice([20, 100]).distribution`, cty.StringVal("choice")},
	}
	var b strings.Builder
	b.WriteString("locals {\n")
	for i, tt := range tests {
		fmt.Fprintf(&b, "  f%d = %s\n", i, tt.expr)
	}
	b.WriteString("}\n")
	_, ev := loadOK(t, map[string]string{"main.hcl": b.String()})
	for i, tt := range tests {
		got := value(t, ev, fmt.Sprintf("local.f%d", i))
		if !got.IsWhollyKnown() || !got.Equals(tt.want).True() {
			t.Errorf("%s = %#v, want %#v", tt.expr, got, tt.want)
		}
	}
}

// file() reads relative to the directory of the module whose expression calls it,
// not the root or the working directory.
func TestFileRelativeToModule(t *testing.T) {
	cfg, ev := loadOK(t, map[string]string{
		"main.hcl": `
module "m" {
  source = "./mods/m"
  text   = file("notes.txt")
}

locals {
  root = trimspace(file("notes.txt"))
}

output "inner" {
  value = module.m.inner
}
`,
		"notes.txt":        "root notes\n",
		"mods/m/notes.txt": "module notes",
		"mods/m/main.hcl": `
variable "text" {}

output "inner" {
  value = "${file("notes.txt")} / ${var.text}"
}
`,
	})
	wantValue(t, ev, "local.root", cty.StringVal("root notes"))
	wantValue(t, ev, "output.inner", cty.StringVal("module notes / root notes\n"))

	// From another working directory, the same.
	wd, _ := os.Getwd()
	if err := os.Chdir(filepath.Dir(cfg.Dir)); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	ev2 := cfg.NewEvaluator()
	wantValue(t, ev2, "output.inner", cty.StringVal("module notes / root notes\n"))
}

func TestFunctionErrors(t *testing.T) {
	big := strings.Repeat("x", 5<<20)
	cfg, errs := loadErrs(t, map[string]string{
		"main.hcl": `
locals {
  a = file("missing.txt")
  b = file("big.txt")
  c = file("bin.dat")
  d = loguniform(0, 1)
  e = uniform(2, 1)
  f = choice([])
  g = nosuch(1)
  h = file("/dev/zero")
}
`,
		"big.txt": big,
		"bin.dat": "\xff\xfe",
	})
	wantDiags(t, cfg, errs,
		[2]string{"Error in function call", "main.hcl"},
		[2]string{"Error in function call", "main.hcl"},
		[2]string{"Error in function call", "main.hcl"},
		[2]string{"Invalid function argument", "main.hcl"},
		[2]string{"Invalid function argument", "main.hcl"},
		[2]string{"Invalid function argument", "main.hcl"},
		[2]string{"Call to unknown function", "main.hcl"},
		[2]string{"Error in function call", "main.hcl"})
	var all string
	for _, d := range errs {
		all += d.Detail + "\n"
	}
	for _, want := range []string{"no such file", "file() reads at most", "is not UTF-8 text", "loguniform needs low > 0", "needs low < high", "choice needs at least one value", "/dev/zero is not a regular file"} {
		if !strings.Contains(all, want) {
			t.Errorf("no %q in:\n%s", want, all)
		}
	}
}
