package psstore

import (
	"context"
	"sync"
)

// localPush is the in-process counterpart of pushStream: one client's
// pushes to one shard of this process, applied in order by a goroutine of
// the client, with at most the window's worth not yet applied. A push is
// resolved when it was applied or refused; a refusal is recorded as the
// gRPC stream's acknowledgement records it (reported by the next PushSparse
// or Flush; with replication, the copy is given up while another is good).
// When the client closes, the pushes still queued are dropped (Close does
// not wait for pushes: call Flush first).
type localPush struct {
	c     *Client
	sh    *shardConn
	slots chan struct{}       // window: one token per unresolved push
	q     chan *localPushPart // in sequence order; never full (slots bound it)
	free  chan *localPushPart // recycled parts

	start sync.Once

	mu      sync.Mutex
	nextSeq uint64 // last sequence number assigned
	doneSeq uint64 // every push <= doneSeq is resolved
	notify  chan struct{}
}

// localPushPart is one queued push part: the shard-local keys (sorted,
// distinct) and their summed gradients, copied from the client's plan.
type localPushPart struct {
	seq       uint64
	name      string
	k         copyKey
	keys      []uint64
	grads     []float32
	countPush bool
}

func newLocalPush(c *Client, sh *shardConn) *localPush {
	w := c.opts.pushWindow
	return &localPush{c: c, sh: sh, slots: make(chan struct{}, w), q: make(chan *localPushPart, w), free: make(chan *localPushPart, w)}
}

// send queues one push part for copy k (named name on the shard). It waits
// only while the window is full; wait says whether to wait for a shard
// that is closing (see RetryPolicy) rather than fail at once.
func (lp *localPush) send(ctx context.Context, name string, k copyKey, keys []uint64, grads []float32, countPush, wait bool) error {
	c := lp.c
	up := func() error {
		if lp.sh.local.server().inprocClosed.Load() {
			return errShuttingDown()
		}
		return nil
	}
	err := up()
	if err != nil && wait {
		err = c.retry(ctx, lp.sh, up)
	}
	if err != nil {
		return c.wrap(ctx, "push", lp.sh, err)
	}
	if lp.inline(name, k, keys, grads, countPush) {
		return nil
	}
	select {
	case lp.slots <- struct{}{}:
	case <-ctx.Done():
		return c.wrap(ctx, "push", lp.sh, ctx.Err())
	}
	if c.ctx.Err() != nil {
		<-lp.slots
		return c.wrap(ctx, "push", lp.sh, errClosed)
	}
	lp.start.Do(func() {
		c.wg.Add(1)
		go lp.run()
	})
	var p *localPushPart
	select {
	case p = <-lp.free:
	default:
		p = new(localPushPart)
	}
	p.name, p.k, p.countPush = name, k, countPush
	p.keys = append(p.keys[:0], keys...)
	p.grads = append(p.grads[:0], grads...)
	if c.opts.f16 {
		roundHalf(p.grads) // as the float16 wire would carry them
	}
	lp.mu.Lock()
	lp.nextSeq++
	p.seq = lp.nextSeq
	lp.q <- p
	lp.mu.Unlock()
	return nil
}

// inline applies a push in the caller's goroutine when nothing of this
// queue is unresolved (so order is kept) and the shard can take it without
// waiting (tryPushInproc); it reports whether it did. It spares the
// hand-off to run's goroutine — on a small machine, where workers outnumber
// cores, that goroutine waits for a core while its window fills.
func (lp *localPush) inline(name string, k copyKey, keys []uint64, grads []float32, countPush bool) bool {
	if lp.c.opts.f16 {
		return false // the queue rounds the gradients
	}
	lp.mu.Lock()
	if lp.doneSeq != lp.nextSeq {
		lp.mu.Unlock()
		return false
	}
	applied, err := lp.sh.local.server().tryPushInproc(name, keys, grads, countPush)
	if applied {
		lp.nextSeq++
		lp.doneSeq = lp.nextSeq
	}
	lp.mu.Unlock()
	if err != nil {
		lp.refused(k, err)
	}
	return applied
}

// refused records a refused push as the push stream's acknowledgement does.
func (lp *localPush) refused(k copyKey, err error) {
	c := lp.c
	err = c.wrap(context.Background(), "push", lp.sh, err)
	if !failover(err) || c.r <= 1 || !c.copies.markBad(k, err, c.r) {
		c.setPushErr(err)
	}
}

// run applies the queued pushes in order until the client closes.
func (lp *localPush) run() {
	c := lp.c
	defer c.wg.Done()
	for {
		select {
		case p := <-lp.q:
			if err := lp.sh.local.server().pushInproc(p.name, p.keys, p.grads, p.countPush); err != nil {
				lp.refused(p.k, err)
			}
			lp.mu.Lock()
			lp.doneSeq = p.seq
			lp.wake()
			lp.mu.Unlock()
			select {
			case lp.free <- p:
			default:
			}
			<-lp.slots
		case <-c.ctx.Done():
			lp.mu.Lock()
			lp.doneSeq = lp.nextSeq
			lp.wake()
			lp.mu.Unlock()
			return
		}
	}
}

// wake tells Flush waiters that doneSeq moved. Called with mu held.
func (lp *localPush) wake() {
	if lp.notify != nil {
		close(lp.notify)
		lp.notify = nil
	}
}

// flush waits until every push queued before the call is resolved.
func (lp *localPush) flush(ctx context.Context) error {
	lp.mu.Lock()
	target := lp.nextSeq
	for lp.doneSeq < target {
		if lp.notify == nil {
			lp.notify = make(chan struct{})
		}
		ch := lp.notify
		lp.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return lp.c.wrap(ctx, "flush", lp.sh, ctx.Err())
		}
		lp.mu.Lock()
	}
	lp.mu.Unlock()
	return nil
}
