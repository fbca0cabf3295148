package normalize

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/manifest"
	"github.com/stratus-ml/stratus/dataset/partition"
	"github.com/stratus-ml/stratus/operators"
)

// KindScale is the task kind that rescales a run of partitions.
const KindScale = "normalize.scale"

// scaleParams are a scale task's parameters: partitions [From, To) of the
// manifest at key Manifest, transformed with the parameters at key Params.
type scaleParams struct {
	Dataset  string `json:"dataset"`
	Manifest string `json:"manifest"`
	From     int    `json:"from"`
	To       int    `json:"to"`
	Params   string `json:"params"`
}

// scale is the normalize.scale handler. It reads each partition (checking
// its checksum), transforms every row and writes new partitions, with their
// statistics, under the task's output prefix. Its result is a
// manifest.Piece.
func scale(ctx context.Context, env operators.Env, t *operators.Task) (*operators.Result, error) {
	var p scaleParams
	if err := t.DecodeParams(&p); err != nil {
		return nil, err
	}
	run, err := env.Blob(ctx)
	if err != nil {
		return nil, err
	}
	m, err := manifest.Read(ctx, run, p.Manifest)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", t.Name(), err)
	}
	if p.From < 0 || p.To > len(m.Partitions) || p.From > p.To {
		return nil, fmt.Errorf("task %s: partitions [%d, %d) of %d", t.Name(), p.From, p.To, len(m.Partitions))
	}
	params, err := manifest.ReadAffine(ctx, run, p.Params)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", t.Name(), err)
	}
	tr := manifest.NewTransformer(params)
	prefix := t.OutputPrefix + p.Dataset + "/"
	b := manifest.NewBuilder(ctx, run, prefix, m.PartitionBytes)
	defer b.Abort()
	var row dataset.Row
	for k := p.From; k < p.To; k++ {
		pt, err := partition.Read(ctx, run, m.Partitions[k].Key)
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", t.Name(), err)
		}
		if pt.Rows() != m.Partitions[k].Rows || pt.NNZ() != m.Partitions[k].NNZ {
			return nil, fmt.Errorf("task %s: partition %s holds %d rows and %d entries, the manifest says %d and %d: rerun the stage that wrote it",
				t.Name(), run.URI(m.Partitions[k].Key), pt.Rows(), pt.NNZ(), m.Partitions[k].Rows, m.Partitions[k].NNZ)
		}
		for i := 0; i < pt.Rows(); i++ {
			label, idx, val := pt.Row(i)
			if err := tr.Transform(&row, label, idx, val); err != nil {
				return nil, fmt.Errorf("task %s: partition %s row %d: %w", t.Name(), run.URI(m.Partitions[k].Key), i, err)
			}
			if err := b.Add(&row); err != nil {
				return nil, fmt.Errorf("task %s: %w", t.Name(), err)
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		env.Progress(int64(k-p.From+1), int64(p.To-p.From))
	}
	piece, err := b.Close()
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", t.Name(), err)
	}
	if err := piece.Save(ctx, run, prefix); err != nil {
		return nil, fmt.Errorf("task %s: %w", t.Name(), err)
	}
	out, err := json.Marshal(piece)
	if err != nil {
		return nil, err
	}
	return &operators.Result{Output: out, Metrics: map[string]float64{"rows": float64(piece.Rows)}}, nil
}
