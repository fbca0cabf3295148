// Command parquetgen writes people.parquet with Apache Arrow's Go Parquet
// writer (apache/arrow-go, not the parquet-go library Stratus reads with),
// and the same rows as people.csv, for the cross-library Parquet tests:
//
//	cd dataset/testdata/parquetgen && go run . ..
//
// 300 rows in 3 row groups of 100, Snappy-compressed, dictionary-encoded
// strings; columns id (int64, for ignore), age (int64, every 7th null), city
// (string, every 11th null), income (double), member (boolean), score
// (float), clicked (int32 0/1, the label). It has its own go.mod so that the
// arrow dependency stays out of Stratus's.
package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

func main() {
	dir := "."
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	if err := run(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(dir string) error {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "age", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "city", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "income", Type: arrow.PrimitiveTypes.Float64},
		{Name: "member", Type: arrow.FixedWidthTypes.Boolean},
		{Name: "score", Type: arrow.PrimitiveTypes.Float32},
		{Name: "clicked", Type: arrow.PrimitiveTypes.Int32},
	}, nil)
	cities := []string{"paris", "london", "new york", "lagos", "lima", "são paulo"}
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	cf, err := os.Create(filepath.Join(dir, "people.csv"))
	if err != nil {
		return err
	}
	cw := csv.NewWriter(cf)
	cw.Write([]string{"id", "age", "city", "income", "member", "score", "clicked"})
	for i := 0; i < 300; i++ {
		rec := []string{strconv.Itoa(i)}
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		if i%7 == 0 {
			b.Field(1).(*array.Int64Builder).AppendNull()
			rec = append(rec, "")
		} else {
			b.Field(1).(*array.Int64Builder).Append(int64(18 + i%50))
			rec = append(rec, strconv.Itoa(18+i%50))
		}
		if i%11 == 0 {
			b.Field(2).(*array.StringBuilder).AppendNull()
			rec = append(rec, "")
		} else {
			b.Field(2).(*array.StringBuilder).Append(cities[i%len(cities)])
			rec = append(rec, cities[i%len(cities)])
		}
		income := float64(i) * 10.25
		b.Field(3).(*array.Float64Builder).Append(income)
		member := i%3 == 0
		b.Field(4).(*array.BooleanBuilder).Append(member)
		score := float32(i%17) / 4
		b.Field(5).(*array.Float32Builder).Append(score)
		label := int32(i % 5 % 2)
		b.Field(6).(*array.Int32Builder).Append(label)
		m := "0"
		if member {
			m = "1"
		}
		rec = append(rec, strconv.FormatFloat(income, 'g', -1, 64), m, strconv.FormatFloat(float64(score), 'g', -1, 32), strconv.Itoa(int(label)))
		cw.Write(rec)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	if err := cf.Close(); err != nil {
		return err
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	tbl := array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
	defer tbl.Release()
	f, err := os.Create(filepath.Join(dir, "people.parquet"))
	if err != nil {
		return err
	}
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithDictionaryDefault(true), parquet.WithCreatedBy("apache/arrow-go parquetgen"))
	// WriteTable closes f.
	return pqarrow.WriteTable(tbl, f, 100, props, pqarrow.DefaultWriterProps())
}
