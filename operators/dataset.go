package operators

import (
	"context"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset/manifest"
)

// Every stage that produces a dataset (load, normalize) writes it the same way, so
// a downstream stage reads any of them alike.

// DatasetValue is the DatasetType value of a manifest stored at
// uri.
func DatasetValue(m *manifest.Manifest, uri string) cty.Value {
	return cty.ObjectVal(map[string]cty.Value{
		"manifest":   cty.StringVal(uri),
		"rows":       cty.NumberIntVal(m.Rows),
		"features":   cty.NumberIntVal(int64(m.Features)),
		"partitions": cty.NumberIntVal(int64(len(m.Partitions))),
	})
}

// WriteDataset stores a stage's dataset — its statistics (when it has rows), then
// its manifest, under stages/<stageKey>/ — and returns its output value.
func WriteDataset(ctx context.Context, run blob.Store, stageKey string, m *manifest.Manifest, st *manifest.Stats) (cty.Value, error) {
	if m.Rows > 0 {
		if err := m.PutStats(ctx, run, manifest.Key(stageKey, m.Dataset+".stats"), st); err != nil {
			return cty.NilVal, err
		}
	}
	uri, err := manifest.Write(ctx, run, manifest.Key(stageKey, m.Dataset+".json"), m)
	if err != nil {
		return cty.NilVal, err
	}
	return DatasetValue(m, uri), nil
}
