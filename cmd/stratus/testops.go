//go:build stratus_testops

package main

import (
	"github.com/stratus-ml/stratus/executor/testops"
)

// Built with -tags stratus_testops, the binary also knows the executor's test
// operators, so tests can drive real subprocesses through faults and kills.
func init() { registry = testops.Registry() }
