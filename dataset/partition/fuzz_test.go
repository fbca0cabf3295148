package partition_test

import (
	"errors"
	"testing"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/partition"
)

func FuzzDecode(f *testing.F) {
	for i, rows := range [][]dataset.Row{
		nil,
		randomRows(10, 5, 3, 100, true),
		randomRows(11, 5, 3, 1<<20, false),
		{{Label: 1}},
	} {
		data, err := partition.Encode(rows)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/2])
		bad := append([]byte(nil), data...)
		bad[len(bad)/(i+2)] ^= 0x40
		f.Add(bad)
	}
	f.Add([]byte("STRP"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := partition.Decode(data)
		if err != nil {
			if !errors.Is(err, partition.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		nnz := 0
		for lo := 0; lo < p.Rows(); lo += 3 {
			b := p.Batch(lo, min(lo+3, p.Rows()))
			for i := 0; i < b.Len(); i++ {
				idx, val := b.Row(i)
				for k, ix := range idx {
					if int(ix) >= p.Features() || (val != nil && len(val) != len(idx)) || (k > 0 && ix <= idx[k-1]) {
						t.Fatal("decoded partition breaks its invariants")
					}
				}
				nnz += len(idx)
			}
		}
		if nnz != p.NNZ() {
			t.Fatalf("rows hold %d entries, NNZ says %d", nnz, p.NNZ())
		}
	})
}
