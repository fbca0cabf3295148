package psstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/stratus-ml/stratus/psstore/proto"
)

// The shard map on a member (see Elasticity in the package documentation).

// mapMetadataKey is the gRPC metadata entry carrying the version of the
// client's shard map ("1" when absent: a static cluster).
const mapMetadataKey = "psstore-map-version"

const (
	mapKey  = "p\x00map"
	selfKey = "p\x00self"
)

// mapWaitMax bounds how long a member waits to be given the newer map a
// request was made with before answering Unavailable.
const mapWaitMax = 30 * time.Second

// shardMapState is a member's map and the gate that orders requests
// against installs.
type shardMapState struct {
	// gate is held for reading by every versioned request while it runs and
	// for writing by InstallMap, so that once an install returns no request
	// made with an older map is still being applied.
	gate    sync.RWMutex
	mu      sync.Mutex
	m       *ShardMap // nil: static (version 1)
	self    string    // this member's address in m
	version uint64
	changed chan struct{} // closed and replaced on every install
	// waiting counts the requests waiting for a newer map right now.
	waiting atomic.Int64
}

func (st *shardMapState) current() (*ShardMap, uint64, chan struct{}) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.m, st.version, st.changed
}

// errMoved is the refusal of a request made with an older map.
func errMoved(have, req uint64) error {
	return status.Errorf(codes.Aborted, "psstore: MOVED %d: the cluster's shard map changed (this member has version %d, the request was made with version %d); refresh the map and retry", have, have, req)
}

// movedVersion returns the map version of a MOVED refusal, anywhere in
// err's chain.
func movedVersion(err error) (uint64, bool) {
	var gs interface{ GRPCStatus() *status.Status }
	if err == nil || !errors.As(err, &gs) {
		return 0, false
	}
	st := gs.GRPCStatus()
	if st.Code() != codes.Aborted {
		return 0, false
	}
	rest, found := strings.CutPrefix(st.Message(), "psstore: MOVED ")
	if !found {
		return 0, false
	}
	num, _, _ := strings.Cut(rest, ":")
	v, perr := strconv.ParseUint(num, 10, 64)
	return v, perr == nil
}

// requestVersion is the map version a request was made with.
func requestVersion(ctx context.Context) uint64 {
	vals := metadata.ValueFromIncomingContext(ctx, mapMetadataKey)
	if len(vals) != 1 {
		return 1
	}
	v, err := strconv.ParseUint(vals[0], 10, 64)
	if err != nil || v == 0 {
		return 1
	}
	return v
}

// messageVersion is the map version a message of a long-lived stream
// (Push, PullStream) was routed with: its own, or, from a client that sets
// none, the stream's (stream) — the version the stream was opened with,
// which may be older than the map the client routes with now.
func messageVersion(stream, msg uint64) uint64 {
	if msg != 0 {
		return msg
	}
	return stream
}

// enterVersion admits a request made with map version v: it waits (up to
// mapWaitMax or ctx) while the member's map is older than v, refuses it
// with MOVED when the member's is newer, and otherwise holds the gate for
// reading until the returned release is called.
func (s *Server) enterVersion(ctx context.Context, v uint64) (release func(), err error) {
	return s.enterVersionFor(ctx, v, "")
}

// enterVersionFor is enterVersion for a request on the slice named model:
// one made with an older map is admitted as long as this member still
// holds that slice's partition (its copy did not move), so a change of
// the map does not refuse pushes and pulls of the partitions it left in
// place.
func (s *Server) enterVersionFor(ctx context.Context, v uint64, model string) (release func(), err error) {
	st := &s.smap
	var timeout <-chan time.Time
	for {
		_, have, changed := st.current()
		if have < v {
			if timeout == nil {
				t := time.NewTimer(mapWaitMax)
				defer t.Stop()
				timeout = t.C
				st.waiting.Add(1)
				defer st.waiting.Add(-1)
			}
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return nil, status.FromContextError(ctx.Err()).Err()
			case <-timeout:
				return nil, status.Errorf(codes.Unavailable, "psstore: the request was made with shard map version %d, but this member still has version %d after %s", v, have, mapWaitMax)
			}
		}
		st.gate.RLock()
		if _, now, _ := st.current(); now != have {
			st.gate.RUnlock()
			continue
		}
		if have > v && !s.stillHolds(model) {
			st.gate.RUnlock()
			return nil, errMoved(have, v)
		}
		return st.gate.RUnlock, nil
	}
}

// stillHolds reports whether this member holds the slice named model and
// its partition in its current map. Called with the gate held.
func (s *Server) stillHolds(model string) bool {
	if model == "" {
		return false
	}
	s.modelsMu.RLock()
	m := s.models[model]
	s.modelsMu.RUnlock()
	cur, _, _ := s.smap.current()
	if m == nil || cur == nil || int(m.shardIndex) >= len(cur.Owners) {
		return false
	}
	s.smap.mu.Lock()
	self := s.smap.self
	s.smap.mu.Unlock()
	return self != "" && slices.Contains(cur.Owners[m.shardIndex], self)
}

// unversioned names the methods that work whatever map the caller has.
var unversioned = map[string]bool{
	pb.PSStore_Hello_FullMethodName:           true,
	pb.PSStore_Stats_FullMethodName:           true,
	pb.PSStore_GetMap_FullMethodName:          true,
	pb.PSStore_InstallMap_FullMethodName:      true,
	pb.PSStore_ExportPartition_FullMethodName: true,
	pb.PSStore_ImportPartition_FullMethodName: true,
	pb.PSStore_DropPartition_FullMethodName:   true,
	pb.PSStore_ListModels_FullMethodName:      true,
	pb.PSStore_ModelStats_FullMethodName:      true,
}

func (s *Server) mapUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if unversioned[info.FullMethod] {
		return h(ctx, req)
	}
	release, err := s.enterVersion(ctx, requestVersion(ctx))
	if err != nil {
		return nil, err
	}
	defer release()
	return h(ctx, req)
}

func (s *Server) mapStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if unversioned[info.FullMethod] || longLived[info.FullMethod] {
		// Long-lived streams are admitted message by message (Push,
		// PullStream).
		return h(srv, ss)
	}
	release, err := s.enterVersion(ss.Context(), requestVersion(ss.Context()))
	if err != nil {
		return err
	}
	defer release()
	return h(srv, ss)
}

func (s *Server) loadMap() error {
	s.smap.changed = make(chan struct{})
	s.smap.version = 1
	return s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(mapKey))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := item.Value(func(v []byte) error {
			m, err := UnmarshalMap(v)
			if err != nil {
				return err
			}
			s.smap.m, s.smap.version = m, m.Version
			return nil
		}); err != nil {
			return err
		}
		if item, err = txn.Get([]byte(selfKey)); err == nil {
			return item.Value(func(v []byte) error { s.smap.self = string(v); return nil })
		}
		return nil
	})
}

// Map returns the newest shard map this member holds (nil for a static
// cluster that never changed).
func (s *Server) Map() *ShardMap {
	m, _, _ := s.smap.current()
	if m == nil {
		return nil
	}
	return m.Clone()
}

// installMap stores m if it is newer than the member's map. Once it
// returns, no request made with an older map is running or will run.
func (s *Server) installMap(m *ShardMap, self string) error {
	st := &s.smap
	st.gate.Lock()
	defer st.gate.Unlock()
	cur, have, _ := st.current()
	// Version 1 is the static list of the last client that dialled one: it
	// may be given again, with other addresses (a restarted shard).
	if m.Version < have || (m.Version == have && cur != nil && have > 1) {
		return nil
	}
	b, err := MarshalMap(m)
	if err != nil {
		return err
	}
	if _, ok := m.Member(self); !ok && self != "" {
		self = "" // a member drained out of the map
	}
	if err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set([]byte(selfKey), []byte(self)); err != nil {
			return err
		}
		return txn.Set([]byte(mapKey), b)
	}); err != nil {
		return fmt.Errorf("store shard map: %w", err)
	}
	st.mu.Lock()
	st.m, st.version, st.self = m.Clone(), m.Version, self
	close(st.changed)
	st.changed = make(chan struct{})
	st.mu.Unlock()
	s.opts.Logf("psstore: shard map version %d installed (%d members)", m.Version, len(m.Members))
	return nil
}

func (r *rpcService) GetMap(context.Context, *pb.GetMapRequest) (*pb.MapResponse, error) {
	m, v, _ := r.s.smap.current()
	resp := &pb.MapResponse{Version: v}
	if m != nil {
		b, err := MarshalMap(m)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "psstore: %v", err)
		}
		resp.Map = b
		return resp, nil
	}
	// No map yet: the partition count this member asks a new cluster for.
	r.s.placeMu.Lock()
	place, placed := r.s.place, r.s.placed
	r.s.placeMu.Unlock()
	switch {
	case placed:
		resp.Partitions = place.count
	case r.s.opts.Partitions > 0:
		resp.Partitions = uint32(r.s.opts.Partitions)
	default:
		resp.PartitionsPerShard = uint32(r.s.opts.PartitionsPerShard)
	}
	return resp, nil
}

func (r *rpcService) InstallMap(_ context.Context, req *pb.InstallMapRequest) (*pb.MapResponse, error) {
	m, err := UnmarshalMap(req.Map)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "psstore: install map: %v", err)
	}
	if err := r.s.installMap(m, req.Member); err != nil {
		return nil, status.Errorf(codes.Internal, "psstore: install map: %v", err)
	}
	return r.GetMap(context.Background(), nil)
}

// partitionOfKey is a KV key's partition of n.
func partitionOfKey(key []byte, n uint32) uint32 { return uint32(fnv1a64(string(key)) % uint64(n)) }

// exportChunk bounds the value bytes of one PartitionItem.
const exportChunk = 2 << 20

func (r *rpcService) ExportPartition(req *pb.PartitionRequest, stream grpc.ServerStreamingServer[pb.PartitionItem]) error {
	s := r.s
	if req.Partitions == 0 || req.Partition >= req.Partitions {
		return status.Errorf(codes.InvalidArgument, "psstore: export partition %d of %d is impossible", req.Partition, req.Partitions)
	}
	// Model slices first: each is a consistent snapshot of weights and
	// counters.
	s.modelsMu.RLock()
	var slices []*modelShard
	var names []string
	for name, m := range s.models {
		if uint32(m.shardIndex) == req.Partition && uint32(m.shardCount) == req.Partitions {
			slices, names = append(slices, m), append(names, name)
		}
	}
	s.modelsMu.RUnlock()
	for i, m := range slices {
		if why := m.lostReason(); why != "" {
			return status.Errorf(codes.DataLoss, "psstore: export partition %d: model slice %q lost updates (%s): delete the model before moving it", req.Partition, names[i], why)
		}
		base, _, _ := SplitReplicaName(names[i])
		st := m.snapshot()
		it := &pb.PartitionItem{Model: base, Spec: m.spec.toProto(), Incarnation: m.incarnation,
			Pushes: st.pushes, Updates: st.updates, Weights: floatsToBytes(st.w)}
		if st.st != nil {
			it.State = floatsToBytes(st.st)
		}
		if err := stream.Send(it); err != nil {
			return err
		}
	}
	return s.db.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = []byte(kvPrefix)
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Seek(opt.Prefix); it.ValidForPrefix(opt.Prefix); it.Next() {
			key := it.Item().Key()[len(kvPrefix):]
			if partitionOfKey(key, req.Partitions) != req.Partition {
				continue
			}
			val, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			first := &pb.PartitionItem{Key: append([]byte(nil), key...)}
			for {
				n := min(len(val), exportChunk)
				first.Value = val[:n]
				if err := stream.Send(first); err != nil {
					return err
				}
				val = val[n:]
				if len(val) == 0 {
					break
				}
				first = &pb.PartitionItem{}
			}
		}
		return nil
	})
}

// dropPartition deletes this member's copy of partition p of n: its KV
// keys and its model slices.
func (s *Server) dropPartition(p, n uint32) (keys, models uint64, err error) {
	s.modelsMu.Lock()
	drop := map[string]*modelShard{}
	for name, m := range s.models {
		if uint32(m.shardIndex) == p && uint32(m.shardCount) == n {
			drop[name] = m
			s.forgetModelLocked(name, m)
		}
	}
	s.modelsMu.Unlock()
	for name, m := range drop { // every one, so that each is marked deleted
		if derr := s.deleteModel(name, m); derr != nil && err == nil {
			err = derr
		}
	}
	if err != nil {
		return 0, 0, err
	}
	prefix := []byte(kvPrefix)
	del, err := deleteWhere(s.db, prefix, func(k []byte) bool { return partitionOfKey(k[len(prefix):], n) == p })
	if err != nil {
		return 0, 0, err
	}
	return uint64(del), uint64(len(drop)), nil
}

func (r *rpcService) DropPartition(_ context.Context, req *pb.PartitionRequest) (*pb.ImportResponse, error) {
	if req.Partitions == 0 || req.Partition >= req.Partitions {
		return nil, status.Errorf(codes.InvalidArgument, "psstore: drop partition %d of %d is impossible", req.Partition, req.Partitions)
	}
	k, m, err := r.s.dropPartition(req.Partition, req.Partitions)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "psstore: drop partition %d: %v", req.Partition, err)
	}
	return &pb.ImportResponse{Keys: k, Models: m}, nil
}

// ImportPartition replaces this member's copy of a partition with the
// stream's. The first item names the partition; every write is synced
// before the response.
func (r *rpcService) ImportPartition(stream grpc.ClientStreamingServer[pb.PartitionItem, pb.ImportResponse]) error {
	s := r.s
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	p, n, home := first.Partition, first.Partitions, first.Home
	if n == 0 || p >= n {
		return status.Errorf(codes.InvalidArgument, "psstore: import partition %d of %d is impossible", p, n)
	}
	if hook := s.beforeImport.Load(); hook != nil {
		(*hook)(p)
	}
	if _, _, err := s.dropPartition(p, n); err != nil {
		return status.Errorf(codes.Internal, "psstore: import partition %d: %v", p, err)
	}
	var resp pb.ImportResponse
	var key, val []byte
	// The keys go in one write batch, flushed (synced) before the response:
	// one synced transaction per key held the moving partition's requests
	// for an fsync per key.
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	flushKV := func() error {
		if key == nil {
			return nil
		}
		err := wb.Set(kvKey(key), val)
		key, val = nil, nil
		resp.Keys++
		return err
	}
	it := first
	for {
		switch {
		case it.Model != "":
			if err := flushKV(); err != nil {
				return status.Errorf(codes.Internal, "psstore: import: %v", err)
			}
			if err := s.importSlice(it, p, n, home); err != nil {
				return err
			}
			resp.Models++
		case it.Key != nil:
			if err := flushKV(); err != nil {
				return status.Errorf(codes.Internal, "psstore: import: %v", err)
			}
			key, val = it.Key, append([]byte(nil), it.Value...)
		case key != nil:
			val = append(val, it.Value...)
		}
		it, err = stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := flushKV(); err != nil {
		return status.Errorf(codes.Internal, "psstore: import: %v", err)
	}
	if err := wb.Flush(); err != nil {
		return status.Errorf(codes.Internal, "psstore: import: %v", err)
	}
	return stream.SendAndClose(&resp)
}

func (s *Server) importSlice(it *pb.PartitionItem, p, n uint32, home bool) error {
	spec, err := specFromProto(it.Spec)
	if err == nil {
		spec, err = spec.normalize()
	}
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "psstore: import model %q: %v", it.Model, err)
	}
	name := it.Model
	if !home {
		name = ReplicaName(it.Model, int(p))
	}
	spec.Name = name
	m := newModelShard(spec, uint64(p), uint64(n))
	w, err := bytesToFloats(it.Weights)
	if err != nil || uint64(len(w)) != m.localDim {
		return status.Errorf(codes.InvalidArgument, "psstore: import model %q: %d weights, want %d", it.Model, len(w), m.localDim)
	}
	st := modelState{w: w, pushes: it.Pushes, updates: it.Updates}
	if m.stride == 2 {
		if st.st, err = bytesToFloats(it.State); err != nil || len(st.st) != len(w) {
			return status.Errorf(codes.InvalidArgument, "psstore: import model %q: optimizer state of %d bytes, want %d", it.Model, len(it.State), 4*len(w))
		}
	}
	m.restore(st)
	m.incarnation = it.Incarnation
	need := modelBytes(spec, m.localDim)
	s.modelsMu.Lock()
	defer s.modelsMu.Unlock()
	if old := s.models[name]; old != nil {
		return status.Errorf(codes.AlreadyExists, "psstore: import model %q: a slice of another partition already has that name", name)
	}
	if len(s.models) >= s.opts.MaxModels || s.modelBytes+need > uint64(s.opts.MaxModelBytes) || need > math.MaxInt64 {
		return status.Errorf(codes.ResourceExhausted, "psstore: import model %q: the shard is full (%d models, %d of %d bytes)", name, len(s.models), s.modelBytes, s.opts.MaxModelBytes)
	}
	if err := s.checkpoint(m); err != nil {
		return status.Errorf(codes.Internal, "psstore: import model %q: %v", name, err)
	}
	s.models[name] = m
	s.modelBytes += need
	return nil
}
