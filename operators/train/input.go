package train

import (
	"context"
	"fmt"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset/manifest"
)

// Data is what a training run needs of its input.
type Data struct {
	Train, Test []PartRef
	// Validation, when present, is what stopping rules and rankings use; the test
	// set is then only reported.
	Validation []PartRef
	// Features is the size of the feature space; the model has Features+1
	// coordinates, the last being the intercept.
	Features            int
	TrainRows, TestRows int64
	// TrainNNZ is the training set's stored entries, for the solver's memory estimate.
	TrainNNZ int64
	// TrainManifest and TestManifest are the manifests' URIs, for lineage.
	TrainManifest, TestManifest, ValidationManifest string
	// Format and Normalization say how raw input becomes features; the model
	// artifact records them so predict applies the same transformation.
	Format        manifest.Format
	Normalization *manifest.Normalization
	// NormalizationStore is the root of the store Normalization's keys are in.
	NormalizationStore string
	// Labels, TestLabels and ValidationLabels are the sets' label statistics
	// (nil for binary sets written before they were recorded).
	Labels, TestLabels, ValidationLabels *manifest.Labels
	// Classes are softmax's classes, set by Run (checkLabels).
	Classes []float64
}

// ReadInput reads the datasets a train stage's input names: any value with a train
// dataset (and usually a test dataset) — a load or normalize stage, or a module
// output that passes one on.
func ReadInput(ctx context.Context, st blob.Store, input cty.Value) (*Data, error) {
	uri := func(name string) (string, error) {
		if !input.Type().IsObjectType() || !input.Type().HasAttribute(name) {
			return "", fmt.Errorf("input must be a stage with train and test datasets, such as normalize.adult or load.adult")
		}
		ds := input.GetAttr(name)
		if ds.IsNull() {
			return "", nil
		}
		if !ds.Type().IsObjectType() || !ds.Type().HasAttribute("manifest") {
			return "", fmt.Errorf("input.%s is not a dataset (it has no manifest)", name)
		}
		return ds.GetAttr("manifest").AsString(), nil
	}
	trainURI, err := uri(manifest.Train)
	if err != nil {
		return nil, err
	}
	if trainURI == "" {
		return nil, fmt.Errorf("input has no train dataset")
	}
	tm, err := manifest.Open(ctx, st, trainURI)
	if err != nil {
		return nil, fmt.Errorf("read training set: %w", err)
	}
	d := &Data{Features: tm.Features, TrainRows: tm.Rows, TrainNNZ: tm.NNZ, TrainManifest: trainURI, Format: tm.Format, Normalization: tm.Normalization, NormalizationStore: tm.Store, Labels: tm.Labels}
	for _, p := range tm.Partitions {
		d.Train = append(d.Train, PartRef{Key: p.Key, Rows: p.Rows})
	}
	if input.Type().HasAttribute(manifest.Test) {
		testURI, err := uri(manifest.Test)
		if err != nil {
			return nil, err
		}
		if testURI != "" {
			m, err := manifest.Open(ctx, st, testURI)
			if err != nil {
				return nil, fmt.Errorf("read test set: %w", err)
			}
			d.TestManifest, d.TestRows, d.TestLabels = testURI, m.Rows, m.Labels
			d.Features = max(d.Features, m.Features)
			for _, p := range m.Partitions {
				d.Test = append(d.Test, PartRef{Key: p.Key, Rows: p.Rows})
			}
		}
	}
	if input.Type().HasAttribute(manifest.Validation) && !input.GetAttr(manifest.Validation).IsNull() {
		valURI, err := uri(manifest.Validation)
		if err != nil {
			return nil, err
		}
		m, err := manifest.Open(ctx, st, valURI)
		if err != nil {
			return nil, fmt.Errorf("read validation set: %w", err)
		}
		d.ValidationManifest, d.ValidationLabels = valURI, m.Labels
		d.Features = max(d.Features, m.Features)
		for _, p := range m.Partitions {
			d.Validation = append(d.Validation, PartRef{Key: p.Key, Rows: p.Rows})
		}
	}
	if tm.Rows == 0 {
		return nil, fmt.Errorf("the training set %s has no rows", trainURI)
	}
	if d.Features == 0 {
		return nil, fmt.Errorf("the training set %s has no features", trainURI)
	}
	return d, nil
}

// InputInfo is how a model's input was made: what predict needs to read new data
// the same way, and the lineage of the datasets it was trained on.
type InputInfo struct {
	Format        manifest.Format         `json:"format"`
	Normalization *manifest.Normalization `json:"normalization,omitempty"`
	// Store is the blob store root that Normalization's keys are relative to.
	Store         string `json:"store,omitempty"`
	TrainManifest string `json:"train_manifest"`
	TestManifest  string `json:"test_manifest,omitempty"`
}

func (d *Data) info() InputInfo {
	return InputInfo{Format: d.Format, Normalization: d.Normalization, Store: d.NormalizationStore, TrainManifest: d.TrainManifest, TestManifest: d.TestManifest}
}
