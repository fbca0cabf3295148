package train

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/operators"
)

// checkMF is the schema's check of matrix factorization's arguments.
func checkMF(cfg cty.Value) []operators.Problem {
	m, r := cfg.GetAttr("model"), cfg.GetAttr("rank")
	if !m.IsKnown() || m.IsNull() {
		return nil
	}
	mf := m.AsString() == "matrix_factorization"
	if !mf && !r.IsNull() {
		return []operators.Problem{{Attr: "rank", Summary: "Argument applies only to matrix_factorization",
			Detail: "rank is the factor rank of model = \"matrix_factorization\": remove it, or train that model."}}
	}
	if mf && !cfg.GetAttr("target_logloss").IsNull() {
		return []operators.Problem{{Attr: "target_logloss", Summary: "Argument does not apply to matrix_factorization",
			Detail: "A matrix factorization predicts ratings and has no log loss: remove target_logloss; training stops when the held-out RMSE converges (epsilon) or after epochs."}}
	}
	solver := ""
	if v := cfg.GetAttr("solver"); v.IsKnown() && !v.IsNull() {
		solver = v.AsString()
	}
	if mf && solver == "lbfgs" {
		return []operators.Problem{{Attr: "solver", Summary: "Solver does not apply to matrix_factorization",
			Detail: "A matrix factorization trains with alternating least squares or asynchronous SGD: use solver = \"auto\", \"als\" or \"sgd\"."}}
	}
	if !mf && solver == "als" {
		return []operators.Problem{{Attr: "solver", Summary: "Solver applies only to matrix_factorization",
			Detail: "Alternating least squares trains a matrix factorization: use solver = \"auto\", \"lbfgs\" or \"sgd\", or train model = \"matrix_factorization\"."}}
	}
	return nil
}

// predictMF writes, for each user,item line of r (any further fields, such
// as a rating or a timestamp, are ignored; separators as for load's ratings
// format), the model's rating μ + b_u + b_i + ⟨p_u, q_i⟩. A user or item the
// training set did not rate contributes nothing: the rating of an unknown
// user is μ + b_i, of an unknown item μ + b_u, of both μ.
func (p *Predictor) predictMF(ctx context.Context, r io.Reader, w io.Writer, object string) (int64, error) {
	rt, err := dataset.NewRatings(p.format.HashBits)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", object, err)
	}
	rt.Pairs = true
	sc := dataset.NewScanner(bufio.NewReaderSize(r, 1<<20), rt, dataset.ScanOptions{Object: object})
	bw := bufio.NewWriterSize(w, 1<<16)
	var row dataset.Row
	var n int64
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
		u, i, _ := dataset.RatingPair(row.Indices)
		buf = strconv.AppendFloat(buf[:0], p.art.MF.predict(p.w, u, i), 'g', 6, 64)
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return n, err
		}
		n++
	}
	return n, bw.Flush()
}
