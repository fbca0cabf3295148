package train

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path"
	"time"

	"github.com/stratus-ml/stratus/blob"
)

// ModelFormat is the format of model artifacts this build writes and reads.
const ModelFormat = "stratus-model/1"

// Artifact is a trained model's metadata, stored as model.json beside its weights.
type Artifact struct {
	Format string `json:"format"`
	Model  string `json:"model"` // logistic_regression
	// Dim is the number of coordinates; the last (Intercept) is the bias.
	Dim       uint64 `json:"dim"`
	Features  int    `json:"features"`
	Intercept uint64 `json:"intercept_index"`
	// Classes are softmax's classes, the labels as the input spelled them, in
	// class order; its weights are feature-major (coordinate j·K + k is feature
	// j's weight for class k, j = Features the intercepts; see softmax.go).
	Classes []float64 `json:"classes,omitempty"`
	// Weights is the key of the weights — Dim little-endian float32s — relative to
	// the directory of model.json.
	Weights string    `json:"weights"`
	Input   InputInfo `json:"input"`
	Metrics Metrics   `json:"metrics"`
	// Validation is the metrics on the validation set, when there was one.
	Validation *Metrics `json:"validation_metrics,omitempty"`
	// MF is a matrix factorization's rank, mean and metrics (mf.go).
	MF *MFModel `json:"matrix_factorization,omitempty"`
	// Solver is the solver that trained the model: sgd, lbfgs or newton.
	Solver string `json:"solver,omitempty"`
	// Training figures and lineage.
	Iterations        int64     `json:"iterations"`
	ExamplesPerSecond float64   `json:"examples_per_second"`
	Stage             string    `json:"stage"`
	CacheKey          string    `json:"cache_key"`
	Trial             string    `json:"trial,omitempty"`
	Config            Config    `json:"config"`
	Stopped           string    `json:"stopped"` // why training ended
	Created           time.Time `json:"created"`
}

// writeArtifact stores the weights and model.json under dir (a key prefix ending in
// "/") and returns the URI of model.json.
func writeArtifact(ctx context.Context, st blob.Store, dir string, a *Artifact, w []float32) (string, error) {
	buf := make([]byte, 4*len(w))
	for i, x := range w {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
	}
	a.Format, a.Weights, a.Dim = ModelFormat, "weights.f32", uint64(len(w))
	if err := st.Put(ctx, dir+a.Weights, bytes.NewReader(buf)); err != nil {
		return "", fmt.Errorf("write model weights: %w", err)
	}
	meta, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return "", err
	}
	if err := st.Put(ctx, dir+"model.json", bytes.NewReader(meta)); err != nil {
		return "", fmt.Errorf("write model: %w", err)
	}
	return st.URI(dir + "model.json"), nil
}

// ReadArtifact reads model.json at key in st, and its weights.
func ReadArtifact(ctx context.Context, st blob.Store, key string) (*Artifact, []float32, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, nil, fmt.Errorf("read model: %w", err)
	}
	var a Artifact
	err = json.NewDecoder(rc).Decode(&a)
	rc.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("read model %s: not a model artifact: %w", st.URI(key), err)
	}
	if a.Format != ModelFormat {
		return nil, nil, fmt.Errorf("model %s has format %q; this build reads %q", st.URI(key), a.Format, ModelFormat)
	}
	wk := path.Join(path.Dir(key), a.Weights)
	rc, err = st.Get(ctx, wk)
	if err != nil {
		return nil, nil, fmt.Errorf("read model weights: %w", err)
	}
	defer rc.Close()
	buf, err := io.ReadAll(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("read model weights %s: %w", st.URI(wk), err)
	}
	if uint64(len(buf)) != 4*a.Dim {
		return nil, nil, fmt.Errorf("model weights %s hold %d bytes; the model has %d coordinates", st.URI(wk), len(buf), a.Dim)
	}
	w := make([]float32, a.Dim)
	for i := range w {
		w[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
	}
	return &a, w, nil
}
