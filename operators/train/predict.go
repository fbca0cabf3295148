package train

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/manifest"
)

// Predictor scores raw data with a trained model, reading it exactly as the model's
// training data was read: the same format and hashing, then the same normalization.
type Predictor struct {
	art    *Artifact
	w      []float32
	format manifest.Format
	tr     *manifest.Transformer
}

// NewPredictor prepares a model for scoring. openStore opens the store that holds
// the model's normalization parameters (Artifact.Input.Store).
func NewPredictor(ctx context.Context, art *Artifact, w []float32, openStore func(ctx context.Context, uri string) (blob.Store, error)) (*Predictor, error) {
	p := &Predictor{art: art, w: w, format: art.Input.Format}
	if n := art.Input.Normalization; n != nil {
		st, err := openStore(ctx, art.Input.Store)
		if err != nil {
			return nil, fmt.Errorf("open the store with the model's normalization: %w", err)
		}
		m := &manifest.Manifest{Normalization: n}
		params, err := m.ReadParams(ctx, st)
		if err != nil {
			return nil, fmt.Errorf("read the model's normalization parameters: %w", err)
		}
		p.tr = manifest.NewTransformer(params)
	}
	return p, nil
}

// Scores names what Predict writes, for messages: "probabilities", "margins",
// "predictions" or "classes".
func (p *Predictor) Scores() string {
	switch p.art.Model {
	case "linear_svm":
		return "margins"
	case "linear_regression":
		return "predictions"
	case "softmax":
		return "classes"
	}
	return "probabilities"
}

// Format is the input format the model expects.
func (p *Predictor) Format() manifest.Format { return p.format }

// Predict reads rows from r (named object in errors) and writes one score per row
// to w, in order: the probability of the positive class (logistic_regression) or
// the margin w·x + b, positive class when ≥ 0 (linear_svm), or the predicted
// value w·x + b (linear_regression), or the predicted class (as the training
// labels spelled it) followed by each class's probability in class order
// (softmax). Lines that carry no row (comments,
// blanks, a CSV header) produce no output. It returns the number of rows scored. A
// malformed line stops it with an error naming the line.
func (p *Predictor) Predict(ctx context.Context, r io.Reader, w io.Writer, object string) (int64, error) {
	if p.art.MF != nil {
		return p.predictMF(ctx, r, w, object)
	}
	br := bufio.NewReaderSize(r, 1<<20)
	var header []byte
	if p.format.Name == "csv" && !p.format.NoHeader { // a CSV file without a header line starts with a row
		h, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("read %s: %w", object, err)
		}
		header = h
	}
	parser, err := p.format.NewParser(trimEOL(header))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", object, err)
	}
	firstLine := int64(1)
	if header != nil {
		firstLine = 2
	}
	sc := dataset.NewScanner(br, parser, dataset.ScanOptions{Object: object, FirstLine: firstLine})
	bw := bufio.NewWriterSize(w, 1<<16)
	var row, scaled dataset.Row
	var n int64
	dim := uint32(len(p.w))
	bias := float64(p.w[dim-1])
	buf := make([]byte, 0, 32)
	for {
		if n%4096 == 0 && ctx.Err() != nil {
			return n, ctx.Err()
		}
		err := sc.Next(&row)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, err
		}
		parser.Post(&row)
		idx, vals := row.Indices, row.Values
		if p.tr != nil {
			if err := p.tr.Transform(&scaled, row.Label, row.Indices, row.Values); err != nil {
				return n, fmt.Errorf("%s row %d: %w", object, n+1, err)
			}
			idx, vals = scaled.Indices, scaled.Values
		}
		if k := len(p.art.Classes); p.art.Model == "softmax" && k > 0 {
			buf = p.softmaxLine(buf[:0], idx, vals, k)
			if _, err := bw.Write(buf); err != nil {
				return n, err
			}
			n++
			continue
		}
		z := bias
		for k, f := range idx {
			if f >= dim-1 {
				f %= dim - 1
			}
			v := 1.0
			if vals != nil {
				v = float64(vals[k])
			}
			z += float64(p.w[f]) * v
		}
		score := sigmoid(z)
		if p.art.Model == "linear_svm" || p.art.Model == "linear_regression" {
			score = z // a margin (positive class when ≥ 0), or the predicted value
		}
		buf = strconv.AppendFloat(buf[:0], score, 'g', 6, 64)
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return n, err
		}
		n++
	}
	return n, bw.Flush()
}

// softmaxLine appends the predicted class of a row (the label as the training
// data spelled it) and each class's probability, space-separated, and a newline.
func (p *Predictor) softmaxLine(buf []byte, idx []uint32, vals []float32, k int) []byte {
	d := uint32(len(p.w) / k)
	z := make([]float64, k)
	for c := range z {
		z[c] = float64(p.w[int(d-1)*k+c])
	}
	for e, f := range idx {
		f = fold(f, d)
		v := 1.0
		if vals != nil {
			v = float64(vals[e])
		}
		for c := range z {
			z[c] += float64(p.w[int(f)*k+c]) * v
		}
	}
	best := argmax(z)
	softmaxProbs(z)
	buf = strconv.AppendFloat(buf, p.art.Classes[best], 'g', -1, 64)
	for _, q := range z {
		buf = append(buf, ' ')
		buf = strconv.AppendFloat(buf, q, 'g', 6, 64)
	}
	return append(buf, '\n')
}

func trimEOL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
