package load

import (
	"fmt"
	"math"

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
}

// parser is a format plus the per-row work the format does not do itself.
type parser struct {
	dataset.Format
	// numeric is the number of leading numeric slots CSV's log1p applies to.
	numeric int
	log1p   bool
}

// build returns a new parser (one per goroutine: parsers keep scratch space).
func (f *formatSpec) build() (*parser, error) {
	switch f.Name {
	case "libsvm":
		return &parser{Format: dataset.NewLIBSVM()}, nil
	case "criteo":
		c, err := dataset.NewCriteo(dataset.CriteoOptions{HashBits: f.HashBits, Log1p: f.Log1p})
		if err != nil {
			return nil, err
		}
		return &parser{Format: c}, nil
	case "csv":
		c, err := dataset.NewCSV([]byte(f.Header), dataset.CSVOptions{Label: f.Label, Categorical: f.Categorical, Ignore: f.Ignore, HashBits: f.HashBits})
		if err != nil {
			return nil, err
		}
		return &parser{Format: c, numeric: len(c.NumericColumns()), log1p: f.Log1p}, nil
	}
	return nil, fmt.Errorf("unknown format %q (want libsvm, criteo or csv)", f.Name)
}

// post applies what the format leaves to the caller: CSV's log1p, as
// sign(x)·log(1+|x|) on the numeric slots (Criteo's parser applies its own,
// log(1+max(x,0)), itself).
func (p *parser) post(r *dataset.Row) {
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

// describe returns the manifest's record of the format.
func (f *formatSpec) describe(p *parser) manifest.Format {
	mf := manifest.Format{Name: f.Name, Log1p: f.Log1p}
	switch c := p.Format.(type) {
	case *dataset.Criteo:
		mf.HashBits, mf.HashOffset, mf.Hash = f.HashBits, dataset.CriteoIntColumns, manifest.HashName
	case *dataset.CSV:
		mf.HashBits, mf.HashOffset, mf.Hash = f.HashBits, p.numeric, manifest.HashName
		mf.Label = f.Label
		mf.Columns = c.Columns()
		mf.Numeric = c.NumericColumns()
		mf.Categorical = f.Categorical
		mf.Ignore = f.Ignore
	}
	return mf
}
