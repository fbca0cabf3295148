package main

import (
	"encoding/json"
	"math"
	"os"
	"strconv"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdNear compares a number in two JSON objects (such as `stratus output -json`
// saved to files): near TOLERANCE FILE1 FILE2 KEY passes when FILE1's KEY is
// within TOLERANCE (relative) of FILE2's, or, negated, when it is not.
func cmdNear(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 4 {
		ts.Fatalf("usage: near TOLERANCE FILE1 FILE2 KEY")
	}
	tol, err := strconv.ParseFloat(args[0], 64)
	ts.Check(err)
	read := func(name string) float64 {
		b, err := os.ReadFile(ts.MkAbs(name))
		ts.Check(err)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			ts.Fatalf("%s: %v", name, err)
		}
		x, ok := m[args[3]].(float64)
		if !ok {
			ts.Fatalf("%s has no number %q: %s", name, args[3], b)
		}
		return x
	}
	a, b := read(args[1]), read(args[2])
	ts.Logf("%s: %g in %s, %g in %s", args[3], a, args[1], b, args[2])
	if near := math.Abs(a-b) <= tol*math.Abs(b); near == neg {
		ts.Fatalf("%s: %g in %s and %g in %s are %s %g apart", args[3], a, args[1], b, args[2], map[bool]string{true: "within", false: "more than"}[near], tol)
	}
}
