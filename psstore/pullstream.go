package psstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"

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

func (p *pullPool) get() (*pullConn, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		pc := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return pc, nil
	}
	p.mu.Unlock()
	if p.c.ctx.Err() != nil {
		return nil, errClosed
	}
	sctx, cancel := context.WithCancel(p.c.ctx)
	stream, err := p.sh.rpc.PullStream(sctx)
	if err != nil {
		cancel()
		return nil, err
	}
	return &pullConn{stream: stream, cancel: cancel}, nil
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

// pull sends one request and returns the encoded values (valid until the
// stream's next use, which is after the caller decodes them).
func (p *pullPool) pull(ctx context.Context, req *pb.PullSparseRequest, decode func(*pb.PullSparseResponse) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	pc, err := p.get()
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
	if stop != nil && !stop() {
		// ctx ended during the call and cancelled the stream.
		if err == nil {
			err = ctx.Err()
		}
	}
	if err != nil {
		pc.cancel()
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return err
	}
	err = decode(&pc.resp)
	pc.resp.Values = nil
	p.put(pc)
	return err
}
