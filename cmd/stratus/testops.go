//go:build stratus_testops

package main

import (
	"github.com/stratus-ml/stratus/executor/testops"
	"github.com/stratus-ml/stratus/operators"
)

// Built with -tags stratus_testops, the binary also knows the executor's test
// operators, so tests can drive real subprocesses through faults and kills.
func init() {
	ops := testops.Operators()
	for _, n := range registry.Names() {
		op, _ := registry.Lookup(n)
		ops = append(ops, op)
	}
	registry = operators.MustRegistry(ops...)
}
