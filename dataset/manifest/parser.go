package manifest

import (
	"fmt"
	"math"
	"slices"

	"github.com/stratus-ml/stratus/dataset"
)

// Parser reads text the way a dataset with this Format was read: the same format,
// hashing and numeric transformation. Build one per goroutine.
type Parser struct {
	dataset.Format
	numeric int // CSV: leading numeric slots that log1p applies to
	log1p   bool
}

// NewParser returns a parser for f. CSV needs the header line of the data it will
// read, whose columns must be the ones the dataset was read with (unless
// NoHeader: then the data has no header line, and header is ignored).
func (f Format) NewParser(header []byte) (*Parser, error) {
	switch f.Name {
	case "libsvm":
		if f.IndexHashBits > 0 {
			l, err := dataset.NewLIBSVMHashed(f.IndexHashBits)
			if err != nil {
				return nil, err
			}
			return &Parser{Format: l}, nil
		}
		return &Parser{Format: dataset.NewLIBSVM()}, nil
	case "criteo":
		c, err := dataset.NewCriteo(dataset.CriteoOptions{HashBits: f.HashBits, Log1p: f.Log1p})
		if err != nil {
			return nil, err
		}
		return &Parser{Format: c}, nil
	case "csv":
		if f.Label == "" {
			f.Label = "label"
		}
		opts := dataset.CSVOptions{Label: f.Label, Categorical: f.Categorical, Ignore: f.Ignore, HashBits: f.HashBits}
		if f.Delimiter != "" {
			if len(f.Delimiter) != 1 {
				return nil, fmt.Errorf("csv: delimiter %q must be one byte", f.Delimiter)
			}
			opts.Comma = f.Delimiter[0]
		}
		if f.NoHeader {
			if len(f.Columns) == 0 {
				return nil, fmt.Errorf("csv: a format without a header line must name its columns")
			}
			opts.Columns = f.Columns
		}
		c, err := dataset.NewCSV(header, opts)
		if err != nil {
			return nil, err
		}
		if len(f.Columns) > 0 && !slices.Equal(c.Columns(), f.Columns) {
			return nil, fmt.Errorf("the CSV header has columns %v; the data was read with %v", c.Columns(), f.Columns)
		}
		return &Parser{Format: c, numeric: len(c.NumericColumns()), log1p: f.Log1p}, nil
	case "jsonl":
		if f.Label == "" {
			f.Label = "label"
		}
		j, err := dataset.NewJSONL(dataset.JSONLOptions{Label: f.Label, Numeric: f.Numeric, Categorical: f.Categorical, Ignore: f.Ignore, HashBits: f.HashBits})
		if err != nil {
			return nil, err
		}
		return &Parser{Format: j, numeric: len(f.Numeric), log1p: f.Log1p}, nil
	case "ratings":
		r, err := dataset.NewRatings(f.HashBits)
		if err != nil {
			return nil, err
		}
		return &Parser{Format: r}, nil
	case "parquet":
		// Names and sizes only: Parquet is read by row group (dataset.NewParquet),
		// not by line.
		return &Parser{Format: dataset.ParquetLayout(f.Numeric, f.Categorical, f.HashBits), numeric: len(f.Numeric), log1p: f.Log1p}, nil
	}
	return nil, fmt.Errorf("unknown format %q (want libsvm, criteo, csv, jsonl, parquet or ratings)", f.Name)
}

// NumericSlots is the number of leading numeric slots of a CSV format (0 otherwise).
func (p *Parser) NumericSlots() int { return p.numeric }

// Post applies what the format leaves to the caller: CSV's log1p, as
// sign(x)·log(1+|x|) on the numeric slots (Criteo's parser applies its own).
func (p *Parser) Post(r *dataset.Row) {
	if !p.log1p || p.numeric == 0 {
		return
	}
	for k, i := range r.Indices {
		if int(i) >= p.numeric {
			break
		}
		x := float64(r.Values[k])
		r.Values[k] = float32(math.Copysign(math.Log1p(math.Abs(x)), x))
	}
}
