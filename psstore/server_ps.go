package psstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/stratus-ml/stratus/psstore/proto"
)

// The parameter-server face of a shard.

func (r *rpcService) CreateModel(_ context.Context, req *pb.CreateModelRequest) (*pb.CreateModelResponse, error) {
	s := r.s
	spec, err := specFromProto(req.Spec)
	if err == nil {
		spec, err = spec.normalize()
	}
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "psstore: create model: %v", err)
	}
	if req.Replica {
		if err := s.checkReplica(req.ShardIndex, req.ShardCount); err != nil {
			return nil, err
		}
	} else if err := s.checkPlacement(placement{req.ShardIndex, req.ShardCount}); err != nil {
		return nil, err
	}
	idx, n := uint64(req.ShardIndex), uint64(req.ShardCount)
	s.modelsMu.Lock()
	defer s.modelsMu.Unlock()
	if old := s.models[spec.Name]; old != nil {
		if d := old.spec.diff(spec); d != "" {
			return nil, status.Errorf(codes.AlreadyExists, "psstore: model %q already exists with a different spec (%s, existing first): delete it first or choose another name", spec.Name, d)
		}
		return &pb.CreateModelResponse{Created: false}, nil
	}
	if len(s.models) >= s.opts.MaxModels {
		return nil, status.Errorf(codes.ResourceExhausted, "psstore: shard already holds its limit of %d models: delete some first", s.opts.MaxModels)
	}
	local := localDimFor(spec.Dim, idx, n)
	need := modelBytes(spec, local)
	if local > uint64(s.opts.MaxModelBytes) || s.modelBytes+need > uint64(s.opts.MaxModelBytes) {
		return nil, status.Errorf(codes.ResourceExhausted,
			"psstore: model %q needs %d bytes on this shard, %d of the shard's %d are in use: use more shards, a smaller dim, or raise the limit",
			spec.Name, need, s.modelBytes, s.opts.MaxModelBytes)
	}
	m := newModelShard(spec, idx, n)
	m.incarnation = rand.Uint64() | 1
	if err := s.checkpoint(m); err != nil {
		return nil, status.Errorf(codes.Internal, "psstore: create model %q: %v", spec.Name, err)
	}
	s.models[spec.Name] = m
	s.modelBytes += need
	return &pb.CreateModelResponse{Created: true}, nil
}

func (r *rpcService) DeleteModel(_ context.Context, req *pb.DeleteModelRequest) (*pb.DeleteModelResponse, error) {
	s := r.s
	s.modelsMu.Lock()
	m := s.models[req.Model]
	if m != nil {
		s.forgetModelLocked(req.Model, m)
	}
	s.modelsMu.Unlock()
	if m == nil {
		return &pb.DeleteModelResponse{}, nil
	}
	if err := s.deleteModel(req.Model, m); err != nil {
		return nil, status.Errorf(codes.Internal, "psstore: %v", err)
	}
	return &pb.DeleteModelResponse{}, nil
}

// forgetModelLocked takes model slice m, named name, out of the server's
// models and their memory; the caller holds modelsMu and then deletes it
// (deleteModel).
func (s *Server) forgetModelLocked(name string, m *modelShard) {
	delete(s.models, name)
	s.modelBytes -= modelBytes(m.spec, m.localDim)
}

// deleteModel marks m, named name, deleted, so that no checkpoint writes it
// again, and removes its metadata and chunks.
func (s *Server) deleteModel(name string, m *modelShard) error {
	m.ckMu.Lock()
	defer m.ckMu.Unlock()
	m.deleted = true
	return deleteModelData(s.db, name)
}

// sparseScratch is per-request decoding space, pooled.
type sparseScratch struct {
	keys []uint64
	vals []float32
}

var scratchPool = sync.Pool{New: func() any { return new(sparseScratch) }}

// decodeSparse validates and decodes a request's keys (and values, when
// vals is non-nil) for model m.
func (s *Server) decodeSparse(m *modelShard, sc *sparseScratch, keys []byte, n uint32, vals []byte, enc pb.ValueEncoding) error {
	if int64(n) > int64(s.opts.MaxKeysPerRequest) {
		return status.Errorf(codes.InvalidArgument, "psstore: %d keys exceed the limit of %d per request", n, s.opts.MaxKeysPerRequest)
	}
	if enc != pb.ValueEncoding_VALUE_ENCODING_FLOAT32 && enc != pb.ValueEncoding_VALUE_ENCODING_FLOAT16 {
		return status.Errorf(codes.InvalidArgument, "psstore: unknown value encoding %v", enc)
	}
	var err error
	sc.keys, err = decodeKeys(sc.keys, keys, int(n), m.localDim)
	if err != nil {
		var ce *codecError
		if errors.As(err, &ce) && ce.outOfRange {
			return status.Errorf(codes.InvalidArgument, "psstore: model %q: key %d is out of range: the model's dim is %d", m.spec.Name, m.globalKey(ce.key), m.spec.Dim)
		}
		return status.Errorf(codes.InvalidArgument, "psstore: model %q (shard %d of %d): malformed keys: %v", m.spec.Name, m.shardIndex, m.shardCount, err)
	}
	if vals != nil {
		sc.vals = grow(sc.vals, int(n))
		if err := decodeValues(sc.vals, vals, enc == pb.ValueEncoding_VALUE_ENCODING_FLOAT16, true); err != nil {
			return status.Errorf(codes.InvalidArgument, "psstore: model %q: %v", m.spec.Name, err)
		}
	}
	return nil
}

func (r *rpcService) PullSparse(_ context.Context, req *pb.PullSparseRequest) (*pb.PullSparseResponse, error) {
	out, err := r.s.pullSparse(req, nil)
	if err != nil {
		return nil, err
	}
	return &pb.PullSparseResponse{Values: out, Encoding: req.Encoding}, nil
}

// PullStream answers pulls one by one; the response buffer is reused, since
// gRPC has encoded a message by the time Send returns.
func (r *rpcService) PullStream(stream grpc.BidiStreamingServer[pb.PullSparseRequest, pb.PullSparseResponse]) error {
	req := new(pb.PullSparseRequest)
	resp := new(pb.PullSparseResponse)
	var buf []byte
	v := requestVersion(stream.Context())
	for {
		req.Reset()
		if err := stream.RecvMsg(req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		release, err := r.s.enterVersionFor(stream.Context(), messageVersion(v, req.MapVersion), req.Model)
		if err != nil {
			return err
		}
		out, err := r.s.pullSparse(req, buf[:0])
		release()
		if err != nil {
			return err
		}
		buf = out
		resp.Values, resp.Encoding = out, req.Encoding
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// pullSparse serves one pull, appending the encoded values to dst.
func (s *Server) pullSparse(req *pb.PullSparseRequest, dst []byte) ([]byte, error) {
	m, err := s.liveModel(req.Model)
	if err != nil {
		return nil, err
	}
	sc := scratchPool.Get().(*sparseScratch)
	defer scratchPool.Put(sc)
	if err := s.decodeSparse(m, sc, req.Keys, req.NumKeys, nil, req.Encoding); err != nil {
		return nil, err
	}
	sc.vals = grow(sc.vals, len(sc.keys))
	m.pull(sc.keys, sc.vals)
	return appendValues(dst, sc.vals, req.Encoding == pb.ValueEncoding_VALUE_ENCODING_FLOAT16), nil
}

// Push applies the stream's pushes in order. It acknowledges (cumulatively)
// a push that failed — refused whole, nothing of it applied; the stream goes
// on — and a push that asks for an ack.
func (r *rpcService) Push(stream grpc.BidiStreamingServer[pb.PushRequest, pb.PushAck]) error {
	s := r.s
	req := new(pb.PushRequest)
	ack := new(pb.PushAck)
	v := requestVersion(stream.Context())
	for {
		req.Reset()
		if err := stream.RecvMsg(req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		ack.Seq, ack.Code, ack.Message = req.Seq, 0, ""
		if req.Model != "" || req.NumKeys != 0 || len(req.Keys) != 0 { // else a flush marker
			release, err := s.enterVersionFor(stream.Context(), messageVersion(v, req.MapVersion), req.Model)
			_, moved := movedVersion(err)
			if moved {
				if hook := s.beforeRefusePush.Load(); hook != nil {
					(*hook)()
				}
			}
			if err != nil && (!moved || req.MapVersion == 0) {
				// The member never got the newer map, or the stream's
				// client does not version its pushes (its stream carries
				// the map it was opened with): end the stream, so the
				// client opens another with the map it refreshes.
				return err
			}
			if err == nil {
				err = s.applyPush(req)
				release()
			}
			// A push made with an older map, of a partition this member
			// no longer holds, is refused alone (MOVED): the pushes behind
			// it on the stream, for the partitions it still holds, are
			// applied.
			if err != nil {
				st := status.Convert(err)
				ack.Code, ack.Message = uint32(st.Code()), st.Message()
			}
		}
		if ack.Code == 0 && !req.AckNow {
			continue
		}
		if err := stream.Send(ack); err != nil {
			return err
		}
	}
}

func (s *Server) applyPush(req *pb.PushRequest) error {
	m, err := s.liveModel(req.Model)
	if err != nil {
		return err
	}
	if req.Grads == nil && req.NumKeys > 0 {
		return status.Error(codes.InvalidArgument, "psstore: push without gradients")
	}
	sc := scratchPool.Get().(*sparseScratch)
	defer scratchPool.Put(sc)
	grads := req.Grads
	if grads == nil {
		grads = []byte{}
	}
	if err := s.decodeSparse(m, sc, req.Keys, req.NumKeys, grads, req.Encoding); err != nil {
		return err
	}
	if err := m.push(sc.keys, sc.vals, req.CountPush, s.db); err != nil {
		return status.Errorf(codes.Internal, "psstore: %v", err)
	}
	return nil
}

// denseChunkFloats is the number of coordinates per PullDense message (2 MiB).
const denseChunkFloats = 1 << 19

func (r *rpcService) PullDense(req *pb.PullDenseRequest, stream grpc.ServerStreamingServer[pb.DenseChunk]) error {
	m, err := r.s.liveModel(req.Model)
	if err != nil {
		return err
	}
	buf := make([]float32, min(m.localDim, denseChunkFloats))
	var bytes []byte
	for off := uint64(0); ; {
		n := min(m.localDim-off, denseChunkFloats)
		m.dense(off, buf[:n])
		bytes = appendValues(bytes[:0], buf[:n], false)
		if err := stream.Send(&pb.DenseChunk{Offset: off, Values: bytes, LocalDim: m.localDim}); err != nil {
			return err
		}
		off += n
		if off >= m.localDim {
			return nil
		}
	}
}

func (r *rpcService) ModelStats(_ context.Context, req *pb.ModelStatsRequest) (*pb.ModelStatsResponse, error) {
	m, err := r.s.model(req.Model)
	if err != nil {
		return nil, err
	}
	return m.stats(), nil
}

// stats is the slice's ModelStats answer.
func (m *modelShard) stats() *pb.ModelStatsResponse {
	return &pb.ModelStatsResponse{
		Spec:               m.spec.toProto(),
		LocalDim:           m.localDim,
		Pushes:             m.pushes.Load(),
		Updates:            m.updates.Load(),
		Pulls:              m.pulls.Load(),
		PulledKeys:         m.pulledKeys.Load(),
		Checkpoints:        m.checkpoints.Load(),
		CheckpointUpdates:  m.checkpointUpdates.Load(),
		CheckpointUnixNano: m.checkpointNano.Load(),
		Incarnation:        m.incarnation,
		Lost:               m.lostReason(),
		LastUpdateUnixNano: m.lastUpdateNano.Load(),
		Bytes:              modelBytes(m.spec, m.localDim),
	}
}

// Fence marks a slice as having lost updates, for good: a client failed
// over from it (it could not reach it) and so stopped sending it pushes.
// Fencing a missing model is not an error.
func (r *rpcService) Fence(_ context.Context, req *pb.FenceRequest) (*pb.FenceResponse, error) {
	s := r.s
	m, err := s.model(req.Model)
	if err != nil {
		return &pb.FenceResponse{}, nil
	}
	m.ckMu.Lock()
	defer m.ckMu.Unlock()
	if m.deleted || m.lostReason() != "" {
		return &pb.FenceResponse{}, nil
	}
	why := "a client could not reach this shard, went on with another copy and stopped sending this one its updates (" + req.Reason + ")"
	if err := writeFence(s.db, req.Model, why); err != nil {
		return nil, status.Errorf(codes.Internal, "psstore: fence model %q: %v", req.Model, err)
	}
	m.lost.Store(&why)
	s.opts.Logf("psstore: model %q fenced: %s", req.Model, why)
	return &pb.FenceResponse{}, nil
}

func (r *rpcService) ListModels(_ context.Context, req *pb.ListModelsRequest) (*pb.ListModelsResponse, error) {
	s := r.s
	s.modelsMu.RLock()
	ms := make([]*modelShard, 0, len(s.models))
	for name, m := range s.models {
		if strings.HasPrefix(name, req.Prefix) {
			ms = append(ms, m)
		}
	}
	s.modelsMu.RUnlock()
	slices.SortFunc(ms, func(a, b *modelShard) int { return strings.Compare(a.spec.Name, b.spec.Name) })
	out := &pb.ListModelsResponse{Models: make([]*pb.ModelStatsResponse, len(ms))}
	for i, m := range ms {
		out.Models[i] = m.stats()
	}
	return out, nil
}

func (r *rpcService) Snapshot(_ context.Context, req *pb.SnapshotRequest) (*pb.SnapshotResponse, error) {
	m, err := r.s.liveModel(req.Model)
	if err != nil {
		return nil, err
	}
	if err := r.s.checkpoint(m); err != nil {
		if errors.Is(err, errModelDeleted) {
			return nil, status.Errorf(codes.NotFound, "psstore: model %q was deleted", req.Model)
		}
		return nil, status.Errorf(codes.Internal, "psstore: snapshot: %v", err)
	}
	return &pb.SnapshotResponse{}, nil
}

func (r *rpcService) Restore(_ context.Context, req *pb.RestoreRequest) (*pb.RestoreResponse, error) {
	s := r.s
	m, err := s.liveModel(req.Model)
	if err != nil {
		return nil, err
	}
	m.ckMu.Lock()
	defer m.ckMu.Unlock()
	if m.deleted {
		return nil, status.Errorf(codes.NotFound, "psstore: model %q was deleted", req.Model)
	}
	meta, ok, err := readMeta(s.db, req.Model)
	if err == nil && !ok {
		err = fmt.Errorf("no checkpoint found")
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "psstore: restore model %q: %v", req.Model, err)
	}
	st, err := readCheckpoint(s.db, meta)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "psstore: restore: %v", err)
	}
	if uint64(len(st.w)) != m.localDim {
		return nil, status.Errorf(codes.Internal, "psstore: restore model %q: checkpoint holds %d coordinates, model %d", req.Model, len(st.w), m.localDim)
	}
	m.restore(st)
	return &pb.RestoreResponse{}, nil
}
