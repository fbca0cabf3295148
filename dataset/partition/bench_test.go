package partition_test

import (
	"testing"

	"github.com/stratus-ml/stratus/dataset/partition"
)

// fullPartition encodes rows until one partition of about 4 MiB is full.
func fullPartition(b *testing.B, maxIdx uint32, ones bool) []byte {
	rows := randomRows(1, 40000, 70, maxIdx, ones)
	var first []byte
	w := partition.NewWriter(func(seq int, data []byte) (string, error) {
		if seq == 0 {
			first = append([]byte(nil), data...)
		}
		return "", nil
	}, partition.DefaultTarget)
	for i := range rows {
		if err := w.Add(&rows[i]); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return first
}

// BenchmarkDecode measures validating and viewing a ~4 MiB partition.
func BenchmarkDecode(b *testing.B) {
	for _, tc := range []struct {
		name   string
		maxIdx uint32
		ones   bool
	}{
		{"wide-indices", 1 << 20, false},   // 4-byte indices: zero-copy
		{"narrow-indices", 1 << 15, false}, // 2-byte indices: widened once
		{"binary", 1 << 15, true},          // no values section
	} {
		data := fullPartition(b, tc.maxIdx, tc.ones)
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := partition.Decode(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBatch measures slicing a partition into minibatches of 100 rows
// and touching every entry (a dot product with a weight vector), the work a
// training worker does per minibatch.
func BenchmarkBatch(b *testing.B) {
	data := fullPartition(b, 1<<20, false)
	p, err := partition.Decode(data)
	if err != nil {
		b.Fatal(err)
	}
	weights := make([]float32, p.Features())
	for i := range weights {
		weights[i] = float32(i%7) * 0.1
	}
	b.Run("slice-only", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for i := 0; i < b.N; i++ {
			for lo := 0; lo < p.Rows(); lo += 100 {
				n += p.Batch(lo, min(lo+100, p.Rows())).Len()
			}
		}
		b.ReportMetric(float64(b.N*((p.Rows()+99)/100))/b.Elapsed().Seconds(), "batches/s")
	})
	b.Run("slice+dot", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		var sink float32
		for i := 0; i < b.N; i++ {
			for lo := 0; lo < p.Rows(); lo += 100 {
				bt := p.Batch(lo, min(lo+100, p.Rows()))
				for r := 0; r < bt.Len(); r++ {
					idx, val := bt.Row(r)
					var s float32
					for k, ix := range idx {
						s += weights[ix] * val[k]
					}
					sink += s
				}
			}
		}
		_ = sink
	})
}
