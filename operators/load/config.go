package load

import (
	"fmt"
	"math"
	"math/big"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/dataset"
)

// config is a load block's evaluated configuration.
type config struct {
	Source     string
	TestSource string // "" when absent
	// ValidationSource is held-out data for stopping rules and rankings.
	ValidationSource string
	Format           string
	HashBits         int // 0 for libsvm
	Split            *splitSpec
	OnError          string
	Label            string
	Categorical      []string // nil: infer (csv)
	CategoricalSet   bool
	Ignore           []string
	Log1p            bool
	Delimiter        string // csv: "" for a comma
	NoHeader         bool   // csv: header = false
	PartitionBytes   int
	Tasks            int // 0: sized from the input
}

// splitSpec is the split argument, as tasks receive it.
type splitSpec struct {
	Test       float64 `json:"test"`
	Validation float64 `json:"validation,omitempty"`
	Seed       int64   `json:"seed"`
}

func decodeConfig(v cty.Value) (*config, error) {
	c := &config{
		Source:           str(v, "source"),
		TestSource:       str(v, "test_source"),
		ValidationSource: str(v, "validation_source"),
		Format:           str(v, "format"),
		OnError:          str(v, "on_error"),
		Label:            str(v, "label"),
		Log1p:            v.GetAttr("log1p").True(),
		Delimiter:        str(v, "delimiter"),
		PartitionBytes:   integer(v.GetAttr("partition_bytes")),
		Tasks:            integer(v.GetAttr("tasks")),
	}
	c.HashBits = integer(v.GetAttr("hash_bits"))
	if c.HashBits == 0 && c.Format != "libsvm" {
		c.HashBits = dataset.DefaultHashBits // libsvm: 0, indices used as they are
	}
	if h := v.GetAttr("header"); !h.IsNull() && h.False() {
		c.NoHeader = true
	}
	if c.Delimiter == "," {
		c.Delimiter = ""
	}
	if sp := v.GetAttr("split"); !sp.IsNull() {
		s := &splitSpec{}
		if t := sp.GetAttr("test"); !t.IsNull() {
			s.Test = number(t)
		}
		if t := sp.GetAttr("validation"); !t.IsNull() {
			s.Validation = number(t)
		}
		if seed := sp.GetAttr("seed"); !seed.IsNull() {
			f := number(seed)
			if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
				return nil, fmt.Errorf("split.seed must be a whole number, got %g", f)
			}
			s.Seed = int64(f)
		}
		c.Split = s
	}
	if cat := v.GetAttr("categorical"); !cat.IsNull() {
		c.CategoricalSet = true
		c.Categorical = stringList(cat)
	}
	if ig := v.GetAttr("ignore"); !ig.IsNull() {
		c.Ignore = stringList(ig)
	}
	return c, nil
}

func str(v cty.Value, name string) string {
	a := v.GetAttr(name)
	if a.IsNull() {
		return ""
	}
	return a.AsString()
}

func integer(v cty.Value) int {
	if v.IsNull() {
		return 0
	}
	i, acc := v.AsBigFloat().Int64()
	if acc != big.Exact {
		f, _ := v.AsBigFloat().Float64()
		return int(math.Round(f))
	}
	return int(i)
}

func number(v cty.Value) float64 {
	f, _ := v.AsBigFloat().Float64()
	return f
}

func stringList(v cty.Value) []string {
	out := []string{}
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if !e.IsNull() {
			out = append(out, e.AsString())
		}
	}
	return out
}
