package operators

import "github.com/zclconf/go-cty/cty"

// DatasetType is the value of a dataset output (load.x.train, normalize.x.test): the
// blob URI of its manifest and the figures a downstream stage or output most often
// needs without reading the manifest.
var DatasetType = cty.Object(map[string]cty.Type{
	"manifest":   cty.String,
	"rows":       cty.Number,
	"features":   cty.Number,
	"partitions": cty.Number,
})

// MetricsType is the value of a trained model's metrics.
var MetricsType = cty.Object(map[string]cty.Type{
	"test_logloss":        cty.Number,
	"accuracy":            cty.Number,
	"auc":                 cty.Number,
	"iterations":          cty.Number,
	"examples_per_second": cty.Number,
})
