// Package prefetch is the "smart iterator" of serverless training: it hands a worker
// minibatches from a sequence of partitions while a background goroutine fetches the
// next partitions from the blob store into a bounded buffer, so the remote store's
// latency hides behind computation.
package prefetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset/partition"
)

// Options configure an Iterator.
type Options struct {
	// Minibatch is the number of rows per batch (the last batch of a partition may be
	// shorter; batches never span partitions).
	Minibatch int
	// Buffer is how many fetched partitions may wait decoded in memory (default 2).
	Buffer int
	// StartPartition and StartRow resume at a position returned by Position.
	StartPartition int
	StartRow       int
}

// Iterator yields minibatches. Next is not safe for concurrent use; the background
// fetcher is owned by the Iterator and stopped by Close.
type Iterator struct {
	opts   Options
	keys   []string
	ch     chan fetched
	cancel context.CancelFunc
	wg     sync.WaitGroup

	cur  *partition.Partition
	part int // index of cur in keys
	row  int // next row of cur
	wait time.Duration
	err  error
}

type fetched struct {
	idx int
	p   *partition.Partition
	err error
}

// New starts fetching keys[opts.StartPartition:] from st.
func New(ctx context.Context, st blob.Store, keys []string, opts Options) *Iterator {
	if opts.Minibatch <= 0 {
		opts.Minibatch = 100
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 2
	}
	ctx, cancel := context.WithCancel(ctx)
	it := &Iterator{opts: opts, keys: keys, ch: make(chan fetched, opts.Buffer), cancel: cancel, part: opts.StartPartition - 1}
	it.wg.Add(1)
	go func() {
		defer it.wg.Done()
		defer close(it.ch)
		for i := opts.StartPartition; i < len(keys); i++ {
			p, err := partition.Read(ctx, st, keys[i])
			select {
			case it.ch <- fetched{idx: i, p: p, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return it
}

// Next returns the next minibatch, or io.EOF after the last. A fetch or decode error
// is returned once and then sticks.
func (it *Iterator) Next() (partition.Batch, error) {
	if it.err != nil {
		return partition.Batch{}, it.err
	}
	for it.cur == nil || it.row >= it.cur.Rows() {
		start := time.Now()
		f, ok := <-it.ch
		it.wait += time.Since(start)
		if !ok {
			it.err = io.EOF
			return partition.Batch{}, io.EOF
		}
		if f.err != nil {
			it.err = fmt.Errorf("partition %d of %d: %w", f.idx+1, len(it.keys), f.err)
			return partition.Batch{}, it.err
		}
		it.cur, it.part, it.row = f.p, f.idx, 0
		if f.idx == it.opts.StartPartition {
			it.row = min(it.opts.StartRow, f.p.Rows())
		}
	}
	lo := it.row
	hi := min(lo+it.opts.Minibatch, it.cur.Rows())
	it.row = hi
	return it.cur.Batch(lo, hi), nil
}

// Position is where the next batch starts: a partition index and a row in it. An
// iterator created with these as StartPartition and StartRow continues from there.
func (it *Iterator) Position() (part, row int) {
	if it.cur == nil {
		return it.opts.StartPartition, it.opts.StartRow
	}
	if it.row >= it.cur.Rows() {
		return it.part + 1, 0
	}
	return it.part, it.row
}

// Wait is the total time Next spent waiting for a partition to arrive: near zero
// when prefetching keeps ahead of computation.
func (it *Iterator) Wait() time.Duration { return it.wait }

// Close stops the fetcher and waits for it.
func (it *Iterator) Close() error {
	it.cancel()
	for range it.ch { // drain so the fetcher can exit
	}
	it.wg.Wait()
	if it.err != nil && !errors.Is(it.err, io.EOF) {
		return it.err
	}
	return nil
}
