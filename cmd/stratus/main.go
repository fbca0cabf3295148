// Command stratus plans and applies machine-learning pipelines written in HCL, running
// each stage as a wave of serverless functions.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
