package psstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	pb "github.com/stratus-ml/stratus/psstore/proto"
)

// Version is reported in Hello.
const Version = "psstore/1"

// valueChunkBytes is the largest value piece in one message; values above
// it are streamed in several.
const valueChunkBytes = 4 << 20

// ServerOptions configures one shard. Zero fields take the defaults noted.
type ServerOptions struct {
	// DataDir holds the shard's badger database (required).
	DataDir string
	// Token every request must carry (required).
	Token string
	// TLSCertFile and TLSKeyFile (PEM) enable TLS; alternatively set TLS.
	TLSCertFile, TLSKeyFile string
	TLS                     *tls.Config
	// CheckpointInterval is how often changed models are checkpointed:
	// 0 means 30 s, negative disables periodic checkpoints (Snapshot,
	// CreateModel and Close still checkpoint).
	CheckpointInterval time.Duration
	// MaxMessageBytes bounds one received gRPC message (default 16 MiB,
	// at least 5 MiB so a 4 MiB value chunk fits).
	MaxMessageBytes int
	// MaxKeysPerRequest bounds the keys of one sparse pull or push part and
	// of one Get (default 1 Mi).
	MaxKeysPerRequest int
	// MaxValueBytes bounds one KV value (default 64 MiB).
	MaxValueBytes int64
	// MaxKeyBytes bounds one KV key (default 4 KiB).
	MaxKeyBytes int
	// MaxModels bounds the models on the shard (default 64).
	MaxModels int
	// MaxModelBytes bounds the memory of all model slices on the shard,
	// weights plus optimizer state (default 4 GiB).
	MaxModelBytes int64
	// MaxInflightBytes bounds the KV value bytes held for requests being
	// received or merged at once (default 512 MiB); beyond it a request
	// gets ResourceExhausted.
	MaxInflightBytes int64
	// Partitions is the number of partitions of a cluster founded with
	// this shard (the first client to dial a list of shards none of which
	// holds a shard map or data places them): every key range is one of
	// them for the life of the data, and a join or a drain moves whole
	// partitions, so a cluster that will grow needs more partitions than
	// shards. 0 leaves it to PartitionsPerShard. Every shard of a new
	// cluster must agree. A shard that holds data keeps the count it was
	// placed with.
	Partitions int
	// PartitionsPerShard, when Partitions is 0, makes the count this many
	// times the first client's shard count. 0 means 1: one partition per
	// shard, the placement of a fixed address list (StartLocal's).
	PartitionsPerShard int
	// Logf receives background errors (checkpoints, badger warnings);
	// default log.Printf.
	Logf func(format string, args ...any)
}

func (o ServerOptions) withDefaults() (ServerOptions, error) {
	if o.DataDir == "" {
		return o, errors.New("psstore: a data directory is required (--data-dir)")
	}
	if o.Token == "" {
		return o, errors.New("psstore: a token is required (--token or STRATUS_PSSTORE_TOKEN): every request must carry it")
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = 30 * time.Second
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = 16 << 20
	}
	if o.MaxMessageBytes < valueChunkBytes+(1<<20) {
		return o, fmt.Errorf("psstore: MaxMessageBytes %d is below the minimum %d (a 4 MiB value chunk must fit)", o.MaxMessageBytes, valueChunkBytes+(1<<20))
	}
	if o.MaxKeysPerRequest == 0 {
		o.MaxKeysPerRequest = 1 << 20
	}
	if o.MaxValueBytes == 0 {
		o.MaxValueBytes = 64 << 20
	}
	if o.MaxKeyBytes == 0 {
		o.MaxKeyBytes = 4 << 10
	}
	if o.MaxModels == 0 {
		o.MaxModels = 64
	}
	if o.MaxModelBytes == 0 {
		o.MaxModelBytes = 4 << 30
	}
	if o.MaxInflightBytes == 0 {
		o.MaxInflightBytes = 512 << 20
	}
	if o.MaxInflightBytes < o.MaxValueBytes {
		o.MaxInflightBytes = o.MaxValueBytes
	}
	if o.Partitions < 0 || o.Partitions > MaxPartitions {
		return o, fmt.Errorf("psstore: %d partitions: want 1 to %d (or 0 to leave it to the partitions per shard)", o.Partitions, MaxPartitions)
	}
	if o.PartitionsPerShard < 0 || o.PartitionsPerShard > MaxPartitions {
		return o, fmt.Errorf("psstore: %d partitions per shard: want 1 to %d (or 0 for one)", o.PartitionsPerShard, MaxPartitions)
	}
	if o.Logf == nil {
		o.Logf = log.Printf
	}
	if o.TLS == nil && (o.TLSCertFile != "" || o.TLSKeyFile != "") {
		if o.TLSCertFile == "" || o.TLSKeyFile == "" {
			return o, errors.New("psstore: TLS needs both a certificate (--tls-cert) and a key (--tls-key)")
		}
		cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			return o, fmt.Errorf("psstore: load TLS certificate %s and key %s: %w", o.TLSCertFile, o.TLSKeyFile, err)
		}
		o.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return o, nil
}

// MaxPartitions bounds the partition count of a cluster.
const MaxPartitions = 4096

// DefaultPartitionsPerShard is the partitions per shard of a cluster of
// `stratus psstore serve` shards started without --partitions: joins up to
// twice the first shard count each take a share of the partitions, with
// R=1 as with R=2. More partitions cost every pull and push a message per
// partition and copy (make bench-psstore, 2 shards, R=2, 4 clients, on a
// shared 2-core machine: steady pull+push p50 986 µs with 2 partitions,
// 1089 µs with 4, 1635 µs with 8, in one run); a cluster meant to grow
// further is founded with a larger --partitions.
const DefaultPartitionsPerShard = 2

// Server is one psstore shard: a gRPC service over a badger database in
// DataDir. Create it with NewServer, run it with Serve, stop it with Close.
type Server struct {
	opts ServerOptions
	db   *badger.DB
	auth *authenticator
	grpc *grpc.Server

	placeMu sync.Mutex
	place   placement
	placed  bool

	smap shardMapState
	// beforeImport, if set (by tests), is called as ImportPartition starts
	// on partition p, before this member replaces its copy.
	beforeImport atomic.Pointer[func(p uint32)]
	// beforeRefusePush, if set (by tests), is called before a push stream
	// is ended by a refusal of the map gate (MOVED).
	beforeRefusePush atomic.Pointer[func()]

	modelsMu   sync.RWMutex
	models     map[string]*modelShard
	modelBytes uint64

	kvLocks  [256]sync.Mutex // per-key stripes serialising writes and merges
	inflight *semaphore.Weighted
	// inflightHeld is what inflight has given out, in bytes (it cannot be
	// read from the semaphore without taking some).
	inflightHeld atomic.Int64

	// The in-process transport (inproc.go): calls admitted under inprocMu
	// for reading; Close sets inprocDown under it for writing.
	inprocMu     sync.RWMutex
	inprocDown   bool
	inprocClosed atomic.Bool
	inprocCtx    context.Context // ends the in-process streams on Close
	inprocCancel context.CancelFunc

	started  time.Time
	stop     chan struct{}
	loopDone chan struct{}
	closeMu  sync.Mutex
	closed   bool
}

// NewServer opens the shard's data directory, restores every model from its
// last checkpoint and starts the periodic checkpointer.
func NewServer(opts ServerOptions) (*Server, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	db, err := openStore(opts.DataDir, opts.Logf)
	if err != nil {
		return nil, fmt.Errorf("psstore: %w", err)
	}
	s := &Server{
		opts:     opts,
		db:       db,
		auth:     newAuthenticator(opts.Token),
		models:   map[string]*modelShard{},
		inflight: semaphore.NewWeighted(opts.MaxInflightBytes),
		started:  time.Now(),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	s.inprocCtx, s.inprocCancel = context.WithCancel(context.Background())
	if err := s.loadMap(); err != nil {
		s.inprocCancel()
		db.Close()
		return nil, fmt.Errorf("psstore: data dir %s: %w", opts.DataDir, err)
	}
	if err := s.load(); err != nil {
		s.inprocCancel()
		db.Close()
		return nil, fmt.Errorf("psstore: data dir %s: %w", opts.DataDir, err)
	}
	gopts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(opts.MaxMessageBytes),
		grpc.MaxSendMsgSize(opts.MaxMessageBytes),
		grpc.MaxConcurrentStreams(1024),
		grpc.ChainUnaryInterceptor(s.auth.unary, s.mapUnary),
		grpc.ChainStreamInterceptor(s.auth.stream, s.mapStream),
		grpc.InitialWindowSize(1 << 20),
		grpc.InitialConnWindowSize(4 << 20),
	}
	if opts.TLS != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	s.grpc = grpc.NewServer(gopts...)
	pb.RegisterPSStoreServer(s.grpc, &rpcService{s: s})
	go s.checkpointLoop()
	return s, nil
}

// load reads the placement record and every model's last checkpoint.
func (s *Server) load() error {
	p, ok, err := loadPlacement(s.db)
	if err != nil {
		return err
	}
	s.place, s.placed = p, ok
	names, err := listModels(s.db)
	if err != nil {
		return err
	}
	for _, name := range names {
		meta, ok, err := readMeta(s.db, name)
		if err != nil || !ok {
			return fmt.Errorf("model %q: %v", name, err)
		}
		st, err := readCheckpoint(s.db, meta)
		if err != nil {
			return err
		}
		// Drop chunks of other generations (an interrupted checkpoint).
		if err := deletePrefixExcept(s.db, chunksPrefix(name), chunkKeyPrefix(name, meta.Gen)); err != nil {
			return err
		}
		m := newModelShard(meta.Spec, meta.ShardIndex, meta.ShardCount)
		if m.localDim != meta.LocalDim {
			return fmt.Errorf("model %q: checkpoint holds %d coordinates, spec implies %d", name, meta.LocalDim, m.localDim)
		}
		m.restore(st)
		m.incarnation = meta.Incarnation
		m.epoch.Store(meta.Epoch)
		var mark uint64
		var marked bool
		if err := s.db.View(func(txn *badger.Txn) (err error) {
			mark, marked, err = readDirtyMark(txn, name)
			return err
		}); err != nil {
			return err
		}
		if marked && mark >= meta.Epoch {
			why := fmt.Sprintf("the shard stopped without saving (killed or crashed) while this model had updates newer than its last checkpoint (%s, %d updates), which it came back from; its slice no longer matches the other shards'",
				time.Unix(0, meta.UnixNano).UTC().Format(time.RFC3339), meta.Updates)
			m.lost.Store(&why)
			s.opts.Logf("psstore: model %q: %s", name, why)
		}
		if why, ok, err := readFence(s.db, name); err != nil {
			return err
		} else if ok {
			m.lost.Store(&why)
		}
		m.ckGen = meta.Gen
		m.checkpoints.Store(meta.Checkpoints)
		m.checkpointUpdates.Store(meta.Updates)
		m.checkpointPushes.Store(meta.Pushes)
		m.checkpointNano.Store(meta.UnixNano)
		s.models[name] = m
		s.modelBytes += modelBytes(m.spec, m.localDim)
	}
	return nil
}

// Serve answers requests on lis until Close; it returns nil after Close.
func (s *Server) Serve(lis net.Listener) error {
	err := s.grpc.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Close stops the shard: it refuses new requests, lets those in flight
// finish (for up to two seconds), cuts the long-lived push and pull streams
// (a push not yet acknowledged may or may not have been applied),
// checkpoints every model changed since its last checkpoint and closes the
// database. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.auth.drain(2 * time.Second)
	s.grpc.Stop()
	s.stopInproc()
	close(s.stop)
	<-s.loopDone
	err := s.checkpointDirty()
	if cerr := s.db.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("psstore: close data dir %s: %w", s.opts.DataDir, cerr)
	}
	return err
}

// AuthFailures is the number of requests refused for a missing or wrong token.
func (s *Server) AuthFailures() uint64 { return s.auth.failures.Load() }

// ServeContext answers requests on lis until ctx is done or serving fails,
// then closes the server. `stratus psstore serve` starts a shard in two steps
// (NewServer, then ServeContext) to report a bad configuration before it announces
// itself; StartLocal runs in-process shards.
func (s *Server) ServeContext(ctx context.Context, lis net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(lis) }()
	select {
	case <-ctx.Done():
		err := s.Close()
		<-errc
		return err
	case err := <-errc:
		cerr := s.Close()
		if err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("psstore: serve on %s: %w", lis.Addr(), err)
		}
		return nil
	}
}

// checkpointLoop checkpoints changed models every CheckpointInterval and
// lets badger reclaim value-log space the previous checkpoints used.
func (s *Server) checkpointLoop() {
	defer close(s.loopDone)
	if s.opts.CheckpointInterval < 0 {
		<-s.stop
		return
	}
	t := time.NewTicker(s.opts.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.checkpointDirty(); err != nil {
				s.opts.Logf("psstore: periodic checkpoint: %v", err)
			}
			for s.db.RunValueLogGC(0.5) == nil {
			}
		}
	}
}

// checkpointDirty checkpoints every model whose counters moved since its
// last checkpoint, and returns the first error.
func (s *Server) checkpointDirty() error {
	s.modelsMu.RLock()
	ms := make([]*modelShard, 0, len(s.models))
	for _, m := range s.models {
		ms = append(ms, m)
	}
	s.modelsMu.RUnlock()
	var first error
	for _, m := range ms {
		if m.lostReason() != "" || !m.dirty.Load() && m.updates.Load() == m.checkpointUpdates.Load() && m.pushes.Load() == m.checkpointPushes.Load() {
			continue
		}
		if err := s.checkpoint(m); err != nil && first == nil && !errors.Is(err, errModelDeleted) {
			first = err
		}
	}
	return first
}

var errModelDeleted = errors.New("model was deleted")

// checkpoint writes m's current state as its last checkpoint.
func (s *Server) checkpoint(m *modelShard) error {
	m.ckMu.Lock()
	defer m.ckMu.Unlock()
	if m.deleted {
		return errModelDeleted
	}
	st := m.snapshot()
	meta, err := writeCheckpoint(s.db, m, st, m.ckGen, m.checkpoints.Load()+1)
	if err != nil {
		return err
	}
	m.ckGen = meta.Gen
	m.checkpoints.Add(1)
	m.checkpointUpdates.Store(st.updates)
	m.checkpointPushes.Store(st.pushes)
	m.checkpointNano.Store(meta.UnixNano)
	return nil
}

// model finds a model slice or answers NotFound.
func (s *Server) model(name string) (*modelShard, error) {
	s.modelsMu.RLock()
	m := s.models[name]
	s.modelsMu.RUnlock()
	if m == nil {
		return nil, status.Errorf(codes.NotFound, "psstore: model %q does not exist on this shard: create it with CreateModel first", name)
	}
	return m, nil
}

// liveModel is model for the requests that read or change the weights: a
// slice that lost updates answers DataLoss.
func (s *Server) liveModel(name string) (*modelShard, error) {
	m, err := s.model(name)
	if err == nil && m.lostReason() != "" {
		return nil, status.Errorf(codes.DataLoss,
			"psstore: model %q on this shard lost updates: %s. Delete the model (`stratus psstore rm`) and train it again; `stratus apply` does so by itself", name, m.lostReason())
	}
	return m, err
}

// rpcService implements the gRPC service on a Server.
type rpcService struct {
	pb.UnimplementedPSStoreServer
	s *Server
}

func (r *rpcService) Hello(_ context.Context, req *pb.HelloRequest) (*pb.HelloResponse, error) {
	s := r.s
	p := placement{req.ShardIndex, req.ShardCount}
	if !req.Joined && p.index >= p.count {
		return nil, status.Errorf(codes.InvalidArgument, "psstore: shard index %d of %d is impossible", p.index, p.count)
	}
	if req.Joined {
		p.index = p.count // no home partition
	}
	if err := s.checkPlacement(p); err != nil {
		return nil, err
	}
	return &pb.HelloResponse{
		ShardIndex:        req.ShardIndex,
		ShardCount:        req.ShardCount,
		ServerVersion:     Version,
		MaxKeysPerRequest: uint64(s.opts.MaxKeysPerRequest),
		MaxValueBytes:     uint64(s.opts.MaxValueBytes),
	}, nil
}

// checkPlacement records p on a fresh shard and refuses a different one later.
func (s *Server) checkPlacement(p placement) error {
	if p.count == 0 || p.index > p.count {
		return status.Errorf(codes.InvalidArgument, "psstore: shard index %d of %d is impossible", p.index, p.count)
	}
	s.placeMu.Lock()
	defer s.placeMu.Unlock()
	if !s.placed {
		if err := savePlacement(s.db, p); err != nil {
			return status.Errorf(codes.Internal, "psstore: record shard placement: %v", err)
		}
		s.place, s.placed = p, true
		return nil
	}
	if s.place != p {
		return status.Errorf(codes.FailedPrecondition,
			"psstore: data dir %s holds shard %d of %d, but the client addressed it as shard %d of %d: "+
				"give the client the same shard addresses, in the same order, as when the data was written, "+
				"or start this shard on an empty --data-dir",
			s.opts.DataDir, s.place.index, s.place.count, p.index, p.count)
	}
	return nil
}

// checkReplica accepts a replica slice of partition idx of n on a shard
// placed in a cluster of n shards, other than its own partition.
func (s *Server) checkReplica(idx, n uint32) error {
	s.placeMu.Lock()
	defer s.placeMu.Unlock()
	switch {
	case !s.placed:
		return status.Errorf(codes.FailedPrecondition, "psstore: a replica on a shard that no client has placed yet: greet it (Hello) first")
	case n != s.place.count || idx >= n:
		return status.Errorf(codes.FailedPrecondition, "psstore: replica of partition %d of %d on shard %d of %d: the client's cluster has another size", idx, n, s.place.index, s.place.count)
	case idx == s.place.index:
		return status.Errorf(codes.InvalidArgument, "psstore: a replica of partition %d on its own primary shard", idx)
	}
	return nil
}

func (r *rpcService) Stats(context.Context, *pb.StatsRequest) (*pb.StatsResponse, error) {
	s := r.s
	s.modelsMu.RLock()
	n, b := len(s.models), s.modelBytes
	lost := 0
	for _, m := range s.models {
		if m.lostReason() != "" {
			lost++
		}
	}
	s.modelsMu.RUnlock()
	s.placeMu.Lock()
	place, placed := s.place, s.placed
	s.placeMu.Unlock()
	lsm, vlog := s.db.Size()
	return &pb.StatsResponse{
		AuthFailures:  s.auth.failures.Load(),
		Requests:      s.auth.requests.Load(),
		Models:        uint32(n),
		ModelBytes:    b,
		StartUnixNano: s.started.UnixNano(),
		Placed:        placed,
		ShardIndex:    place.index,
		ShardCount:    place.count,
		DiskBytes:     uint64(lsm + vlog),
		LostModels:    uint32(lost),
	}, nil
}
