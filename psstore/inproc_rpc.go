package psstore

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/stratus-ml/stratus/psstore/proto"
)

// inprocRPC is the PSStore service of a shard in this process, as a gRPC
// client would see it: every call runs the shard's handler directly (the
// hot paths — sparse pull and push, dense pull — do not come here; see
// inproc.go). A call counts as a request, is admitted like a gRPC one
// (refused with Unavailable once the shard is closing) and maps a handler's
// error to a status as gRPC does.
type inprocRPC struct {
	l *localShard
}

func (r *inprocRPC) svc() (*rpcService, *Server) {
	s := r.l.server()
	return &rpcService{s: s}, s
}

// unary runs one unary handler in this process.
func unary[Resp any](ctx context.Context, r *inprocRPC, h func(*rpcService) (*Resp, error)) (*Resp, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxStatus(err)
	}
	svc, s := r.svc()
	release, err := s.inprocEnter()
	if err != nil {
		return nil, err
	}
	defer release()
	s.auth.requests.Add(1)
	resp, err := h(svc)
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

// toStatus turns a handler's error into the status error gRPC would
// deliver.
func toStatus(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ctxStatus(err)
	}
	return status.Convert(err).Err()
}

func (r *inprocRPC) Hello(ctx context.Context, in *pb.HelloRequest, _ ...grpc.CallOption) (*pb.HelloResponse, error) {
	return unary(ctx, r, func(s *rpcService) (*pb.HelloResponse, error) { return s.Hello(ctx, in) })
}

func (r *inprocRPC) Stats(ctx context.Context, in *pb.StatsRequest, _ ...grpc.CallOption) (*pb.StatsResponse, error) {
	return unary(ctx, r, func(s *rpcService) (*pb.StatsResponse, error) { return s.Stats(ctx, in) })
}

func (r *inprocRPC) Delete(ctx context.Context, in *pb.DeleteRequest, _ ...grpc.CallOption) (*pb.DeleteResponse, error) {
	return unary(ctx, r, func(s *rpcService) (*pb.DeleteResponse, error) { return s.Delete(ctx, in) })
}

func (r *inprocRPC) CreateModel(ctx context.Context, in *pb.CreateModelRequest, _ ...grpc.CallOption) (*pb.CreateModelResponse, error) {
	return unary(ctx, r, func(s *rpcService) (*pb.CreateModelResponse, error) { return s.CreateModel(ctx, in) })
}

func (r *inprocRPC) DeleteModel(ctx context.Context, in *pb.DeleteModelRequest, _ ...grpc.CallOption) (*pb.DeleteModelResponse, error) {
	return unary(ctx, r, func(s *rpcService) (*pb.DeleteModelResponse, error) { return s.DeleteModel(ctx, in) })
}

func (r *inprocRPC) PullSparse(ctx context.Context, in *pb.PullSparseRequest, _ ...grpc.CallOption) (*pb.PullSparseResponse, error) {
	return unary(ctx, r, func(s *rpcService) (*pb.PullSparseResponse, error) { return s.PullSparse(ctx, in) })
}

func (r *inprocRPC) ModelStats(ctx context.Context, in *pb.ModelStatsRequest, _ ...grpc.CallOption) (*pb.ModelStatsResponse, error) {
	return unary(ctx, r, func(s *rpcService) (*pb.ModelStatsResponse, error) { return s.ModelStats(ctx, in) })
}

func (r *inprocRPC) ListModels(ctx context.Context, in *pb.ListModelsRequest, _ ...grpc.CallOption) (*pb.ListModelsResponse, error) {
	return unary(ctx, r, func(s *rpcService) (*pb.ListModelsResponse, error) { return s.ListModels(ctx, in) })
}

func (r *inprocRPC) Fence(ctx context.Context, in *pb.FenceRequest, _ ...grpc.CallOption) (*pb.FenceResponse, error) {
	return unary(ctx, r, func(s *rpcService) (*pb.FenceResponse, error) { return s.Fence(ctx, in) })
}

func (r *inprocRPC) Snapshot(ctx context.Context, in *pb.SnapshotRequest, _ ...grpc.CallOption) (*pb.SnapshotResponse, error) {
	return unary(ctx, r, func(s *rpcService) (*pb.SnapshotResponse, error) { return s.Snapshot(ctx, in) })
}

func (r *inprocRPC) Restore(ctx context.Context, in *pb.RestoreRequest, _ ...grpc.CallOption) (*pb.RestoreResponse, error) {
	return unary(ctx, r, func(s *rpcService) (*pb.RestoreResponse, error) { return s.Restore(ctx, in) })
}

func (r *inprocRPC) Put(ctx context.Context, _ ...grpc.CallOption) (grpc.ClientStreamingClient[pb.PutChunk, pb.PutResponse], error) {
	return clientStreaming[pb.PutChunk, pb.PutResponse](ctx, r, (*rpcService).Put)
}

func (r *inprocRPC) Merge(ctx context.Context, _ ...grpc.CallOption) (grpc.ClientStreamingClient[pb.MergeChunk, pb.MergeResponse], error) {
	return clientStreaming[pb.MergeChunk, pb.MergeResponse](ctx, r, (*rpcService).Merge)
}

func (r *inprocRPC) Get(ctx context.Context, in *pb.GetRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[pb.ValueChunk], error) {
	return serverStreaming(ctx, r, in, (*rpcService).Get)
}

func (r *inprocRPC) List(ctx context.Context, in *pb.ListRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[pb.ListResponse], error) {
	return serverStreaming(ctx, r, in, (*rpcService).List)
}

func (r *inprocRPC) PullDense(ctx context.Context, in *pb.PullDenseRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[pb.DenseChunk], error) {
	return serverStreaming(ctx, r, in, (*rpcService).PullDense)
}

func (r *inprocRPC) PullStream(ctx context.Context, _ ...grpc.CallOption) (grpc.BidiStreamingClient[pb.PullSparseRequest, pb.PullSparseResponse], error) {
	return clientStreaming[pb.PullSparseRequest, pb.PullSparseResponse](ctx, r, (*rpcService).PullStream)
}

func (r *inprocRPC) Push(ctx context.Context, _ ...grpc.CallOption) (grpc.BidiStreamingClient[pb.PushRequest, pb.PushAck], error) {
	return clientStreaming[pb.PushRequest, pb.PushAck](ctx, r, (*rpcService).Push)
}

var _ pb.PSStoreClient = (*inprocRPC)(nil)

// serverStreaming runs server-streaming handler h in this process on a copy
// of in, as a gRPC client's call would: the request is sent and closed.
func serverStreaming[Req proto.Message, Resp any](ctx context.Context, r *inprocRPC, in Req, h func(*rpcService, Req, grpc.ServerStreamingServer[Resp]) error) (grpc.ServerStreamingClient[Resp], error) {
	in = proto.Clone(in).(Req)
	p, err := r.open(ctx, func(s *rpcService, ss *pipeServer) error {
		return h(s, in, &grpc.GenericServerStream[Req, Resp]{ServerStream: ss})
	})
	if err != nil {
		return nil, err
	}
	p.CloseSend()
	return &grpc.GenericClientStream[Req, Resp]{ClientStream: p}, nil
}

// clientStreaming runs client- or bidi-streaming handler h in this process;
// S is the handler's stream interface, which the generic stream implements.
func clientStreaming[Req, Resp, S any](ctx context.Context, r *inprocRPC, h func(*rpcService, S) error) (*grpc.GenericClientStream[Req, Resp], error) {
	p, err := r.open(ctx, func(s *rpcService, ss *pipeServer) error {
		return h(s, any(&grpc.GenericServerStream[Req, Resp]{ServerStream: ss}).(S))
	})
	if err != nil {
		return nil, err
	}
	return &grpc.GenericClientStream[Req, Resp]{ClientStream: p}, nil
}

// pipeDepth is how many messages a pipe holds in each direction before a
// Send waits (gRPC's flow-control window plays this part on the wire).
const pipeDepth = 16

// pipe is an in-process stream between a client and a handler running in
// its own goroutine. Sent messages are cloned, so either side may reuse its
// message once Send returns, as with gRPC.
type pipe struct {
	ctx    context.Context // the call's: ends with the client's context, or the shard closing
	cancel context.CancelFunc

	c2s, s2c  chan proto.Message
	closeOnce sync.Once
	closed    chan struct{} // CloseSend
	done      chan struct{} // the handler returned; err is set
	err       error
}

// open starts handler h on a pipe. A closing shard ends the pipe's context
// and waits for the handler to return.
func (r *inprocRPC) open(ctx context.Context, h func(*rpcService, *pipeServer) error) (*pipe, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxStatus(err)
	}
	svc, s := r.svc()
	release, err := s.inprocEnter()
	if err != nil {
		return nil, err
	}
	s.auth.requests.Add(1)
	pctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.inprocCtx, cancel)
	p := &pipe{ctx: pctx, cancel: cancel, c2s: make(chan proto.Message, pipeDepth), s2c: make(chan proto.Message, pipeDepth),
		closed: make(chan struct{}), done: make(chan struct{})}
	go func() { // owned by the call: ends when the handler returns
		defer cancel() // after done is closed, so RecvMsg sees the handler's status
		defer stop()
		err := h(svc, &pipeServer{p})
		release()
		if err != nil {
			p.err = toStatus(err)
		}
		close(p.done)
	}()
	return p, nil
}

// The client side (grpc.ClientStream).

func (p *pipe) Header() (metadata.MD, error) { return metadata.MD{}, nil }
func (p *pipe) Trailer() metadata.MD         { return metadata.MD{} }
func (p *pipe) Context() context.Context     { return p.ctx }

func (p *pipe) CloseSend() error {
	p.closeOnce.Do(func() { close(p.closed) })
	return nil
}

// SendMsg returns io.EOF once the handler has returned, as gRPC does; its
// status comes from RecvMsg.
func (p *pipe) SendMsg(m any) error {
	c := proto.Clone(m.(proto.Message))
	select {
	case p.c2s <- c:
		return nil
	case <-p.done:
		return io.EOF
	case <-p.ctx.Done():
		return p.endErr()
	}
}

// RecvMsg delivers every message the handler sent, then its status (io.EOF
// for success).
func (p *pipe) RecvMsg(m any) error {
	select {
	case c := <-p.s2c:
		return into(m, c)
	default:
	}
	select {
	case c := <-p.s2c:
		return into(m, c)
	case <-p.done:
	case <-p.ctx.Done():
		select {
		case <-p.done:
		default:
			return ctxStatus(p.ctx.Err())
		}
	}
	select {
	case c := <-p.s2c:
		return into(m, c)
	default:
	}
	if p.err != nil {
		return p.err
	}
	return io.EOF
}

// endErr is the error of a Send on a stream whose context ended: io.EOF
// if the handler returned (RecvMsg tells its status), else the context's.
func (p *pipe) endErr() error {
	select {
	case <-p.done:
		return io.EOF
	default:
	}
	return ctxStatus(p.ctx.Err())
}

func into(dst any, src proto.Message) error {
	d := dst.(proto.Message)
	proto.Reset(d)
	proto.Merge(d, src)
	return nil
}

// pipeServer is the handler's side (grpc.ServerStream).
type pipeServer struct{ p *pipe }

func (s *pipeServer) SetHeader(metadata.MD) error  { return nil }
func (s *pipeServer) SendHeader(metadata.MD) error { return nil }
func (s *pipeServer) SetTrailer(metadata.MD)       {}
func (s *pipeServer) Context() context.Context     { return s.p.ctx }

func (s *pipeServer) SendMsg(m any) error {
	c := proto.Clone(m.(proto.Message))
	select {
	case s.p.s2c <- c:
		return nil
	case <-s.p.ctx.Done():
		return ctxStatus(s.p.ctx.Err())
	}
}

// RecvMsg delivers every message the client sent, then io.EOF once it
// closed its side.
func (s *pipeServer) RecvMsg(m any) error {
	p := s.p
	select {
	case c := <-p.c2s:
		return into(m, c)
	default:
	}
	select {
	case c := <-p.c2s:
		return into(m, c)
	case <-p.closed:
		select {
		case c := <-p.c2s:
			return into(m, c)
		default:
		}
		return io.EOF
	case <-p.ctx.Done():
		return ctxStatus(p.ctx.Err())
	}
}

// The cluster-membership calls run in process too, so a client of shards of
// its own process can read their map; joins and drains are for `stratus
// psstore serve` clusters and go through the same handlers.

func (r *inprocRPC) GetMap(ctx context.Context, in *pb.GetMapRequest, _ ...grpc.CallOption) (*pb.MapResponse, error) {
	return unary(ctx, r, func(s *rpcService) (*pb.MapResponse, error) { return s.GetMap(ctx, in) })
}

func (r *inprocRPC) InstallMap(ctx context.Context, in *pb.InstallMapRequest, _ ...grpc.CallOption) (*pb.MapResponse, error) {
	return unary(ctx, r, func(s *rpcService) (*pb.MapResponse, error) { return s.InstallMap(ctx, in) })
}

func (r *inprocRPC) DropPartition(ctx context.Context, in *pb.PartitionRequest, _ ...grpc.CallOption) (*pb.ImportResponse, error) {
	return unary(ctx, r, func(s *rpcService) (*pb.ImportResponse, error) { return s.DropPartition(ctx, in) })
}

func (r *inprocRPC) ExportPartition(ctx context.Context, in *pb.PartitionRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[pb.PartitionItem], error) {
	return serverStreaming(ctx, r, in, (*rpcService).ExportPartition)
}

func (r *inprocRPC) ImportPartition(ctx context.Context, _ ...grpc.CallOption) (grpc.ClientStreamingClient[pb.PartitionItem, pb.ImportResponse], error) {
	return clientStreaming[pb.PartitionItem, pb.ImportResponse](ctx, r, (*rpcService).ImportPartition)
}
