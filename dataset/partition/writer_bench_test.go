package partition_test

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/stratus-ml/stratus/dataset/partition"
)

// BenchmarkWriter measures writing rows into default-sized partitions: a large
// input (rows=40000, about 3 MiB of partitions, most of one) and a small one
// (rows=300, as heart_scale). Besides the time per row it reports the heap one
// Writer allocated (heap-KB): a Writer's buffers grow with its data.
func BenchmarkWriter(b *testing.B) {
	for _, n := range []int{300, 40000} {
		rows := randomRows(1, n, 14, 1<<20, true)
		b.Run("rows="+strconv.Itoa(n), func(b *testing.B) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range b.N {
				w := partition.NewWriter(func(int, []byte) (string, error) { return "", nil }, partition.DefaultTarget)
				for i := range rows {
					if err := w.Add(&rows[i]); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/1024, "heap-KB")
		})
	}
}
