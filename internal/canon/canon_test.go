package canon

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// hclVal evaluates an HCL expression, as a pipeline argument would be.
func hclVal(t *testing.T, src string) cty.Value {
	t.Helper()
	e, diags := hclsyntax.ParseExpression([]byte(src), "test", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parse %s: %s", src, diags.Error())
	}
	v, diags := e.Value(nil)
	if diags.HasErrors() {
		t.Fatalf("evaluate %s: %s", src, diags.Error())
	}
	return v
}

func TestCanonicalEncoding(t *testing.T) {
	// Pinned: a change of the encoding changes every cache key, so it must be
	// deliberate.
	tests := []struct {
		v    cty.Value
		want string
	}{
		{cty.StringVal("min_max"), "s7:min_max"},
		{cty.StringVal(""), "s0:"},
		{cty.StringVal("é"), "s2:é"},
		{cty.NumberIntVal(-3), "n-3;"},
		{cty.NumberFloatVal(0.1), "n0.1;"},
		{cty.True, "b1"},
		{cty.False, "b0"},
		{cty.NullVal(cty.String), "z"},
		{cty.UnknownVal(cty.Number), "?"},
		{cty.DynamicVal, "?"},
		{cty.ListValEmpty(cty.String), "l0:"},
		{cty.EmptyObjectVal, "m0:"},
		{cty.ObjectVal(map[string]cty.Value{
			"b": cty.TupleVal([]cty.Value{cty.NumberIntVal(1), cty.StringVal("x")}),
			"a": cty.NullVal(cty.Bool),
		}), "m2:s1:azs1:bl2:n1;s1:x"},
		{cty.SetVal([]cty.Value{cty.StringVal("b"), cty.StringVal("a")}), "l2:s1:as1:b"},
	}
	for _, tt := range tests {
		if got := Encode(tt.v); got != tt.want {
			t.Errorf("Encode(%#v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestCanonicalEqual(t *testing.T) {
	// Each group holds values that must encode alike.
	groups := [][]cty.Value{
		{hclVal(t, "0.1"), hclVal(t, "0.10"), hclVal(t, "1e-1"), hclVal(t, "1/10"), cty.NumberFloatVal(0.1)},
		{hclVal(t, "0.9"), cty.NumberFloatVal(0.9)},
		{hclVal(t, "1/3"), hclVal(t, "0.3333333333333333"), cty.NumberFloatVal(1.0 / 3)},
		{hclVal(t, "10"), hclVal(t, "10.0"), hclVal(t, "1e1"), cty.NumberIntVal(10), cty.NumberFloatVal(10)},
		{hclVal(t, "-0"), hclVal(t, "0"), cty.NumberFloatVal(0)},
		{hclVal(t, "[1, 2]"), cty.ListVal([]cty.Value{cty.NumberIntVal(1), cty.NumberIntVal(2)})},
		{hclVal(t, `{ test = 0.1, seed = 1 }`), hclVal(t, `{ seed = 1, test = 0.1 }`),
			cty.MapVal(map[string]cty.Value{"seed": cty.NumberIntVal(1), "test": cty.NumberFloatVal(0.1)})},
		{cty.SetVal([]cty.Value{cty.NumberIntVal(2), cty.NumberIntVal(1)}), cty.SetVal([]cty.Value{cty.NumberIntVal(1), cty.NumberIntVal(2)})},
		{cty.StringVal("x").Mark("sensitive"), cty.StringVal("x")},
		{hclVal(t, `"café"`), cty.StringVal("cafe\u0301")}, // cty normalises to NFC
	}
	for _, g := range groups {
		want := Encode(g[0])
		for _, v := range g[1:] {
			if got := Encode(v); got != want {
				t.Errorf("Encode(%#v) = %q, want %q as for %#v", v, got, want, g[0])
			}
		}
	}
}

func TestCanonicalDistinct(t *testing.T) {
	// Every value encodes differently from every other: types, structure and
	// string boundaries cannot be confused.
	vals := map[string]cty.Value{
		`"1"`:            cty.StringVal("1"),
		`1`:              cty.NumberIntVal(1),
		`10`:             cty.NumberIntVal(10),
		`1.5`:            cty.NumberFloatVal(1.5),
		`true`:           cty.True,
		`"true"`:         cty.StringVal("true"),
		`""`:             cty.StringVal(""),
		`null`:           cty.NullVal(cty.String),
		`unknown`:        cty.UnknownVal(cty.String),
		`[]`:             cty.EmptyTupleVal,
		`{}`:             cty.EmptyObjectVal,
		`["a", "b"]`:     hclVal(t, `["a", "b"]`),
		`["ab"]`:         hclVal(t, `["ab"]`),
		`["a,b"]`:        hclVal(t, `["a,b"]`),
		`["a:", "b"]`:    hclVal(t, `["a:", "b"]`),
		`["a", ":b"]`:    hclVal(t, `["a", ":b"]`),
		`["s1:a"]`:       hclVal(t, `["s1:a"]`),
		`[["a"]]`:        hclVal(t, `[["a"]]`),
		`[[], "a"]`:      hclVal(t, `[[], "a"]`),
		`[["a"], []]`:    hclVal(t, `[["a"], []]`),
		`{ a = "b" }`:    hclVal(t, `{ a = "b" }`),
		`{ ab = "c" }`:   hclVal(t, `{ ab = "c" }`),
		`{ a = "bc" }`:   hclVal(t, `{ a = "bc" }`),
		`{ a = ["b"] }`:  hclVal(t, `{ a = ["b"] }`),
		`{ a = null }`:   hclVal(t, `{ a = null }`),
		`2^53`:           hclVal(t, "9007199254740992"),
		`2^53+1`:         hclVal(t, "9007199254740993"),
		`1e-300`:         hclVal(t, "1e-300"),
		`"?"`:            cty.StringVal("?"),
		`"n1;"`:          cty.StringVal("n1;"),
		`["n1;", "b1"]`:  hclVal(t, `["n1;", "b1"]`),
		`[1, true]`:      hclVal(t, `[1, true]`),
		`{ "" = "" }`:    hclVal(t, `{ "" = "" }`),
		`{ "s0:" = "" }`: hclVal(t, `{ "s0:" = "" }`),
	}
	seen := map[string]string{}
	for name, v := range vals {
		c := Encode(v)
		if prev, dup := seen[c]; dup {
			t.Errorf("%s and %s both encode as %q", name, prev, c)
		}
		seen[c] = name
	}
}

func TestCanonHasUnknown(t *testing.T) {
	tests := []struct {
		v    cty.Value
		want bool
	}{
		{cty.StringVal("s3://bucket/x?versionId=1"), false},
		{cty.StringVal("?"), false},
		{hclVal(t, `{ "?" = ["?", 1, true, null] }`), false},
		{cty.UnknownVal(cty.String), true},
		{cty.ObjectVal(map[string]cty.Value{"a": cty.StringVal("??"), "b": cty.UnknownVal(cty.Number)}), true},
		{cty.TupleVal([]cty.Value{cty.StringVal("a?"), cty.ListVal([]cty.Value{cty.UnknownVal(cty.Bool)})}), true},
	}
	for _, tt := range tests {
		if got := HasUnknown(Encode(tt.v)); got != tt.want {
			t.Errorf("HasUnknown(%q) = %v, want %v", Encode(tt.v), got, tt.want)
		}
	}
}

func TestDisplay(t *testing.T) {
	tests := []struct {
		v    cty.Value
		want string
	}{
		{cty.StringVal("min_max"), `"min_max"`},
		{hclVal(t, "0.10"), "0.1"},
		{hclVal(t, "1/3"), "0.3333333333333333"},
		{hclVal(t, "[20, 100]"), "[20, 100]"},
		{hclVal(t, `{ test = 0.1, seed = 1 }`), "{ seed = 1, test = 0.1 }"},
		{cty.NullVal(cty.Number), "null"},
		{cty.UnknownVal(cty.Number), "(known after apply)"},
		{cty.StringVal("a very long value that goes on and on and on, far past sixty characters"),
			`"a very long value that goes on and on and on, far past s...`},
	}
	for _, tt := range tests {
		if got := Display(tt.v); got != tt.want {
			t.Errorf("Display(%#v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}
