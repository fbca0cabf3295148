package dataset_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/gen"
	"github.com/stratus-ml/stratus/dataset/partition"
)

// Inputs of the format benchmarks: benchLIBSVM cut into parts at line
// boundaries, each plain, gzipped (level 6, gzip's default) and
// zstd-compressed (level 3, zstd's default), as a load of that many files
// reads them; and 100,000 Criteo-like rows as CSV and as Parquet.
var (
	partsOnce sync.Once
	parts     map[int]map[string][][]byte // parts[n][codec]

	pqOnce           sync.Once
	benchCSV, benchP []byte
)

func benchParts(b *testing.B, n int) map[string][][]byte {
	benchData(b)
	partsOnce.Do(func() { parts = map[int]map[string][][]byte{} })
	if p := parts[n]; p != nil {
		return p
	}
	p := map[string][][]byte{}
	data := benchLIBSVM
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		b.Fatal(err)
	}
	for k := 0; k < n; k++ {
		lo, hi := lineStart(data, len(data)*k/n), lineStart(data, len(data)*(k+1)/n)
		plain := data[lo:hi]
		var gz bytes.Buffer
		w := gzip.NewWriter(&gz)
		w.Write(plain)
		w.Close()
		p[""] = append(p[""], plain)
		p[dataset.CodecGzip] = append(p[dataset.CodecGzip], gz.Bytes())
		p[dataset.CodecZstd] = append(p[dataset.CodecZstd], zw.EncodeAll(plain, nil))
		// Framed as pzstd (frames of 8 MiB of content, as it cuts LIBSVM at
		// level 3) and bgzip write them.
		p[framedPzstd] = append(p[framedPzstd], gen.Pzstd(plain, 8<<20))
		p[framedBGZF] = append(p[framedBGZF], gen.BGZF(plain))
	}
	parts[n] = p
	return p
}

// lineStart returns the start of the line holding byte i (len(data) at the
// end).
func lineStart(data []byte, i int) int {
	if i >= len(data) {
		return len(data)
	}
	return bytes.LastIndexByte(data[:i], '\n') + 1
}

// Keys of benchParts' framed compressions.
const (
	framedPzstd = "zstd-pzstd"
	framedBGZF  = "gzip-bgzf"
)

// loadPart does one load task's CPU work on a part: decompress, parse,
// encode partitions (dropped). A compressed part is read as load reads one
// (dataset.StreamScanner: parsed on several goroutines when there are
// cores to spare).
func loadPart(b *testing.B, part []byte, codec string, f dataset.Format) {
	if codec == "" {
		scanRows(b, dataset.NewScanner(bytes.NewReader(part), f, dataset.ScanOptions{}))
		return
	}
	sc, err := dataset.NewStreamScanner(bytes.NewReader(part), codec, func() (dataset.Format, error) { return dataset.NewLIBSVM(), nil }, dataset.ScanOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	scanRows(b, sc)
}

// loadFrames does one load task's CPU work on the byte range [start, end)
// of a framed object, as load reads it (dataset.OpenFrames).
func loadFrames(b *testing.B, obj []byte, codec, framing string, start, end int64, f dataset.Format) int64 {
	r, opts, err := dataset.OpenFrames(bytes.NewReader(obj[start:]), codec, framing, start, end)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	return scanPart(b, r, f, opts)
}

// scanPart parses r's rows into partitions (dropped) and returns how many.
func scanPart(b *testing.B, r io.Reader, f dataset.Format, opts dataset.ScanOptions) int64 {
	return scanRows(b, dataset.NewScanner(r, f, opts))
}

// scanRows reads sc's rows into partitions (dropped) and returns how many.
func scanRows(b *testing.B, sc dataset.RowReader) int64 {
	var rows int64
	w := partition.NewWriter(func(int, []byte) (string, error) { return "", nil }, partition.DefaultTarget)
	var row dataset.Row
	for {
		err := sc.Next(&row)
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		if err := w.Add(&row); err != nil {
			b.Fatal(err)
		}
		rows++
	}
	if _, err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return rows
}

// BenchmarkCompressedLIBSVM loads the Criteo-like LIBSVM rows plain, gzipped
// and zstd-compressed, in MB/s of uncompressed content. files=N reads N
// files (N = the machine's cores; for plain, N ranges of one file), one
// goroutine each, as load's tasks do: run it with -cpu 1,N for one core and
// all cores. files=1 is one compressed file, which load streams in one task
// (its decoder running ahead on another goroutine). files=1/zstd-pzstd and
// files=1/gzip-bgzf are one file cut into frames (pzstd, bgzip), which load
// splits by frame into N ranges, one goroutine each, as plain files. make
// bench-data prints the ratios to plain.
func BenchmarkCompressedLIBSVM(b *testing.B) {
	n := runtime.NumCPU()
	for _, files := range []int{n, 1} {
		p := benchParts(b, files)
		for _, codec := range []string{"", dataset.CodecGzip, dataset.CodecZstd, framedBGZF, framedPzstd} {
			if framed := codec == framedBGZF || codec == framedPzstd; framed {
				if files != 1 {
					continue
				}
				obj := p[codec][0]
				c, framing := dataset.CodecZstd, dataset.FramingPzstd
				if codec == framedBGZF {
					c, framing = dataset.CodecGzip, dataset.FramingBGZF
				}
				b.Run("files=1/"+codec, func(b *testing.B) {
					perCPU(b, int64(len(benchLIBSVM)), func() {
						for i := 0; i < b.N; i++ {
							var wg sync.WaitGroup
							rows := make([]int64, n)
							for k := 0; k < n; k++ {
								wg.Add(1)
								go func() {
									defer wg.Done()
									rows[k] = loadFrames(b, obj, c, framing, int64(len(obj)*k/n), int64(len(obj)*(k+1)/n), dataset.NewLIBSVM())
								}()
							}
							wg.Wait()
							if total := sumInt64(rows); total != 100000 {
								b.Fatalf("the ranges read %d rows, want 100000", total)
							}
						}
					})
				})
				continue
			}
			name := codec
			if name == "" {
				name = "plain"
			}
			if files == 1 && codec == "" {
				continue // plain is cut into ranges: files=n is its figure
			}
			b.Run(fmt.Sprintf("files=%d/%s", files, name), func(b *testing.B) {
				perCPU(b, int64(len(benchLIBSVM)), func() {
					for i := 0; i < b.N; i++ {
						var wg sync.WaitGroup
						for _, part := range p[codec] {
							wg.Add(1)
							go func() {
								defer wg.Done()
								loadPart(b, part, codec, dataset.NewLIBSVM())
							}()
						}
						wg.Wait()
					}
				})
			})
		}
	}
}

// benchCSVParquet makes 100,000 generated Criteo-like rows as CSV (label,
// 13 integer columns, 26 hex string columns, empty fields missing) and as
// Parquet (Snappy, nullable int64 and dictionary-encoded string columns in
// version 1 data pages, as Arrow, pandas and Spark write them by default
// (parquet-go writes version 2, whose levels are not compressed); row
// groups of 10,000).
func benchCSVParquet(b *testing.B) {
	pqOnce.Do(func() {
		var tsv bytes.Buffer
		if _, err := gen.Generate(context.Background(), &tsv, gen.Config{Rows: 100000, Seed: 1}); err != nil {
			b.Fatal(err)
		}
		names := []string{"label"}
		for i := 1; i <= 13; i++ {
			names = append(names, fmt.Sprintf("i%02d", i))
		}
		for i := 1; i <= 26; i++ {
			names = append(names, fmt.Sprintf("s%02d", i))
		}
		group := parquet.Group{}
		for _, nm := range names {
			switch {
			case nm == "label":
				group[nm] = parquet.Int(32)
			case nm[0] == 'i':
				group[nm] = parquet.Optional(parquet.Int(64))
			default:
				// Dictionary-encoded, as Arrow, pandas and Spark write strings.
				group[nm] = parquet.Optional(parquet.Encoded(parquet.String(), &parquet.RLEDictionary))
			}
		}
		schema := parquet.NewSchema("row", group)
		sorted := append([]string(nil), names...)
		sort.Strings(sorted) // parquet-go orders a group's columns by name
		col := map[string]int{}
		for i, nm := range sorted {
			col[nm] = i
		}
		var pq bytes.Buffer
		w := parquet.NewWriter(&pq, schema, parquet.Compression(&parquet.Snappy), parquet.MaxRowsPerRowGroup(10000), parquet.DataPageVersion(1))
		var csv bytes.Buffer
		csv.WriteString(strings.Join(names, ",") + "\n")
		row := make(parquet.Row, len(names))
		for _, line := range strings.Split(strings.TrimSuffix(tsv.String(), "\n"), "\n") {
			fields := strings.Split(line, "\t")
			csv.WriteString(strings.Join(fields, ",") + "\n")
			for k, f := range fields {
				c := col[names[k]]
				switch {
				case k == 0:
					x, _ := strconv.Atoi(f)
					row[c] = parquet.Int32Value(int32(x)).Level(0, 0, c)
				case f == "":
					row[c] = parquet.NullValue().Level(0, 0, c)
				case k <= 13:
					x, _ := strconv.ParseInt(f, 10, 64)
					row[c] = parquet.Int64Value(x).Level(0, 1, c)
				default:
					row[c] = parquet.ByteArrayValue([]byte(f)).Level(0, 1, c)
				}
			}
			if _, err := w.WriteRows([]parquet.Row{row}); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		benchCSV, benchP = csv.Bytes(), pq.Bytes()
	})
}

// BenchmarkParquetVsCSV loads the same 100,000 rows from CSV and from
// Parquet (parse and encode partitions; Parquet's pages checked first, as
// load's tasks check them), both in MB/s of the CSV's size so
// that the figures compare as rows per second. Parquet's row groups (CSV's
// ranges) are shared among N goroutines (N = the machine's cores), as load's
// tasks share them: run with -cpu 1,N.
func BenchmarkParquetVsCSV(b *testing.B) {
	benchCSVParquet(b)
	n := runtime.NumCPU()
	header, _, _ := bytes.Cut(benchCSV, []byte("\n"))
	var cats []string
	for _, nm := range strings.Split(string(header), ",") {
		if nm[0] == 's' {
			cats = append(cats, nm)
		}
	}
	b.Run("csv", func(b *testing.B) {
		perCPU(b, int64(len(benchCSV)), func() {
			for i := 0; i < b.N; i++ {
				var wg sync.WaitGroup
				for k := 0; k < n; k++ {
					part := benchCSV[lineStart(benchCSV, len(benchCSV)*k/n):lineStart(benchCSV, len(benchCSV)*(k+1)/n)]
					wg.Add(1)
					go func() {
						defer wg.Done()
						c, err := dataset.NewCSV(header, dataset.CSVOptions{Label: "label", Categorical: cats})
						if err != nil {
							b.Error(err)
							return
						}
						loadPart(b, part, "", c)
					}()
				}
				wg.Wait()
			}
		})
	})
	b.Run("parquet", func(b *testing.B) {
		perCPU(b, int64(len(benchCSV)), func() {
			for i := 0; i < b.N; i++ {
				f, err := parquet.OpenFile(bytes.NewReader(benchP), int64(len(benchP)), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
				if err != nil {
					b.Fatal(err)
				}
				groups := f.RowGroups()
				var wg sync.WaitGroup
				var rows [64]int64
				for k := 0; k < n; k++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						p, err := dataset.NewParquet(f.Schema(), dataset.ParquetOptions{Label: "label"})
						if err != nil {
							b.Error(err)
							return
						}
						w := partition.NewWriter(func(int, []byte) (string, error) { return "", nil }, partition.DefaultTarget)
						var row dataset.Row
						for g := k; g < len(groups); g += n {
							// As a load task does: its pages checked, then read.
							if err := dataset.CheckRowGroup(bytes.NewReader(benchP), f, p, g); err != nil {
								b.Error(err)
							}
							got, _, err := p.ReadRowGroup(context.Background(), groups[g], 0, &row, func(r *dataset.Row) error { return w.Add(r) },
								func(pe *dataset.ParseError) bool { b.Error(pe); return false })
							if err != nil {
								b.Error(err)
							}
							rows[k%64] += got
						}
						if _, err := w.Close(); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
				var total int64
				for _, r := range rows {
					total += r
				}
				if total != 100000 {
					b.Fatalf("read %d rows, want 100000", total)
				}
			}
		})
	})
}

// perCPU runs a benchmark's loop and reports, beside MB/s, its bytes per
// second of the process's CPU time (cpuMB/s): on one core the same work as
// MB/s, but steady when other processes take turns on the core.
func perCPU(b *testing.B, bytes int64, loop func()) {
	b.SetBytes(bytes)
	c0 := cpuTime()
	loop()
	if c := cpuTime() - c0; c > 0 {
		b.ReportMetric(float64(bytes)*float64(b.N)/c.Seconds()/1e6, "cpuMB/s")
	}
}

func sumInt64(xs []int64) (s int64) {
	for _, x := range xs {
		s += x
	}
	return s
}
