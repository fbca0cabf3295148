package manifest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/partition"
)

// Builder writes one task's rows into partitions under a key prefix and
// accumulates what a manifest records about them: counts, label balance,
// per-feature statistics and each partition's checksum.
//
// Partitions are stored by a goroutine the Builder owns, so parsing goes on
// while a partition is being written (an S3 PUT, or a file write and
// fsync). Memory is about four partitions: the one being filled, its
// encoding, one waiting and one being written; plus the statistics' pages.
// Close or Abort must be called to stop the goroutine. Not safe for
// concurrent use.
type Builder struct {
	ctx       context.Context
	st        blob.Store
	prefix    string
	w         *partition.Writer
	stats     *Stats
	nnz       int64
	positives int64
	labels    Labels

	jobs    chan putJob // to the writer goroutine; nil until the first partition
	free    chan []byte // buffers the writer is done with
	done    chan struct{}
	mu      sync.Mutex
	err     error // the first failed Put
	stopped bool
}

type putJob struct {
	key  string
	data []byte
}

// NewBuilder returns a Builder that puts partition seq at
// partition.KeyFor(prefix, seq) in st, cut at about target bytes (<= 0:
// partition.DefaultTarget).
func NewBuilder(ctx context.Context, st blob.Store, prefix string, target int) *Builder {
	b := &Builder{ctx: ctx, st: st, prefix: prefix, stats: NewStats()}
	b.w = partition.NewWriter(b.flush, target)
	return b
}

// flush hands a copy of an encoded partition to the writer goroutine.
func (b *Builder) flush(seq int, data []byte) (string, error) {
	if err := b.putErr(); err != nil {
		return "", err
	}
	if b.jobs == nil {
		b.jobs, b.free, b.done = make(chan putJob, 1), make(chan []byte, 2), make(chan struct{})
		go b.writer()
	}
	var buf []byte
	select {
	case buf = <-b.free:
	default:
	}
	buf = append(buf[:0], data...)
	key := partition.KeyFor(b.prefix, seq)
	select {
	case b.jobs <- putJob{key: key, data: buf}:
	case <-b.ctx.Done():
		return "", b.ctx.Err()
	}
	return key, nil
}

// writer stores partitions in order until jobs is closed, then closes done.
func (b *Builder) writer() {
	defer close(b.done)
	for j := range b.jobs {
		if b.putErr() == nil {
			if err := b.st.Put(b.ctx, j.key, bytes.NewReader(j.data)); err != nil {
				b.mu.Lock()
				b.err = fmt.Errorf("write partition %s: %w", b.st.URI(j.key), err)
				b.mu.Unlock()
			}
		}
		select {
		case b.free <- j.data:
		default:
		}
	}
}

func (b *Builder) putErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// stop closes jobs and waits for the writer to finish.
func (b *Builder) stop() {
	if b.stopped {
		return
	}
	b.stopped = true
	if b.jobs != nil {
		close(b.jobs)
		<-b.done
	}
}

// Add appends a row (copied): its indices strictly increasing, its label a
// finite number, as the dataset parsers produce. It fails if storing an
// earlier partition failed.
func (b *Builder) Add(r *dataset.Row) error {
	if err := b.w.Add(r); err != nil {
		return err
	}
	b.stats.AddRow(r.Indices, r.Values)
	b.nnz += int64(len(r.Indices))
	if r.Label == 1 {
		b.positives++
	}
	b.labels.add(r.Label)
	return nil
}

// Abort stops the writer goroutine without flushing the partition being
// filled; partitions already stored stay. Call it (or Close) on every path.
func (b *Builder) Abort() { b.stop() }

// Close flushes the last partition, waits until every partition is stored
// and returns the piece.
func (b *Builder) Close() (*Piece, error) {
	parts, err := b.w.Close()
	b.stop()
	if err != nil {
		return nil, err
	}
	if err := b.putErr(); err != nil {
		return nil, err
	}
	p := &Piece{Rows: b.stats.Rows, NNZ: b.nnz, Positives: b.positives, Features: b.stats.Features(), Stats: b.stats, Labels: b.labels.toPiece()}
	for _, pt := range parts {
		p.Partitions = append(p.Partitions, Partition{Key: pt.Key, Rows: pt.Rows, NNZ: pt.NNZ, Bytes: pt.Bytes, Features: pt.Features, CRC32C: pt.CRC32C})
	}
	return p, nil
}

// Piece is one task's share of a dataset: its partitions, in order, and
// what the manifest records about them. A task Saves it (statistics, and a
// long partition list, go to the blob store) and returns it in its result,
// as JSON; the coordinator Loads every piece and Assembles them.
type Piece struct {
	Partitions []Partition `json:"partitions,omitempty"`
	// PartitionsKey holds the partition list (JSON) when it is too long to
	// travel in a task result.
	PartitionsKey string `json:"partitions_key,omitempty"`
	Rows          int64  `json:"rows"`
	NNZ           int64  `json:"nnz"`
	Positives     int64  `json:"positives"`
	Features      int    `json:"features"` // 1 + the largest slot
	// Labels are the label statistics of the piece's rows (nil without rows).
	Labels *pieceLabels `json:"labels,omitempty"`
	// StatsKey is where Save put Stats ("" when Rows = 0).
	StatsKey string `json:"stats,omitempty"`
	Stats    *Stats `json:"-"`
	// StatsBlocks lists the statistics blocks
	// the task merged into a reduction elsewhere (psstore), if it did.
	StatsBlocks []int `json:"stats_blocks,omitempty"`
}

// inlineLimit bounds the JSON of a partition list kept in a task result.
const inlineLimit = 32 << 10

// Save stores the statistics at prefix+"stats" and, when the partition list
// is longer than about 32 KiB of JSON, the list at prefix+"partitions.json".
func (p *Piece) Save(ctx context.Context, st blob.Store, prefix string) error {
	if p.Rows > 0 && p.Stats != nil {
		p.StatsKey = prefix + "stats"
		if err := WriteStats(ctx, st, p.StatsKey, p.Stats); err != nil {
			return err
		}
	}
	list, err := json.Marshal(p.Partitions)
	if err != nil {
		return err
	}
	if len(list) > inlineLimit {
		p.PartitionsKey = prefix + "partitions.json"
		if err := putObject(ctx, st, p.PartitionsKey, list); err != nil {
			return err
		}
		p.Partitions = nil
	}
	return nil
}

// Load reads what Save stored: the statistics and the partition list.
func (p *Piece) Load(ctx context.Context, st blob.Store) error {
	if p.StatsKey != "" {
		s, err := ReadStats(ctx, st, p.StatsKey)
		if err != nil {
			return err
		}
		if s.Rows != p.Rows {
			return fmt.Errorf("statistics %s: %w: over %d rows, the task wrote %d", st.URI(p.StatsKey), ErrCorrupt, s.Rows, p.Rows)
		}
		p.Stats = s
	}
	if p.PartitionsKey != "" {
		data, err := getObject(ctx, st, p.PartitionsKey)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, &p.Partitions); err != nil {
			return fmt.Errorf("partition list %s: %w: %v", st.URI(p.PartitionsKey), ErrCorrupt, err)
		}
	}
	return nil
}

// Assemble concatenates loaded pieces, in order, into m: partitions, rows,
// entries, label balance and statistics (Labels), and Features raised to the largest piece's. It
// returns the pieces' statistics reduced by ReduceStats (exact sums, rounded
// once: the result a reduction through psstore's merges gives, in whatever
// order the tasks merge).
func Assemble(m *Manifest, pieces []*Piece) (*Stats, error) {
	list := make([]*Stats, len(pieces))
	var labels Labels
	for i, p := range pieces {
		if p == nil {
			continue
		}
		m.Partitions = append(m.Partitions, p.Partitions...)
		m.Rows += p.Rows
		m.NNZ += p.NNZ
		m.Positives += p.Positives
		m.Features = max(m.Features, p.Features)
		list[i] = p.Stats
		labels.merge(p.Labels.labels())
	}
	if labels.rows > 0 {
		labels.finish()
		m.Labels = &labels
	}
	m.Negatives = m.Rows - m.Positives
	return ReduceStats(list)
}

// LoadPieces loads the statistics of many pieces (Piece.Load), eight at a time.
func LoadPieces(ctx context.Context, st blob.Store, pieces []*Piece) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, p := range pieces {
		g.Go(func() error { return p.Load(gctx, st) })
	}
	return g.Wait()
}

// LoadPartitionLists loads the partition lists of many pieces (what Load
// reads besides the statistics), eight at a time: for statistics reduced
// elsewhere.
func LoadPartitionLists(ctx context.Context, st blob.Store, pieces []*Piece) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, p := range pieces {
		g.Go(func() error {
			q := *p
			q.StatsKey = ""
			if err := q.Load(gctx, st); err != nil {
				return err
			}
			p.Partitions = q.Partitions
			return nil
		})
	}
	return g.Wait()
}
