package load

import (
	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/manifest"
)

// formatSpec is everything a task needs to build its parser; the coordinator
// fills it (reading the CSV header and inferring categorical columns once).
type formatSpec struct {
	Name        string   `json:"name"`
	HashBits    int      `json:"hash_bits,omitempty"`
	Log1p       bool     `json:"log1p,omitempty"`
	Header      string   `json:"header,omitempty"` // csv: the header line
	Label       string   `json:"label,omitempty"`
	Categorical []string `json:"categorical,omitempty"`
	Ignore      []string `json:"ignore,omitempty"`
	Numeric     []string `json:"numeric,omitempty"`   // jsonl: the numeric keys, slot i for the i-th
	Delimiter   string   `json:"delimiter,omitempty"` // csv: "" for a comma
	// NoHeader: csv files without a header line, whose Columns are named
	// by position.
	NoHeader bool     `json:"no_header,omitempty"`
	Columns  []string `json:"columns,omitempty"`
}

// parser reads the format and applies what the format leaves to its caller (CSV's
// log1p): the same parser predict uses to read new data as training data was read.
type parser = manifest.Parser

// build returns a new parser (one per goroutine: parsers keep scratch space).
func (f *formatSpec) build() (*parser, error) {
	mf := manifest.Format{Name: f.Name, HashBits: f.HashBits, Log1p: f.Log1p, Label: f.Label,
		Categorical: f.Categorical, Ignore: f.Ignore, Delimiter: f.Delimiter, NoHeader: f.NoHeader, Columns: f.Columns, Numeric: f.Numeric}
	if f.Name == "libsvm" {
		mf.HashBits, mf.IndexHashBits = 0, f.HashBits
	}
	return mf.NewParser([]byte(f.Header))
}

// describe returns the manifest's record of the format.
func (f *formatSpec) describe(p *parser) manifest.Format {
	mf := manifest.Format{Name: f.Name, Log1p: f.Log1p}
	switch c := p.Format.(type) {
	case *dataset.LIBSVM:
		if f.HashBits > 0 {
			mf.IndexHashBits, mf.Hash = f.HashBits, manifest.IndexHashName
		}
	case *dataset.Criteo:
		mf.HashBits, mf.HashOffset, mf.Hash = f.HashBits, dataset.CriteoIntColumns, manifest.HashName
	case *dataset.CSV:
		mf.HashBits, mf.HashOffset, mf.Hash = f.HashBits, p.NumericSlots(), manifest.HashName
		mf.Label = f.Label
		mf.Columns = c.Columns()
		mf.Numeric = c.NumericColumns()
		mf.Categorical = f.Categorical
		mf.Ignore = f.Ignore
		mf.Delimiter, mf.NoHeader = f.Delimiter, f.NoHeader
	case *dataset.Parquet:
		mf.HashBits, mf.HashOffset, mf.Hash = f.HashBits, len(f.Numeric), manifest.HashName
		mf.Label, mf.Columns, mf.Numeric, mf.Categorical, mf.Ignore = f.Label, f.Columns, f.Numeric, f.Categorical, f.Ignore
	case *dataset.Ratings:
		mf.HashBits, mf.Hash = c.HashBits(), manifest.HashName
	case *dataset.JSONL:
		mf.HashBits, mf.HashOffset, mf.Hash = f.HashBits, len(f.Numeric), manifest.HashName
		mf.Label, mf.Numeric, mf.Categorical, mf.Ignore = f.Label, f.Numeric, f.Categorical, f.Ignore
	}
	return mf
}
