// Command bootstrap is a Lambda function serving the built-in operators and the
// executor's test operators (executor/testops). The lambda backend's tests build it
// and run it under the AWS Lambda Runtime Interface Emulator.
package main

import (
	"github.com/stratus-ml/stratus/executor/testops"
	lambdaruntime "github.com/stratus-ml/stratus/lambda-runtime"
)

func main() {
	lambdaruntime.Start(testops.Registry())
}
