//go:build !unix

package dataset_test

import "time"

// cpuTime is not measured here: the benchmarks report no cpuMB/s.
func cpuTime() time.Duration { return 0 }
