package psstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/stratus-ml/stratus/psstore/proto"
)

// The KV face of a shard. Writes (Put, Delete, Merge) of one key are
// serialised by a lock stripe, so a merge's read-modify-write is atomic;
// every write is committed with an fsync before it is acknowledged.

func (s *Server) checkKey(key []byte) error {
	if len(key) == 0 {
		return status.Error(codes.InvalidArgument, "psstore: empty key")
	}
	if len(key) > s.opts.MaxKeyBytes {
		return status.Errorf(codes.InvalidArgument, "psstore: key of %d bytes exceeds the limit of %d", len(key), s.opts.MaxKeyBytes)
	}
	return nil
}

func (s *Server) keyLock(key []byte) func() {
	h := fnv.New32a()
	h.Write(key)
	mu := &s.kvLocks[h.Sum32()%uint32(len(s.kvLocks))]
	mu.Lock()
	return mu.Unlock
}

// valueReceiver accumulates a streamed value within the size limit and the
// shard-wide in-flight budget.
type valueReceiver struct {
	s    *Server
	buf  []byte
	held int64
}

func (v *valueReceiver) add(data []byte) error {
	if int64(len(v.buf))+int64(len(data)) > v.s.opts.MaxValueBytes {
		return status.Errorf(codes.ResourceExhausted, "psstore: value exceeds the limit of %d bytes", v.s.opts.MaxValueBytes)
	}
	if err := v.reserve(int64(len(data))); err != nil {
		return err
	}
	if v.buf == nil {
		v.buf = data // the common single-chunk case: no copy
		return nil
	}
	v.buf = append(v.buf, data...)
	return nil
}

func (v *valueReceiver) reserve(n int64) error {
	if n == 0 {
		return nil
	}
	if !v.s.inflight.TryAcquire(n) {
		return status.Errorf(codes.ResourceExhausted, "psstore: shard is holding its limit of %d bytes of incoming values; retry later", v.s.opts.MaxInflightBytes)
	}
	v.held += n
	v.s.inflightHeld.Add(n)
	return nil
}

func (v *valueReceiver) release() {
	if v.held > 0 {
		v.s.inflightHeld.Add(-v.held)
		v.s.inflight.Release(v.held)
		v.held = 0
	}
}

func (r *rpcService) Put(stream grpc.ClientStreamingServer[pb.PutChunk, pb.PutResponse]) error {
	s := r.s
	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return status.Error(codes.InvalidArgument, "psstore: put: empty stream")
		}
		return err
	}
	if err := s.checkKey(first.Key); err != nil {
		return err
	}
	rv := &valueReceiver{s: s}
	defer rv.release()
	if err := rv.add(first.Data); err != nil {
		return err
	}
	for {
		c, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if len(c.Key) != 0 {
			return status.Error(codes.InvalidArgument, "psstore: put: only the first chunk may name the key")
		}
		if err := rv.add(c.Data); err != nil {
			return err
		}
	}
	val := rv.buf
	if val == nil {
		val = []byte{}
	}
	unlock := s.keyLock(first.Key)
	err = s.db.Update(func(txn *badger.Txn) error { return txn.Set(kvKey(first.Key), val) })
	unlock()
	if err != nil {
		return status.Errorf(codes.Internal, "psstore: put %q: %v", first.Key, err)
	}
	return stream.SendAndClose(&pb.PutResponse{})
}

func (r *rpcService) Get(req *pb.GetRequest, stream grpc.ServerStreamingServer[pb.ValueChunk]) error {
	s := r.s
	if len(req.Keys) > s.opts.MaxKeysPerRequest {
		return status.Errorf(codes.InvalidArgument, "psstore: get of %d keys exceeds the limit of %d per request", len(req.Keys), s.opts.MaxKeysPerRequest)
	}
	for _, k := range req.Keys {
		if err := s.checkKey(k); err != nil {
			return err
		}
	}
	for i, k := range req.Keys {
		err := s.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(kvKey(k))
			if errors.Is(err, badger.ErrKeyNotFound) {
				return stream.Send(&pb.ValueChunk{Index: uint32(i), Last: true})
			}
			if err != nil {
				return status.Errorf(codes.Internal, "psstore: get %q: %v", k, err)
			}
			return item.Value(func(v []byte) error {
				off := 0
				for {
					end := min(off+valueChunkBytes, len(v))
					c := &pb.ValueChunk{Index: uint32(i), Found: true, Data: v[off:end], Last: end == len(v)}
					if off == 0 {
						c.Size = uint64(len(v))
					}
					if err := stream.Send(c); err != nil {
						return err
					}
					if end == len(v) {
						return nil
					}
					off = end
				}
			})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *rpcService) Delete(_ context.Context, req *pb.DeleteRequest) (*pb.DeleteResponse, error) {
	s := r.s
	if err := s.checkKey(req.Key); err != nil {
		return nil, err
	}
	unlock := s.keyLock(req.Key)
	err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(kvKey(req.Key)) })
	unlock()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "psstore: delete %q: %v", req.Key, err)
	}
	return &pb.DeleteResponse{}, nil
}

// listBatch bounds one List message: keys and bytes.
const (
	listBatchKeys  = 4096
	listBatchBytes = 1 << 20
)

func (r *rpcService) List(req *pb.ListRequest, stream grpc.ServerStreamingServer[pb.ListResponse]) error {
	s := r.s
	if len(req.Prefix) > s.opts.MaxKeyBytes {
		return status.Errorf(codes.InvalidArgument, "psstore: prefix of %d bytes exceeds the key limit of %d", len(req.Prefix), s.opts.MaxKeyBytes)
	}
	prefix := kvKey(req.Prefix)
	return s.db.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = prefix
		it := txn.NewIterator(opt)
		defer it.Close()
		batch := &pb.ListResponse{}
		size := 0
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			k := it.Item().KeyCopy(nil)[len(kvPrefix):]
			batch.Keys = append(batch.Keys, k)
			size += len(k)
			if len(batch.Keys) == listBatchKeys || size >= listBatchBytes {
				if err := stream.Send(batch); err != nil {
					return err
				}
				batch, size = &pb.ListResponse{}, 0
			}
		}
		if len(batch.Keys) > 0 {
			return stream.Send(batch)
		}
		return nil
	})
}

func (r *rpcService) Merge(stream grpc.ClientStreamingServer[pb.MergeChunk, pb.MergeResponse]) error {
	s := r.s
	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return status.Error(codes.InvalidArgument, "psstore: merge: empty stream")
		}
		return err
	}
	if err := s.checkKey(first.Key); err != nil {
		return err
	}
	op := first.Op
	var fn MergeFunc
	switch op {
	case pb.MergeOp_MERGE_OP_SUM, pb.MergeOp_MERGE_OP_MIN, pb.MergeOp_MERGE_OP_MAX, pb.MergeOp_MERGE_OP_APPEND:
	case pb.MergeOp_MERGE_OP_FUNC:
		if fn = lookupMergeFunc(first.Func); fn == nil {
			return status.Errorf(codes.Unimplemented, "psstore: merge %q: this shard knows no merge function %q; run shards of the same stratus version as the client", first.Key, first.Func)
		}
	default:
		return status.Errorf(codes.InvalidArgument, "psstore: merge %q: unknown op %v", first.Key, op)
	}
	rv := &valueReceiver{s: s}
	defer rv.release()
	if err := rv.add(first.Data); err != nil {
		return err
	}
	for {
		c, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if len(c.Key) != 0 || c.Op != pb.MergeOp_MERGE_OP_UNSPECIFIED || c.Func != "" {
			return status.Error(codes.InvalidArgument, "psstore: merge: only the first chunk may name the key and op")
		}
		if err := rv.add(c.Data); err != nil {
			return err
		}
	}
	operand := rv.buf
	if op != pb.MergeOp_MERGE_OP_APPEND && op != pb.MergeOp_MERGE_OP_FUNC && len(operand)%4 != 0 {
		return status.Errorf(codes.InvalidArgument, "psstore: merge %q: operand of %d bytes is not a float32 vector", first.Key, len(operand))
	}
	unlock := s.keyLock(first.Key)
	defer unlock()
	var size int
	err = s.db.Update(func(txn *badger.Txn) error {
		key := kvKey(first.Key)
		var cur []byte
		item, err := txn.Get(key)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return status.Errorf(codes.Internal, "psstore: merge %q: %v", first.Key, err)
		default:
			if err := rv.reserve(item.ValueSize() + int64(len(operand))); err != nil {
				return err
			}
			if cur, err = item.ValueCopy(nil); err != nil {
				return status.Errorf(codes.Internal, "psstore: merge %q: %v", first.Key, err)
			}
		}
		var next []byte
		if fn != nil {
			if next, err = fn(cur, operand); err != nil {
				return status.Errorf(codes.FailedPrecondition, "psstore: merge %q with %s: %v", first.Key, first.Func, err)
			}
		} else if cur == nil {
			next = operand
			if next == nil {
				next = []byte{}
			}
		} else if next, err = mergeValues(op, cur, operand); err != nil {
			return status.Errorf(codes.FailedPrecondition, "psstore: merge %q: %v", first.Key, err)
		}
		if int64(len(next)) > s.opts.MaxValueBytes {
			return status.Errorf(codes.ResourceExhausted, "psstore: merge %q: result of %d bytes exceeds the value limit of %d", first.Key, len(next), s.opts.MaxValueBytes)
		}
		size = len(next)
		return txn.Set(key, next)
	})
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		return status.Errorf(codes.Internal, "psstore: merge %q: %v", first.Key, err)
	}
	return stream.SendAndClose(&pb.MergeResponse{Size: uint64(size)})
}

// mergeValues folds operand into cur. Float ops work element-wise on
// little-endian float32 vectors of equal length (the result is written into
// cur); min and max follow Go's comparison, so a NaN on either side is kept
// only when it is already stored. Append concatenates bytes.
func mergeValues(op pb.MergeOp, cur, operand []byte) ([]byte, error) {
	if op == pb.MergeOp_MERGE_OP_APPEND {
		out := make([]byte, 0, len(cur)+len(operand))
		return append(append(out, cur...), operand...), nil
	}
	if len(cur) != len(operand) {
		return nil, fmt.Errorf("stored value has %d bytes, operand %d: float merges need vectors of equal length", len(cur), len(operand))
	}
	for i := 0; i+4 <= len(cur); i += 4 {
		a := math.Float32frombits(binary.LittleEndian.Uint32(cur[i:]))
		b := math.Float32frombits(binary.LittleEndian.Uint32(operand[i:]))
		switch op {
		case pb.MergeOp_MERGE_OP_SUM:
			a += b
		case pb.MergeOp_MERGE_OP_MIN:
			if b < a {
				a = b
			}
		case pb.MergeOp_MERGE_OP_MAX:
			if b > a {
				a = b
			}
		}
		binary.LittleEndian.PutUint32(cur[i:], math.Float32bits(a))
	}
	return cur, nil
}
