// Command bootstrap is the Stratus Lambda function: the executable of a
// provided.al2023 function, dispatching each invocation's Task to the built-in
// operators. `stratus deploy` builds it with
//
//	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -tags lambda.norpc -o bootstrap ./lambda-runtime/cmd/bootstrap
//
// zips it and uploads it.
package main

import (
	lambdaruntime "github.com/stratus-ml/stratus/lambda-runtime"
	"github.com/stratus-ml/stratus/operators/builtin"
)

func main() {
	lambdaruntime.Start(builtin.Registry())
}
