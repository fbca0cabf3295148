package psstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/stratus-ml/stratus/psstore/proto"
)

// ErrNotFound is matched (errors.Is) by errors for a missing key or model.
var ErrNotFound = errors.New("not found")

// ErrModelLost is matched (errors.Is) by errors for a model slice that lost
// updates: its shard came back from a checkpoint older than updates it had
// acknowledged (see ModelStats.Lost). The model as a whole is inconsistent;
// delete it and train again.
var ErrModelLost = errors.New("model lost updates")

var errClosed = errors.New("psstore: client is closed")

// Option configures a Client.
type Option func(*clientOptions)

type clientOptions struct {
	token       string
	tls         *tls.Config
	pushWindow  int
	f16         bool
	maxKeys     int
	dialTimeout time.Duration
	retry       RetryPolicy
	replicas    int // 0: the default

	// transport, unless set by WithTransport, comes from $STRATUS_PSSTORE_TRANSPORT.
	transport    Transport
	transportSet bool
}

// WithToken sets the run's token, sent with every request (required).
func WithToken(token string) Option { return func(o *clientOptions) { o.token = token } }

// WithTLS connects with TLS using cfg (for a self-signed shard certificate,
// put it in cfg.RootCAs). Without it the connection is plaintext.
func WithTLS(cfg *tls.Config) Option { return func(o *clientOptions) { o.tls = cfg } }

// WithPushWindow bounds the unacknowledged pushes per shard (default 32).
// PushSparse blocks only when the window is full.
func WithPushWindow(n int) Option { return func(o *clientOptions) { o.pushWindow = n } }

// WithFloat16 sends pushed gradients and receives pulled values as IEEE
// binary16 (11 significant bits, range ±65504: larger finite values are
// clamped), halving value bytes. The shard still computes in float32.
func WithFloat16() Option { return func(o *clientOptions) { o.f16 = true } }

// Client talks to a psstore cluster. It is safe for concurrent use by
// several goroutines; create one per worker with Dial and Close it when done.
type Client struct {
	opts    clientOptions
	shards  []*shardConn // the map's members, in map order
	r       int          // copies of every key range (replica.go)
	routing              // the shard map (client_map.go)
	copies  copies       // copies given up on

	plans sync.Pool // *sparsePlan

	// recent holds the plans of the last pulls, so a push of the same keys
	// (the worker's usual pull, compute, push) skips sorting them again.
	recentMu   sync.Mutex
	recent     [8]*sparsePlan
	recentNext int

	errMu   sync.Mutex
	pushErr error // first unreported push failure
	// pushMoved is set with pushErr when a push was refused with MOVED,
	// so a push under way stops queueing parts by the older map.
	pushMoved atomic.Bool

	retries atomic.Uint64 // attempts repeated for an unreachable shard

	ctx    context.Context // lives until Close; owns the push streams
	cancel context.CancelFunc
	wg     sync.WaitGroup // push-stream receivers
}

// shardConn is the client's connection to one shard.
type shardConn struct {
	index         atomic.Int32 // see idx
	addr          string
	conn          *grpc.ClientConn
	rpc           pb.PSStoreClient
	maxKeys       int
	maxValueBytes int64
	push          *pushStream
	pulls         *pullPool
	// local is set for a shard in this process, called directly instead of
	// conn, push and pulls (inproc.go); lpush carries its pushes.
	local *localShard
	lpush *localPush
}

// Dial connects to the shards at addrs, whose order defines placement (see
// the package documentation): every client of a cluster must list the same
// addresses in the same order. It greets every shard, which records or
// checks its place, and fails with an error naming the unreachable or
// mismatched shard.
func Dial(ctx context.Context, addrs []string, opts ...Option) (*Client, error) {
	o := clientOptions{pushWindow: 32, maxKeys: 256 << 10, dialTimeout: 10 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	if len(addrs) == 0 {
		return nil, errors.New("psstore: no shard addresses to dial")
	}
	if o.token == "" {
		return nil, errors.New("psstore: no token: pass WithToken(the run's token); every shard refuses requests without it")
	}
	if o.pushWindow < 1 {
		o.pushWindow = 1
	}
	var err error
	if o.retry, err = o.retry.withDefaults(); err != nil {
		return nil, err
	}
	if o.maxKeys < 1 {
		o.maxKeys = 1
	}
	if !o.transportSet {
		if o.transport, err = transportFromEnv(); err != nil {
			return nil, err
		}
	}
	cctx, cancel := context.WithCancel(context.Background())
	c := &Client{opts: o, ctx: cctx, cancel: cancel, r: o.replicas}
	if c.r <= 0 {
		if c.r, err = defaultReplicas(len(addrs)); err != nil {
			cancel()
			return nil, err
		}
	}
	c.r = min(c.r, len(addrs))
	c.plans.New = func() any { return new(sparsePlan) }
	c.copies.fence = c.fence
	if err := c.route(ctx, addrs); err != nil {
		c.Close()
		return nil, err
	}
	hctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var hcancel context.CancelFunc
		hctx, hcancel = context.WithTimeout(ctx, max(o.dialTimeout, o.retry.Wait+o.retry.MaxDelay))
		defer hcancel()
	}
	if c.r > 1 {
		err = c.helloReplicated(hctx)
	} else {
		err = c.each(hctx, "connect", c.hello)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	if err := c.installStatic(hctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// hello greets sh with its place in the client's map (which it records or
// checks) and takes the shard's request limits.
func (c *Client) hello(ctx context.Context, sh *shardConn) error {
	mb, _ := c.smap.Member(sh.addr)
	resp, err := sh.rpc.Hello(ctx, &pb.HelloRequest{
		ShardIndex:    uint32(max(mb.Home, 0)),
		ShardCount:    uint32(c.parts),
		ClientVersion: Version,
		Joined:        mb.Home < 0,
	})
	if err != nil {
		return err
	}
	sh.maxKeys = min(c.opts.maxKeys, int(min(resp.MaxKeysPerRequest, 1<<30)))
	sh.maxValueBytes = int64(min(resp.MaxValueBytes, 1<<40))
	return nil
}

// helloReplicated greets every shard, but with replication a shard that is
// unreachable right now does not stop the client, as long as every
// partition has a copy on a shard that answered: the client fails over from
// the missing one like any client (its limits are taken from the others).
func (c *Client) helloReplicated(ctx context.Context) error {
	errs := make([]error, len(c.shards))
	var wg sync.WaitGroup
	for i, sh := range c.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.hello(ctx, sh) // one try: a shard that is down must not hold the client up
		}()
	}
	wg.Wait()
	var up *shardConn
	for i, err := range errs {
		if err != nil && !unreachable(err) {
			return c.wrap(ctx, "connect", c.shards[i], err)
		}
		if err == nil && up == nil {
			up = c.shards[i]
		}
	}
	for p := range c.parts {
		ok := false
		for j := 0; j < c.r; j++ {
			ok = ok || errs[c.copyHost(p, j).idx()] == nil
		}
		if !ok {
			// A partition has no copy up: wait for the missing shards as
			// without replication.
			var down []*shardConn
			for i, err := range errs {
				if err != nil {
					down = append(down, c.shards[i])
				}
			}
			return c.some(ctx, "connect", down, c.hello)
		}
	}
	for i, sh := range c.shards {
		if errs[i] != nil {
			sh.maxKeys, sh.maxValueBytes = up.maxKeys, up.maxValueBytes
		}
	}
	return nil
}

// Close closes the connections. It does not wait for pushes in flight: call
// Flush first to be sure they were applied.
func (c *Client) Close() error {
	c.cancel()
	all := c.allConns()
	for _, sh := range all {
		if sh.pulls != nil {
			sh.pulls.closeAll()
		}
	}
	var first error
	for _, sh := range all {
		if sh.conn == nil {
			continue
		}
		if err := sh.conn.Close(); err != nil && first == nil {
			first = fmt.Errorf("psstore: close connection to %s: %w", sh.addr, err)
		}
	}
	c.wg.Wait()
	return first
}

// each runs f for every shard in parallel and returns the first error,
// wrapped with the shard and operation.
func (c *Client) each(ctx context.Context, op string, f func(context.Context, *shardConn) error) error {
	return c.some(ctx, op, c.shards, f)
}

// Every call of f is retried while its shard is unreachable (see
// RetryPolicy), so f must be safe to repeat.
func (c *Client) some(ctx context.Context, op string, shards []*shardConn, f0 func(context.Context, *shardConn) error) error {
	f := func(ctx context.Context, sh *shardConn) error {
		return c.retry(ctx, sh, func() error { return f0(ctx, sh) })
	}
	if len(shards) == 1 {
		if err := f(ctx, shards[0]); err != nil {
			return c.wrap(ctx, op, shards[0], err)
		}
		return nil
	}
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, sh := range shards[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i+1] = f(ctx, sh)
		}()
	}
	errs[0] = f(ctx, shards[0])
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return c.wrap(ctx, op, shards[i], err)
		}
	}
	return nil
}

// ShardError is the error of an operation on one shard. It unwraps to the
// gRPC status error (so status.Code works), to ErrNotFound for a missing key
// or model, and to ctx.Err() when the caller's context ended.
type ShardError struct {
	Op    string // e.g. "pull sparse"
	Shard int
	Addr  string
	Err   error
	// Waited is how long the client waited for an unreachable shard before
	// giving up (0 when it did not wait).
	Waited time.Duration
	extra  []error
}

func (e *ShardError) Error() string {
	st, _ := status.FromError(e.Err)
	msg := e.Err.Error()
	if st != nil {
		msg = strings.TrimPrefix(st.Message(), "psstore: ")
	}
	base := fmt.Sprintf("psstore: %s on shard %d (%s): ", e.Op, e.Shard, e.Addr)
	switch status.Code(e.Err) {
	case codes.Unavailable:
		waited := ""
		if e.Waited > 0 {
			waited = fmt.Sprintf(" (waited %s for it to come back; $%s or psstore.WithRetry sets how long)", e.Waited, RetryWaitEnv)
		}
		return base + "shard is unreachable: " + msg + waited + "; check that `stratus psstore serve` is running at that address and reachable from here"
	case codes.DataLoss:
		return base + msg
	case codes.Unauthenticated:
		return base + msg
	case codes.DeadlineExceeded, codes.Canceled:
		return base + "gave up: " + msg
	}
	return base + msg
}

func (e *ShardError) Unwrap() []error { return append([]error{e.Err}, e.extra...) }

func (c *Client) wrap(ctx context.Context, op string, sh *shardConn, err error) error {
	var se *ShardError
	if errors.As(err, &se) {
		return err
	}
	e := &ShardError{Op: op, Shard: sh.idx(), Addr: sh.addr, Err: err}
	var we *waitedError
	if errors.As(err, &we) {
		e.Err, e.Waited = we.err, we.waited
	}
	switch status.Code(err) {
	case codes.NotFound:
		e.extra = append(e.extra, ErrNotFound)
	case codes.DataLoss:
		e.extra = append(e.extra, ErrModelLost)
	}
	if ctx != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		e.extra = append(e.extra, ctx.Err())
	}
	return e
}

// ServerStats are one shard's counters.
type ServerStats struct {
	Addr         string
	AuthFailures uint64 // requests refused for a missing or wrong token
	Requests     uint64 // authenticated requests
	Models       int
	ModelBytes   uint64
	// Started is when the shard's process opened its data directory.
	Started time.Time
	// Placed says whether a client has told the shard its place; Index and
	// Count are that place.
	Placed       bool
	Index, Count int
	DiskBytes    uint64 // badger's files
	LostModels   int    // models whose slice lost updates
	// Down is why the shard did not answer (ShardStatus only).
	Down error
}

// ServerStats returns every shard's counters, in shard order, or the first
// shard's error.
func (c *Client) ServerStats(ctx context.Context) ([]ServerStats, error) {
	out := c.ShardStatus(ctx)
	for _, s := range out {
		if s.Down != nil {
			return out, s.Down
		}
	}
	return out, nil
}

// ShardStatus returns every shard's counters, in shard order; a shard that
// does not answer (after the retry policy's wait) has Down set instead.
func (c *Client) shardStatus(ctx context.Context) []ServerStats {
	out := make([]ServerStats, len(c.shards))
	var wg sync.WaitGroup
	for _, sh := range c.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r *pb.StatsResponse
			err := c.retry(ctx, sh, func() (err error) {
				r, err = sh.rpc.Stats(ctx, &pb.StatsRequest{})
				return err
			})
			if err != nil {
				out[sh.idx()] = ServerStats{Addr: sh.addr, Down: c.wrap(ctx, "stats", sh, err)}
				return
			}
			out[sh.idx()] = ServerStats{Addr: sh.addr, AuthFailures: r.AuthFailures, Requests: r.Requests, Models: int(r.Models), ModelBytes: r.ModelBytes,
				Started: time.Unix(0, r.StartUnixNano), Placed: r.Placed, Index: int(r.ShardIndex), Count: int(r.ShardCount),
				DiskBytes: r.DiskBytes, LostModels: int(r.LostModels)}
		}()
	}
	wg.Wait()
	return out
}
