package dataset_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"sync"
	"testing"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/gen"
	"github.com/stratus-ml/stratus/dataset/partition"
)

// Benchmark inputs: 100,000 generated Criteo-like rows in each format
// (about 33 MB of hashed LIBSVM, 25 MB of TSV), and a9a.
var (
	benchOnce                     sync.Once
	benchLIBSVM, benchTSV, bench9 []byte
)

func benchData(b *testing.B) {
	benchOnce.Do(func() {
		var buf bytes.Buffer
		if _, err := gen.Generate(context.Background(), &buf, gen.Config{Rows: 100000, Seed: 1, Format: gen.FormatLIBSVM}); err != nil {
			b.Fatal(err)
		}
		benchLIBSVM = append([]byte(nil), buf.Bytes()...)
		buf.Reset()
		if _, err := gen.Generate(context.Background(), &buf, gen.Config{Rows: 100000, Seed: 1}); err != nil {
			b.Fatal(err)
		}
		benchTSV = append([]byte(nil), buf.Bytes()...)
		var err error
		if bench9, err = os.ReadFile("../testdata/a9a"); err != nil {
			b.Fatal(err)
		}
	})
}

// scanAll parses data with f on one goroutine, feeding a partition Writer
// (whose partitions are encoded, checksummed and dropped) when partition is
// set: the CPU work of one load task, without storage.
func scanAll(b *testing.B, data []byte, f dataset.Format, part bool) {
	sc := dataset.NewScanner(bytes.NewReader(data), f, dataset.ScanOptions{})
	var w *partition.Writer
	if part {
		w = partition.NewWriter(func(int, []byte) (string, error) { return "", nil }, partition.DefaultTarget)
	}
	var row dataset.Row
	for {
		err := sc.Next(&row)
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		if w != nil {
			if err := w.Add(&row); err != nil {
				b.Fatal(err)
			}
		}
	}
	if w != nil {
		if _, err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func benchFormat(b *testing.B, data []byte, newFormat func() dataset.Format) {
	for _, mode := range []struct {
		name string
		part bool
	}{{"parse", false}, {"parse+partition", true}} {
		b.Run(mode.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				scanAll(b, data, newFormat(), mode.part)
			}
		})
	}
}

// BenchmarkParseLIBSVM measures single-core LIBSVM throughput in MB/s:
// hashed Criteo-like rows (about 35 entries, real-valued) and a9a (binary).
func BenchmarkParseLIBSVM(b *testing.B) {
	benchData(b)
	b.Run("criteo-like", func(b *testing.B) {
		benchFormat(b, benchLIBSVM, func() dataset.Format { return dataset.NewLIBSVM() })
	})
	b.Run("a9a", func(b *testing.B) {
		benchFormat(b, bench9, func() dataset.Format { return dataset.NewLIBSVM() })
	})
}

// BenchmarkParseCriteo measures single-core Criteo TSV throughput in MB/s,
// with log1p on the integer columns and 2^20 hash slots.
func BenchmarkParseCriteo(b *testing.B) {
	benchData(b)
	benchFormat(b, benchTSV, func() dataset.Format {
		c, _ := dataset.NewCriteo(dataset.CriteoOptions{HashBits: 20, Log1p: true})
		return c
	})
}
