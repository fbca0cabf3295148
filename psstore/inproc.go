package psstore

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The in-process transport: when a shard the client dials lives in this
// process (started by StartLocal, as the embedded default runs it), the
// client calls the shard directly instead of over loopback gRPC.
//
//   - PullSparse reads the slice's weights straight into the client's plan
//     (one copy, then the scatter into the caller's buffer), without
//     encoding keys or values.
//   - PushSparse applies the summed gradients in the caller's goroutine
//     when that cannot wait (localPush.inline), else copies them into a
//     queued push that a goroutine of the client applies to the slice in
//     order, one queue per shard: the same window, ordering, Flush and
//     late-error contract as the gRPC push stream (see PushSparse), without
//     encoding.
//   - PullDense copies the slice once into the result.
//   - Every other call runs the shard's gRPC handler directly, with the
//     messages passed by pointer (streams through an in-process pipe that
//     clones each message, so neither side sees the other's buffers).
//
// Everything the shard checks on the gRPC path it checks here too (model
// lost, key out of range, limits, shutting down), with the same status
// codes and messages, so errors, failover and retries behave the same.
// WithFloat16 rounds values to binary16 both ways as its wire would, so
// results do not depend on the transport. The token is checked once, when
// the client dials (a client with another token uses gRPC and is refused
// there); TLS on either side keeps gRPC.

// Transport selects how a Client reaches its shards.
type Transport int

const (
	// TransportAuto calls shards that live in this process directly and
	// dials the others over gRPC (the default).
	TransportAuto Transport = iota
	// TransportGRPC always uses gRPC, even for shards in this process.
	TransportGRPC
)

func (t Transport) String() string {
	if t == TransportGRPC {
		return "grpc"
	}
	return "auto"
}

// TransportEnv names the environment variable that, set to "grpc", makes
// every Client use gRPC even to shards in its own process (to measure the
// in-process transport against it, or to rule it out).
const TransportEnv = "STRATUS_PSSTORE_TRANSPORT"

// WithTransport selects the transport (default TransportAuto, or
// TransportGRPC when $STRATUS_PSSTORE_TRANSPORT is "grpc").
func WithTransport(t Transport) Option {
	return func(o *clientOptions) { o.transport, o.transportSet = t, true }
}

func transportFromEnv() (Transport, error) {
	switch v := os.Getenv(TransportEnv); v {
	case "", "auto":
		return TransportAuto, nil
	case "grpc":
		return TransportGRPC, nil
	default:
		return 0, fmt.Errorf("psstore: $%s=%q: want \"auto\" or \"grpc\"", TransportEnv, v)
	}
}

// inprocShards are the shards of this process by listening address.
var inprocShards struct {
	mu sync.Mutex
	m  map[string]*inprocEntry
}

// inprocEntry is a shard of this process, registered before it is open
// (StartLocalAsync): ready is closed once srv or err is set.
type inprocEntry struct {
	ready chan struct{}
	srv   *Server
	err   error
	wake  func() // opens a lazy cluster (StartLocalLazy); nil for others
}

func registerPending(addr string) *inprocEntry {
	e := &inprocEntry{ready: make(chan struct{})}
	inprocShards.mu.Lock()
	defer inprocShards.mu.Unlock()
	if inprocShards.m == nil {
		inprocShards.m = map[string]*inprocEntry{}
	}
	inprocShards.m[addr] = e
	return e
}

// resolve records the shard's start. A failed one stays registered, so a
// client that dials it later is told why it failed (not "connection
// refused"), until its cluster is closed (forget).
func (e *inprocEntry) resolve(s *Server, err error) {
	e.srv, e.err = s, err
	close(e.ready)
}

// forget unregisters entries (a closed LocalCluster's).
func forget(entries []*inprocEntry) {
	inprocShards.mu.Lock()
	defer inprocShards.mu.Unlock()
	for a, x := range inprocShards.m {
		for _, e := range entries {
			if x == e {
				delete(inprocShards.m, a)
			}
		}
	}
}

func unregisterInproc(s *Server) {
	inprocShards.mu.Lock()
	defer inprocShards.mu.Unlock()
	for a, e := range inprocShards.m {
		select {
		case <-e.ready:
			if e.srv == s {
				delete(inprocShards.m, a)
			}
		default:
		}
	}
}

// inprocServer returns the shard of this process at addr that a client
// with options o may call directly, or nil. It waits (within ctx) for a
// shard still opening, and returns the error of one that failed to.
func inprocServer(ctx context.Context, addr string, o *clientOptions) (*Server, error) {
	if o.transport != TransportAuto || o.tls != nil {
		return nil, nil
	}
	inprocShards.mu.Lock()
	e := inprocShards.m[addr]
	inprocShards.mu.Unlock()
	if e == nil {
		return nil, nil
	}
	select {
	case <-e.ready:
	default:
		if e.wake != nil {
			e.wake()
		}
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("psstore: shard at %s (in this process) is still opening: %w", addr, ctx.Err())
		}
	}
	if e.err != nil {
		return nil, fmt.Errorf("psstore: shard at %s (in this process) failed to start: %w", addr, e.err)
	}
	s := e.srv
	if s.opts.TLS != nil {
		return nil, nil
	}
	got := sha256.Sum256([]byte(o.token))
	if subtle.ConstantTimeCompare(got[:], s.auth.want[:]) != 1 {
		return nil, nil // gRPC refuses it, and counts the refusal
	}
	return s, nil
}

// errShuttingDown is what a closing shard answers, on either transport.
func errShuttingDown() error {
	return status.Error(codes.Unavailable, "psstore: shard is shutting down")
}

// inprocEnter admits one in-process call; release must be called when it
// is done. Close waits for the calls admitted and refuses new ones.
func (s *Server) inprocEnter() (release func(), err error) {
	s.inprocMu.RLock()
	if s.inprocDown {
		s.inprocMu.RUnlock()
		return nil, errShuttingDown()
	}
	return s.inprocMu.RUnlock, nil
}

// stopInproc ends the in-process pipes, waits for in-process calls in
// flight and refuses new ones (from Close, before the data is closed).
func (s *Server) stopInproc() {
	unregisterInproc(s)
	s.inprocClosed.Store(true)
	s.inprocCancel()
	s.inprocMu.Lock()
	s.inprocDown = true
	s.inprocMu.Unlock()
}

// checkLocalKeys checks sorted distinct local keys against m as
// decodeSparse does for the wire encoding.
func (s *Server) checkLocalKeys(m *modelShard, keys []uint64) error {
	if len(keys) > s.opts.MaxKeysPerRequest {
		return status.Errorf(codes.InvalidArgument, "psstore: %d keys exceed the limit of %d per request", len(keys), s.opts.MaxKeysPerRequest)
	}
	if n := len(keys); n > 0 && keys[n-1] >= m.localDim {
		return status.Errorf(codes.InvalidArgument, "psstore: model %q: key %d is out of range: the model's dim is %d", m.spec.Name, m.globalKey(keys[n-1]), m.spec.Dim)
	}
	return nil
}

// pullInproc reads the weights of sorted distinct local keys into out.
func (s *Server) pullInproc(model string, keys []uint64, out []float32) error {
	release, err := s.inprocEnter()
	if err != nil {
		return err
	}
	defer release()
	m, err := s.liveModel(model)
	if err != nil {
		return err
	}
	if err := s.checkLocalKeys(m, keys); err != nil {
		return err
	}
	m.pull(keys, out)
	return nil
}

// pushInproc applies gradients for sorted distinct local keys.
func (s *Server) pushInproc(model string, keys []uint64, grads []float32, countPush bool) error {
	release, err := s.inprocEnter()
	if err != nil {
		return err
	}
	defer release()
	m, err := s.liveModel(model)
	if err != nil {
		return err
	}
	if err := s.checkLocalKeys(m, keys); err != nil {
		return err
	}
	if err := m.push(keys, grads, countPush, s.db); err != nil {
		return status.Errorf(codes.Internal, "psstore: %v", err)
	}
	return nil
}

// tryPushInproc is pushInproc for the caller's own goroutine: it applies
// the push only if that needs no waiting — the shard admits calls, no
// checkpoint holds the slice, and the slice is already marked dirty (the
// mark is a synced write) — and otherwise reports applied false, having
// done nothing. A refused push counts as applied, with its error.
func (s *Server) tryPushInproc(model string, keys []uint64, grads []float32, countPush bool) (applied bool, err error) {
	if !s.inprocMu.TryRLock() {
		return false, nil
	}
	defer s.inprocMu.RUnlock()
	if s.inprocDown {
		return false, nil
	}
	m, err := s.liveModel(model)
	if err != nil {
		return true, err
	}
	if err := s.checkLocalKeys(m, keys); err != nil {
		return true, err
	}
	if !m.dirty.Load() || !m.snapMu.TryRLock() {
		return false, nil
	}
	defer m.snapMu.RUnlock()
	if !m.dirty.Load() { // a checkpoint came in between
		return false, nil
	}
	m.apply(keys, grads, countPush)
	return true, nil
}

// denseInproc returns a copy of the slice's weights.
func (s *Server) denseInproc(model string) ([]float32, error) {
	release, err := s.inprocEnter()
	if err != nil {
		return nil, err
	}
	defer release()
	m, err := s.liveModel(model)
	if err != nil {
		return nil, err
	}
	out := make([]float32, m.localDim)
	m.dense(0, out)
	return out, nil
}

// roundHalf rounds vals to binary16 and back, as a WithFloat16 wire does.
func roundHalf(vals []float32) {
	for i, v := range vals {
		vals[i] = f16to32(f32to16(clampHalf(v)))
	}
}

// ctxStatus is the status error gRPC gives a call whose context ended.
func ctxStatus(err error) error {
	return status.FromContextError(err).Err()
}

// pullLocal is pullCopy for a shard in this process.
func (c *Client) pullLocal(ctx context.Context, sh *shardConn, model, name string, p *sparsePlan, s int, wait bool) error {
	keys, vals := p.shardKeys(s), p.shardVals(s)
	call := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		srv := sh.local.server()
		for lo := 0; lo < len(keys); lo += sh.maxKeys {
			hi := min(lo+sh.maxKeys, len(keys))
			if err := srv.pullInproc(name, keys[lo:hi], vals[lo:hi]); err != nil {
				return err
			}
		}
		return nil
	}
	err := call()
	if err != nil && unreachable(err) && wait {
		err = c.retry(ctx, sh, call)
	}
	if err != nil {
		return c.wrap(ctx, "pull sparse "+model, sh, err)
	}
	if c.opts.f16 {
		roundHalf(vals)
	}
	return nil
}

// denseLocal is denseOnce for a shard in this process.
func (c *Client) denseLocal(ctx context.Context, sh *shardConn, name string, dst *[]float32) error {
	if err := ctx.Err(); err != nil {
		return ctxStatus(err)
	}
	part, err := sh.local.server().denseInproc(name)
	if err != nil {
		return err
	}
	*dst = part
	return nil
}

// localShard is the client's handle on a shard of this process. A shard
// that closed is looked up again by address, so a shard started again at
// the same address in this process is found as gRPC would reconnect.
type localShard struct {
	addr string
	srv  atomic.Pointer[Server]
	o    *clientOptions
}

func newLocalShard(addr string, s *Server, o *clientOptions) *localShard {
	l := &localShard{addr: addr, o: o}
	l.srv.Store(s)
	return l
}

func (l *localShard) server() *Server {
	s := l.srv.Load()
	if s.inprocClosed.Load() {
		done, cancel := context.WithCancel(context.Background())
		cancel() // look, do not wait for a shard still opening
		if n, _ := inprocServer(done, l.addr, l.o); n != nil {
			l.srv.CompareAndSwap(s, n)
			return n
		}
	}
	return s
}

// wired reports whether some copy of partition s is reached over gRPC
// (so a push part must be encoded for the wire).
func (c *Client) wired(s int) bool {
	for j := 0; j < c.r; j++ {
		if c.copyHost(s, j).local == nil {
			return true
		}
	}
	return false
}

// InProcess reports whether the client calls every shard in this process
// directly rather than over gRPC (see Transport).
func (c *Client) InProcess() bool {
	for _, sh := range c.shards {
		if sh.local == nil {
			return false
		}
	}
	return len(c.shards) > 0
}
