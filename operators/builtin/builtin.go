// Package builtin assembles the registry of every operator shipped with Stratus. The
// CLI and the Lambda function binary both use it, so they agree on task kinds.
package builtin

import (
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/gridsearch"
	"github.com/stratus-ml/stratus/operators/load"
	"github.com/stratus-ml/stratus/operators/normalize"
	"github.com/stratus-ml/stratus/operators/train"
)

// Registry returns a new registry of the built-in operators.
func Registry() *operators.Registry {
	return operators.MustRegistry(
		load.Operator(),
		normalize.Operator(),
		train.Operator(),
		gridsearch.Operator(),
	)
}
