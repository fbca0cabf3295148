package psstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/stratus-ml/stratus/psstore/proto"
)

// pushStream carries one client's pushes to one shard over a long-lived
// bidirectional stream, with at most the window size unacknowledged.
//
// Every push gets a sequence number. The shard applies a stream's pushes in
// order and acknowledges them cumulatively: a failed push at once (with its
// error), and a push that asks with ack_now, which the client sets whenever
// half the window is unacknowledged (so acks cost one message per half
// window, not one per push) and on a flush marker. When a stream breaks, all
// its unacknowledged pushes are resolved as failed at once, before a new
// stream is opened (they may or may not have been applied). So pushes
// resolve in sequence order and "every push up to doneSeq is resolved" is
// the invariant Flush waits on.
type pushStream struct {
	c     *Client
	sh    *shardConn
	slots chan struct{} // window: one token per unacknowledged push

	sendMu sync.Mutex     // serialises Send and stream creation
	req    pb.PushRequest // reused under sendMu

	mu      sync.Mutex
	cur     *pushGen // nil: open a new stream on the next push
	nextSeq uint64   // last sequence number assigned
	doneSeq uint64   // every push <= doneSeq is acknowledged or failed
	askSeq  uint64   // last push sent with ack_now
	notify  chan struct{}
	// copiesOf holds, with replication, the copy each unacknowledged push
	// was for, in sequence order, so a failure gives up that copy.
	copiesOf []seqCopy
}

type seqCopy struct {
	seq uint64
	k   copyKey
}

// pushGen is one stream (generation) of a pushStream.
type pushGen struct {
	stream  grpc.BidiStreamingClient[pb.PushRequest, pb.PushAck]
	cancel  context.CancelFunc
	lastSeq uint64        // under pushStream.mu
	failed  bool          // under pushStream.mu
	done    chan struct{} // closed when the receiver has returned
	err     error         // why the stream ended; set before done is closed
}

func newPushStream(c *Client, sh *shardConn) *pushStream {
	return &pushStream{c: c, sh: sh, slots: make(chan struct{}, c.opts.pushWindow)}
}

// send queues one push part (for copy k, with replication). It blocks only
// while the window is full (or while gRPC flow control holds the write),
// never for an acknowledgement. A push that could not be written because
// the stream had died (a shard restart) never reached the shard; it is
// retried once on a new stream. wait says whether to wait for a shard that
// is unreachable (see RetryPolicy) rather than fail at once.
func (ps *pushStream) send(ctx context.Context, model string, k copyKey, keys, grads []byte, n int, countPush, wait bool) error {
	for attempt := 0; ; attempt++ {
		select {
		case ps.slots <- struct{}{}:
		case <-ctx.Done():
			return ps.c.wrap(ctx, "push", ps.sh, ctx.Err())
		}
		ps.sendMu.Lock()
		r := &ps.req
		r.Model, r.Keys, r.NumKeys, r.Grads, r.CountPush = model, keys, uint32(n), grads, countPush
		// The map this push was routed with (the caller holds routeMu),
		// not the older one the stream may have been opened with: a
		// member behind it must wait for that map before applying it.
		r.MapVersion = ps.c.smap.Version
		if ps.c.opts.f16 {
			r.Encoding = pb.ValueEncoding_VALUE_ENCODING_FLOAT16
		} else {
			r.Encoding = pb.ValueEncoding_VALUE_ENCODING_FLOAT32
		}
		written, err := ps.sendLocked(ctx, r, false, k, wait)
		r.Keys, r.Grads = nil, nil
		ps.sendMu.Unlock()
		if err == nil {
			return nil
		}
		if attempt == 0 && !written && ctx.Err() == nil && transportFailure(err) {
			continue
		}
		return ps.c.wrap(ctx, "push", ps.sh, err)
	}
}

// sendLocked assigns r the next sequence number and sends it on the live
// stream, asking for an ack when half the window (or, with forceAck,
// everything) is unacknowledged. The caller holds sendMu and a window slot,
// which is released here if the push cannot be sent. written is false when
// the push certainly did not reach the shard.
func (ps *pushStream) sendLocked(ctx context.Context, r *pb.PushRequest, forceAck bool, k copyKey, wait bool) (written bool, err error) {
	g, err := ps.generation(ctx, wait)
	if err != nil {
		<-ps.slots
		return true, err // not retried: opening the stream itself failed
	}
	ps.mu.Lock()
	if g.failed {
		// The receiver failed g after generation() returned it.
		ps.mu.Unlock()
		<-ps.slots
		return false, status.Error(codes.Unavailable, "push stream broke")
	}
	ps.nextSeq++
	seq := ps.nextSeq
	g.lastSeq = seq
	r.Seq = seq
	if ps.c.r > 1 && r.Model != "" {
		ps.copiesOf = append(ps.copiesOf, seqCopy{seq, k})
	}
	r.AckNow = forceAck || seq-ps.doneSeq >= uint64(max(1, cap(ps.slots)/2))
	if r.AckNow {
		ps.askSeq = seq
	}
	ps.mu.Unlock()
	// gRPC encodes the message before SendMsg returns (no stats handler
	// holds it), so the caller may reuse keys and grads afterwards.
	if err := g.stream.Send(r); err != nil {
		// The real cause arrives on Recv; the receiver records it for the
		// other pushes in flight. This push is reported by the caller.
		if errors.Is(err, io.EOF) {
			err = status.Error(codes.Unavailable, "push stream closed by the shard")
			// The shard ended the stream: its reason (a MOVED refusal
			// above all) is what the receiver reads.
			select {
			case <-g.done:
				if g.err != nil && !errors.Is(g.err, io.EOF) {
					err = g.err
				}
			case <-ctx.Done():
			}
		}
		ps.fail(g, err, seq)
		return false, err
	}
	return true, nil
}

// generation returns the live stream, opening one (and its receiver) if
// needed, and waiting (see RetryPolicy) while the shard is unreachable.
// Called with sendMu held.
func (ps *pushStream) generation(ctx context.Context, wait bool) (*pushGen, error) {
	ps.mu.Lock()
	g := ps.cur
	ps.mu.Unlock()
	if g != nil {
		return g, nil
	}
	if ps.c.ctx.Err() != nil {
		return nil, errClosed
	}
	var stream grpc.BidiStreamingClient[pb.PushRequest, pb.PushAck]
	var cancel context.CancelFunc
	open := func() (err error) {
		var sctx context.Context
		sctx, cancel = context.WithCancel(ps.c.ctx)
		if stream, err = ps.sh.rpc.Push(sctx); err != nil {
			cancel()
		}
		return err
	}
	var err error
	if wait {
		err = ps.c.retry(ctx, ps.sh, open)
	} else {
		err = open()
	}
	if err != nil {
		return nil, err
	}
	ps.mu.Lock()
	g = &pushGen{stream: stream, cancel: cancel, lastSeq: ps.nextSeq, done: make(chan struct{})}
	ps.cur = g
	ps.mu.Unlock()
	ps.c.wg.Add(1)
	go ps.receive(g)
	return g, nil
}

// receive reads g's acknowledgements until the stream ends.
func (ps *pushStream) receive(g *pushGen) {
	defer ps.c.wg.Done()
	defer close(g.done)
	defer g.cancel()
	ack := new(pb.PushAck)
	for {
		if err := g.stream.RecvMsg(ack); err != nil {
			g.err = err
			if errors.Is(err, io.EOF) {
				err = status.Error(codes.Unavailable, "push stream ended by the shard")
			}
			ps.fail(g, err, 0)
			return
		}
		// Record a refusal before the push counts as resolved, so a Flush
		// woken by it sees the error.
		if ack.Code != 0 {
			err := ps.c.wrap(context.Background(), "push", ps.sh, status.Error(codes.Code(ack.Code), ack.Message))
			if !failover(err) || !ps.giveUp(ack.Seq, ack.Seq, err) {
				ps.c.setPushErr(err)
			}
		}
		ps.mu.Lock()
		if g.failed {
			ps.mu.Unlock()
			continue
		}
		if ack.Seq <= ps.doneSeq || ack.Seq > g.lastSeq {
			ps.mu.Unlock()
			ps.fail(g, status.Errorf(codes.Internal, "shard acknowledged push %d, outside the unacknowledged range (%d, %d]", ack.Seq, ps.doneSeq, g.lastSeq), 0)
			return
		}
		done := int(ack.Seq - ps.doneSeq)
		ps.doneSeq = ack.Seq
		ps.trimLocked()
		ps.wake()
		ps.mu.Unlock()
		for range done {
			<-ps.slots
		}
	}
}

// fail resolves every unacknowledged push of g as failed, releases their
// window slots and records err for them (except own, which the caller
// reports itself). The first call for g does the work.
func (ps *pushStream) fail(g *pushGen, err error, own uint64) {
	ps.mu.Lock()
	if g.failed {
		ps.mu.Unlock()
		return
	}
	g.failed = true
	if ps.cur == g {
		ps.cur = nil
	}
	lost := 0
	if g.lastSeq > ps.doneSeq {
		lost = int(g.lastSeq - ps.doneSeq)
	}
	others := lost
	if own != 0 {
		others--
	}
	// With replication, the lost pushes' copies are given up; the failure
	// is news only if a partition has no good copy left.
	covered := false
	if _, moved := movedVersion(err); !moved {
		covered = ps.c.r > 1 && lost > 0 && ps.giveUpLocked(ps.doneSeq+1, g.lastSeq, err)
	}
	// A MOVED refusal gives up no copy: the copy did not fail, it moved,
	// and the copy numbers of the newer map (which the client may hold
	// already) name its successors. The client must refresh the map (the
	// next push does, seeing the error), whatever copies are left.
	// The error is recorded before the pushes count as resolved, so a
	// Flush woken by them sees it.
	if others > 0 && ps.c.ctx.Err() == nil && !covered {
		ps.c.setPushErr(ps.c.wrap(context.Background(), "push", ps.sh,
			fmt.Errorf("the push stream broke with %d pushes unacknowledged (they may or may not have been applied): %w", others, err)))
	}
	if lost > 0 {
		ps.doneSeq = g.lastSeq
	}
	ps.trimLocked()
	ps.wake()
	ps.mu.Unlock()
	g.cancel()
	for range lost {
		<-ps.slots
	}
}

// wake tells Flush waiters that doneSeq moved. Called with mu held.
func (ps *pushStream) wake() {
	if ps.notify != nil {
		close(ps.notify)
		ps.notify = nil
	}
}

// flush waits until every push assigned a sequence number before the call
// is resolved. If the last of them did not ask for an ack, it first sends a
// flush marker that does.
func (ps *pushStream) flush(ctx context.Context) error {
	ps.mu.Lock()
	target := ps.nextSeq
	needMarker := ps.doneSeq < target && ps.askSeq < target && ps.cur != nil
	ps.mu.Unlock()
	if needMarker {
		select {
		case ps.slots <- struct{}{}:
		case <-ctx.Done():
			return ps.c.wrap(ctx, "flush", ps.sh, ctx.Err())
		}
		ps.sendMu.Lock()
		ps.mu.Lock()
		still := ps.doneSeq < target && ps.askSeq < target && ps.cur != nil
		ps.mu.Unlock()
		var err error
		if still {
			_, err = ps.sendLocked(ctx, &pb.PushRequest{}, true, copyKey{}, true)
		} else {
			<-ps.slots
		}
		ps.sendMu.Unlock()
		if err != nil {
			// The stream broke: the pushes it carried are resolved as
			// failed and their error recorded; nothing more to wait for.
			return nil
		}
	}
	ps.mu.Lock()
	for ps.doneSeq < target {
		if ps.notify == nil {
			ps.notify = make(chan struct{})
		}
		ch := ps.notify
		ps.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ps.c.wrap(ctx, "flush", ps.sh, ctx.Err())
		}
		ps.mu.Lock()
	}
	ps.mu.Unlock()
	return nil
}

func (c *Client) setPushErr(err error) {
	c.errMu.Lock()
	if c.pushErr == nil {
		c.pushErr = err
		if _, moved := movedVersion(err); moved {
			c.pushMoved.Store(true)
		}
	}
	c.errMu.Unlock()
}

// takePushErr returns and clears the first unreported push failure.
func (c *Client) takePushErr() error {
	c.errMu.Lock()
	err := c.pushErr
	c.pushErr = nil
	c.pushMoved.Store(false)
	c.errMu.Unlock()
	return err
}

// giveUp marks the copies of the pushes with sequence numbers in [lo, hi]
// as bad after err; it reports whether each of their partitions still has a
// good copy (so err need not be reported). Without replication it reports
// false.
func (ps *pushStream) giveUp(lo, hi uint64, err error) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.giveUpLocked(lo, hi, err)
}

func (ps *pushStream) giveUpLocked(lo, hi uint64, err error) bool {
	if ps.c.r <= 1 {
		return false
	}
	covered := true
	for _, sc := range ps.copiesOf {
		if sc.seq < lo || sc.seq > hi {
			continue
		}
		if !ps.c.copies.markBad(sc.k, err, ps.c.r) {
			covered = false
		}
	}
	return covered
}

// trimLocked drops the copy records of resolved pushes.
func (ps *pushStream) trimLocked() {
	i := 0
	for i < len(ps.copiesOf) && ps.copiesOf[i].seq <= ps.doneSeq {
		i++
	}
	if i > 0 {
		ps.copiesOf = append(ps.copiesOf[:0], ps.copiesOf[i:]...)
	}
}
