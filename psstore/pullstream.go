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

// pullPool keeps open PullStream streams to one shard. A pull checks one
// out, sends its request and reads the answer on it, and returns it: one
// message each way instead of a unary RPC's headers, trailers and new
// server goroutine. Streams belong to the Client's lifetime context; the
// caller's context is honoured by cancelling the stream if it ends during
// the call (the stream is then discarded).
type pullPool struct {
	c  *Client
	sh *shardConn

	mu   sync.Mutex
	free []*pullConn
}

// maxIdlePulls bounds the idle streams kept per shard.
const maxIdlePulls = 16

type pullConn struct {
	stream grpc.BidiStreamingClient[pb.PullSparseRequest, pb.PullSparseResponse]
	cancel context.CancelFunc
	resp   pb.PullSparseResponse
}

// get checks out an idle stream, or opens one; reused says which.
func (p *pullPool) get() (pc *pullConn, reused bool, err error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		pc := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return pc, true, nil
	}
	p.mu.Unlock()
	if p.c.ctx.Err() != nil {
		return nil, false, errClosed
	}
	sctx, cancel := context.WithCancel(p.c.ctx)
	stream, err := p.sh.rpc.PullStream(sctx)
	if err != nil {
		cancel()
		return nil, false, err
	}
	return &pullConn{stream: stream, cancel: cancel}, false, nil
}

func (p *pullPool) put(pc *pullConn) {
	p.mu.Lock()
	if len(p.free) < maxIdlePulls && p.c.ctx.Err() == nil {
		p.free = append(p.free, pc)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	pc.stream.CloseSend()
	pc.cancel()
}

// closeAll drops the idle streams (on Client.Close).
func (p *pullPool) closeAll() {
	p.mu.Lock()
	free := p.free
	p.free = nil
	p.mu.Unlock()
	for _, pc := range free {
		pc.cancel()
	}
}

// pull sends one request on a pooled stream and hands the answer to
// decode. Idle streams die with their connection (a shard restart), which
// shows only when one is used: a pull that fails on a reused stream without
// an answer is retried once on a fresh stream (pulls are idempotent), after
// dropping the other idle streams.
func (p *pullPool) pull(ctx context.Context, req *pb.PullSparseRequest, decode func(*pb.PullSparseResponse) error) error {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		pc, reused, err := p.get()
		if err != nil {
			return err
		}
		var stop func() bool
		if ctx.Done() != nil {
			stop = context.AfterFunc(ctx, pc.cancel)
		}
		err = pc.stream.Send(req)
		if err == nil {
			err = pc.stream.RecvMsg(&pc.resp)
		}
		if stop != nil && !stop() && err == nil {
			err = ctx.Err() // ctx ended during the call and cancelled the stream
		}
		if err != nil {
			pc.cancel()
			if ctx.Err() != nil {
				if !errors.Is(err, ctx.Err()) {
					err = fmt.Errorf("%w (%v)", ctx.Err(), err)
				}
				return err
			}
			if reused && attempt == 0 && transportFailure(err) {
				p.closeAll()
				continue
			}
			return err
		}
		err = decode(&pc.resp)
		pc.resp.Values = nil
		p.put(pc)
		return err
	}
}

// transportFailure reports whether err means the stream (or its
// connection) died, as opposed to the shard refusing the request.
func transportFailure(err error) bool {
	if errors.Is(err, io.EOF) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Canceled, codes.Internal:
		return true
	}
	return false
}
