package testops

import (
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/builtin"
)

// Registry returns the built-in operators plus the test operators: what the test
// bootstrap function, the test build of the CLI and the executor's tests run.
func Registry() *operators.Registry {
	ops := Operators()
	reg := builtin.Registry()
	for _, n := range reg.Names() {
		op, _ := reg.Lookup(n)
		ops = append(ops, op)
	}
	return operators.MustRegistry(ops...)
}
