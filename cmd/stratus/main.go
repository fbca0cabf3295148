// Command stratus plans and applies machine-learning pipelines written in HCL, running
// each stage as a wave of serverless functions.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

func main() {
	os.Exit(profiled(func() int { return run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr) }))
}

// profiled runs fn with a CPU profile written to $STRATUS_CPUPROFILE, when set,
// for `go tool pprof`: the whole command as a user runs it, start-up, state
// and all.
func profiled(fn func() int) int {
	path := os.Getenv("STRATUS_CPUPROFILE")
	if path == "" {
		return fn()
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: STRATUS_CPUPROFILE: %s\n", err)
		return 1
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "Error: STRATUS_CPUPROFILE: %s\n", err)
		return 1
	}
	defer pprof.StopCPUProfile()
	return fn()
}
