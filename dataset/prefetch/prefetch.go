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

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset/partition"
)

// Unit is a run of rows of one partition: rows [Lo, Hi) of the object at Key. Hi < 0
// means to the end of the partition.
type Unit struct {
	Key    string `json:"key"`
	Lo, Hi int
}

// Units returns one whole-partition unit per key.
func Units(keys []string) []Unit {
	us := make([]Unit, len(keys))
	for i, k := range keys {
		us[i] = Unit{Key: k, Hi: -1}
	}
	return us
}

// Options configure an Iterator.
type Options struct {
	// Minibatch is the number of rows per batch (the last batch of a partition may be
	// shorter; batches never span partitions).
	Minibatch int
	// Buffer is how many fetched partitions may wait decoded in memory (default 2).
	Buffer int
	// StartUnit and StartRow resume at a position returned by Position.
	StartUnit int
	StartRow  int
	// Labels, when set, rewrites each partition's labels in place once, when
	// it is fetched: how a model reads the labels as the input spelled them
	// (a binary model's 0/1 from −1/+1, a softmax model's class indices).
	Labels func(labels []float32)
	// Read, when set, fetches a partition instead of partition.Read, its
	// labels already as the model reads them (Labels is then not applied): a
	// caller that keeps partitions it read shares them among iterators.
	Read func(ctx context.Context, st blob.Store, key string) (*partition.Partition, error)
}

// Iterator yields minibatches. Next is not safe for concurrent use; the background
// fetcher is owned by the Iterator and stopped by Close.
type Iterator struct {
	opts   Options
	units  []Unit
	ch     chan fetched
	cancel context.CancelFunc
	wg     sync.WaitGroup

	cur  *partition.Partition
	unit int // index of cur's unit in units
	row  int // next row of cur
	hi   int // end of the current unit
	err  error
}

type fetched struct {
	idx int
	p   *partition.Partition
	err error
}

// New starts fetching units[opts.StartUnit:] from st. Consecutive units of the same
// partition share one fetch.
func New(ctx context.Context, st blob.Store, units []Unit, opts Options) *Iterator {
	if opts.Minibatch <= 0 {
		opts.Minibatch = 100
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 2
	}
	ctx, cancel := context.WithCancel(ctx)
	it := &Iterator{opts: opts, units: units, ch: make(chan fetched, opts.Buffer), cancel: cancel, unit: opts.StartUnit - 1}
	it.wg.Add(1)
	go func() {
		defer it.wg.Done()
		defer close(it.ch)
		var last *partition.Partition
		for i := opts.StartUnit; i < len(units); i++ {
			var p *partition.Partition
			var err error
			if last != nil && i > opts.StartUnit && units[i-1].Key == units[i].Key {
				p = last
			} else if opts.Read != nil {
				p, err = opts.Read(ctx, st, units[i].Key)
				last = p
			} else {
				p, err = partition.Read(ctx, st, units[i].Key)
				if err == nil && opts.Labels != nil {
					opts.Labels(p.Labels())
				}
				last = p
			}
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
	for it.cur == nil || it.row >= it.hi {
		f, ok := <-it.ch
		if !ok {
			it.err = io.EOF
			return partition.Batch{}, io.EOF
		}
		if f.err != nil {
			it.err = fmt.Errorf("unit %d of %d: %w", f.idx+1, len(it.units), f.err)
			return partition.Batch{}, it.err
		}
		u := it.units[f.idx]
		it.cur, it.unit = f.p, f.idx
		it.row, it.hi = min(max(u.Lo, 0), f.p.Rows()), f.p.Rows()
		if u.Hi >= 0 {
			it.hi = min(u.Hi, f.p.Rows())
		}
		if f.idx == it.opts.StartUnit && it.opts.StartRow > it.row {
			it.row = min(it.opts.StartRow, it.hi)
		}
	}
	lo := it.row
	hi := min(lo+it.opts.Minibatch, it.hi)
	it.row = hi
	return it.cur.Batch(lo, hi), nil
}

// Position is where the next batch starts: a unit index and a row of its partition.
// An iterator created with these as StartUnit and StartRow continues from there.
func (it *Iterator) Position() (unit, row int) {
	if it.cur == nil {
		return it.opts.StartUnit, it.opts.StartRow
	}
	if it.row >= it.hi {
		return it.unit + 1, 0
	}
	return it.unit, it.row
}

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
