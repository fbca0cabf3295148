package normalize

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/stratus-ml/stratus/blob"

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
	// Reduce, when set, merges the task's statistics into psstore (they
	// are still saved beside its partitions, the durable copy).
	Reduce *operators.StatsReduce `json:"reduce,omitempty"`
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
	tr, err := transformers.get(ctx, run, p.Params)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", t.Name(), err)
	}
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
	if p.Reduce != nil {
		if piece.StatsBlocks, err = operators.MergeStats(ctx, env, p.Reduce, p.Dataset, piece.Stats); err != nil {
			return nil, fmt.Errorf("task %s: %w", t.Name(), err)
		}
	}
	out, err := json.Marshal(piece)
	if err != nil {
		return nil, err
	}
	return &operators.Result{Output: out, Metrics: map[string]float64{"rows": float64(piece.Rows)}}, nil
}

// transformers caches the Transformer of the parameters the last tasks used:
// the tasks of one wave (goroutines of the local backend, or warm
// invocations of a Lambda function) share it instead of each reading and
// expanding the parameters (about 16 MiB for a 2^20-slot hashed space). A
// Transformer is read-only once built, so sharing it is safe; the cache
// holds one entry and is safe to lose.
var transformers transformerCache

type transformerCache struct {
	mu    sync.Mutex
	uri   string
	entry *transformerEntry
}

type transformerEntry struct {
	once sync.Once
	tr   *manifest.Transformer
	err  error
}

func (c *transformerCache) get(ctx context.Context, st blob.Store, key string) (*manifest.Transformer, error) {
	uri := st.URI(key)
	c.mu.Lock()
	if c.uri != uri || c.entry == nil {
		c.uri, c.entry = uri, &transformerEntry{}
	}
	e := c.entry
	c.mu.Unlock()
	e.once.Do(func() {
		a, err := manifest.ReadAffine(ctx, st, key)
		if err != nil {
			e.err = err
			return
		}
		e.tr = manifest.NewTransformer(a)
	})
	if e.err != nil {
		c.mu.Lock()
		if c.entry == e { // do not keep a failure (a cancelled read, say)
			c.entry = nil
		}
		c.mu.Unlock()
	}
	return e.tr, e.err
}
