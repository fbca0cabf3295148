package load

import (
	"fmt"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/operators"
)

// Schema is the `load` block.
var Schema = &operators.Schema{
	Name:    "load",
	Version: 2, // 2: validation sets
	Doc:     "Parses a dataset into partitions in the blob store, with row counts and per-feature statistics.",
	Attrs: []operators.Attr{
		{Name: "source", Type: cty.String, Required: true, Path: true,
			Doc: "Training data: a path or glob relative to the pipeline directory, or an s3:// URI."},
		{Name: "test_source", Type: cty.String, Path: true,
			Doc: "Held-out test data, in the same format; or use split."},
		{Name: "validation_source", Type: cty.String, Path: true,
			Doc: "Held-out validation data, in the same format, that training stops on and grid_search ranks by; or use split."},
		{Name: "format", Type: cty.String, Default: cty.StringVal("libsvm"), Enum: []string{"libsvm", "criteo", "csv", "jsonl", "parquet", "ratings"},
			Doc: "Input format: libsvm, criteo (TSV), csv, jsonl (JSON lines: one object per line), parquet (a file, or a directory or s3:// prefix of files; read by row group) or ratings (user,item,rating[,timestamp] lines for matrix_factorization, separated by a comma, a tab or \"::\"). gzip, zstd and bzip2 compression of text formats is found by content and undone."},
		{Name: "hash_bits", Type: cty.Number, Integer: true, Min: operators.Float(1), Max: operators.Float(30),
			Doc: "Hash categorical and string features into 2^hash_bits slots (criteo, csv and jsonl default to 20). For libsvm, hash the feature indices into 2^hash_bits slots (as Vowpal Wabbit's -b); without it indices are used as they are. For ratings, the bound of user and item ids (default 20): a numeric id below 2^hash_bits is used as it is, any other is hashed."},
		{Name: "split", Type: cty.ObjectWithOptionalAttrs(map[string]cty.Type{"test": cty.Number, "validation": cty.Number, "seed": cty.Number}, []string{"test", "validation", "seed"}),
			Doc: "Hold out deterministic hash-selected fractions of source as the test and validation sets: { test = 0.1, validation = 0.1, seed = 1 }.",
			Check: func(v cty.Value) error {
				sum, given := 0.0, 0
				for _, name := range []string{"test", "validation"} {
					t := v.GetAttr(name)
					if !t.IsKnown() || t.IsNull() {
						continue
					}
					f, _ := t.AsBigFloat().Float64()
					if f <= 0 || f >= 1 {
						return fmt.Errorf("split.%s must be a fraction between 0 and 1 (exclusive), got %g", name, f)
					}
					sum += f
					given++
				}
				if given == 0 && v.GetAttr("test").IsKnown() && v.GetAttr("validation").IsKnown() {
					return fmt.Errorf("split needs test, validation or both, such as { test = 0.1, validation = 0.1 }")
				}
				if sum >= 1 {
					return fmt.Errorf("split.test and split.validation add up to %g, leaving no training rows; together they must stay below 1", sum)
				}
				if sd := v.GetAttr("seed"); sd.IsKnown() && !sd.IsNull() && !sd.AsBigFloat().IsInt() {
					return fmt.Errorf("split.seed must be a whole number; got %s", sd.AsBigFloat().Text('g', -1))
				}
				return nil
			}},
		{Name: "on_error", Type: cty.String, Default: cty.StringVal("fail"), Enum: []string{"fail", "skip"},
			Doc: "What a malformed line does: fail the stage, or skip it and count it."},
		{Name: "label", Type: cty.String, Default: cty.StringVal("label"),
			Doc: "CSV, JSON lines and Parquet: the name of the label column (key); with header = false, its position."},
		{Name: "categorical", Type: cty.List(cty.String),
			Doc: "CSV, JSON lines and Parquet: the columns (keys) to hash; by default, for csv and jsonl the columns holding a non-numeric value in the first MiB of the first file, for parquet the string columns."},
		{Name: "ignore", Type: cty.List(cty.String),
			Doc: "CSV, JSON lines and Parquet: columns (keys) to leave out (ids, free text, nested values)."},
		{Name: "delimiter", Type: cty.String,
			Doc: "CSV only: the field delimiter, one character (default \",\"; delimiter = \"\\t\" for TSV).",
			Check: func(v cty.Value) error {
				if v.IsKnown() && !v.IsNull() {
					d := v.AsString()
					if len(d) != 1 || d == "\"" || d == "\n" || d == "\r" || d == " " {
						return fmt.Errorf("delimiter must be one character other than a quote, a space or a line end, got %q", d)
					}
				}
				return nil
			}},
		{Name: "header", Type: cty.Bool,
			Doc: "CSV only: whether each file starts with a header line naming its columns (default true). Without one, columns are named by position: label = 0 for the first."},
		{Name: "log1p", Type: cty.Bool, Default: cty.False,
			Doc: "Criteo, CSV, JSON lines and Parquet: transform numeric columns with log(1+x)."},
		{Name: "partition_bytes", Type: cty.Number, Integer: true, Default: cty.NumberIntVal(4 << 20), Min: operators.Float(4096),
			Doc: "Target size of one partition in bytes."},
		{Name: "tasks", Type: cty.Number, Integer: true, Min: operators.Float(1), Max: operators.Float(100000),
			Doc: "Number of parse tasks for each of source and test_source; by default one per 32 MiB or so, more on a large backend (see the package documentation)."},
	},
	Outputs: map[string]cty.Type{
		"train":      operators.DatasetType,
		"test":       operators.DatasetType,
		"validation": operators.DatasetType,
		"rows":       cty.Number,
		"features":   cty.Number,
	},
	Check: func(cfg cty.Value) []operators.Problem {
		var ps []operators.Problem
		if sp := cfg.GetAttr("split"); sp.IsKnown() && !sp.IsNull() {
			for _, side := range []string{"test", "validation"} {
				if !cfg.GetAttr(side+"_source").IsNull() && sp.GetAttr(side).IsKnown() && !sp.GetAttr(side).IsNull() {
					ps = append(ps, operators.Problem{Attr: "split", Summary: "Conflicting " + side + " set",
						Detail: fmt.Sprintf("Set either %s_source or split.%s, not both.", side, side)})
				}
			}
		}
		format := cfg.GetAttr("format")
		if !format.IsKnown() || format.IsNull() {
			return ps
		}
		f := format.AsString()
		only := func(attr, formats, why string) {
			if v := cfg.GetAttr(attr); v.IsKnown() && !v.IsNull() && !(v.Type() == cty.Bool && v.False()) {
				ps = append(ps, operators.Problem{Attr: attr, Summary: "Argument does not apply to format " + f,
					Detail: fmt.Sprintf("%s applies to format %s only: %s. Remove it, or change format.", attr, formats, why)})
			}
		}
		if f == "libsvm" {
			only("log1p", "criteo or csv", "LIBSVM has no integer columns")
		}
		if f != "csv" && f != "jsonl" && f != "parquet" {
			only("categorical", "csv, jsonl or parquet", "other formats have fixed columns")
			only("ignore", "csv, jsonl or parquet", "other formats have fixed columns")
		}
		if f != "csv" {
			only("delimiter", "csv", "other formats have fixed separators")
			if v := cfg.GetAttr("header"); v.IsKnown() && !v.IsNull() {
				ps = append(ps, operators.Problem{Attr: "header", Summary: "Argument does not apply to format " + f,
					Detail: "header applies to format csv only: other formats have no header line. Remove it, or change format."})
			}
		}
		return ps
	},
}
