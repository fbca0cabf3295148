package psstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/stratus-ml/stratus/psstore/proto"
)

// The client's routing layer: the shard map it places keys with, and the
// redirection when a member answers MOVED (see Elasticity in the package
// documentation). Every public operation runs under routeMu held for
// reading; a refresh of the map takes it for writing, so an operation sees
// one map from start to end, and one refused with MOVED is run again, whole,
// with the newer map.

type routing struct {
	routeMu sync.RWMutex
	smap    *ShardMap
	parts   int            // smap.Partitions
	owners  [][]*shardConn // per partition, its copies' hosts, primary first
	conns   map[string]*shardConn
	version *mapVersionCreds
	// installV1 are the members to give the static map at Dial.
	installV1 []string
	// fenceMu guards the map for the readers outside an operation (the
	// fences started by push receivers); setMap holds it while it writes.
	fenceMu sync.Mutex
}

// mapVersionCreds attaches the client's map version to every request.
type mapVersionCreds struct {
	mu sync.Mutex
	md map[string]string
}

func (m *mapVersionCreds) set(v uint64) {
	m.mu.Lock()
	m.md = map[string]string{mapMetadataKey: strconv.FormatUint(v, 10)}
	m.mu.Unlock()
}

func (m *mapVersionCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.md, nil
}

func (m *mapVersionCreds) RequireTransportSecurity() bool { return false }

// MapVersion is the version of the shard map the client places keys with.
func (c *Client) MapVersion() uint64 {
	c.routeMu.RLock()
	defer c.routeMu.RUnlock()
	return c.smap.Version
}

// Map returns a copy of the client's shard map.
func (c *Client) Map() *ShardMap {
	c.routeMu.RLock()
	defer c.routeMu.RUnlock()
	return c.smap.Clone()
}

func (c *Client) allConns() []*shardConn {
	out := make([]*shardConn, 0, len(c.conns))
	for _, sh := range c.conns {
		out = append(out, sh)
	}
	slices.SortFunc(out, func(a, b *shardConn) int { return a.idx() - b.idx() })
	return out
}

// dialConn returns the connection to addr, creating it.
func (c *Client) dialConn(ctx context.Context, addr string) (*shardConn, error) {
	if sh := c.conns[addr]; sh != nil {
		return sh, nil
	}
	o := c.opts
	// A shard of this process is called directly (inproc.go), not over gRPC.
	srv, err := inprocServer(ctx, addr, &c.opts)
	if err != nil {
		return nil, err
	}
	if srv != nil {
		l := newLocalShard(addr, srv, &c.opts)
		sh := &shardConn{addr: addr, local: l, rpc: &inprocRPC{l: l}}
		sh.setIdx(len(c.conns))
		sh.lpush = newLocalPush(c, sh)
		c.addConn(sh)
		return sh, nil
	}
	creds := insecure.NewCredentials()
	if o.tls != nil {
		creds = credentials.NewTLS(o.tls)
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithPerRPCCredentials(newTokenCreds(o.token)),
		grpc.WithPerRPCCredentials(c.version),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30), grpc.MaxCallSendMsgSize(1<<30)),
		grpc.WithInitialWindowSize(1<<20),
		grpc.WithInitialConnWindowSize(4<<20),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: o.retry.BaseDelay, Multiplier: 1.6, Jitter: 0.2, MaxDelay: o.retry.MaxDelay},
			MinConnectTimeout: 5 * time.Second,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("psstore: shard address %q: %w", addr, err)
	}
	sh := &shardConn{addr: addr, conn: conn, rpc: pb.NewPSStoreClient(conn)}
	sh.setIdx(len(c.conns))
	sh.push = newPushStream(c, sh)
	sh.pulls = &pullPool{c: c, sh: sh}
	c.addConn(sh)
	return sh, nil
}

func (c *Client) addConn(sh *shardConn) {
	if c.conns == nil {
		c.conns = map[string]*shardConn{}
	}
	c.conns[sh.addr] = sh
}

// route sets the client's routing at Dial: the newest map any of addrs
// holds (addrs are then seeds: any members of the cluster), or, when none
// holds one, the static map of addrs (version 1).
func (c *Client) route(ctx context.Context, addrs []string) error {
	c.version = &mapVersionCreds{}
	c.version.set(1)
	seen := map[string]int{}
	for i, addr := range addrs {
		if j, dup := seen[addr]; dup {
			return fmt.Errorf("psstore: shard address %s is listed twice (shards %d and %d)", addr, j, i)
		}
		seen[addr] = i
		if _, err := c.dialConn(ctx, addr); err != nil {
			return fmt.Errorf("psstore: shard %d address %q: %w", i, addr, err)
		}
	}
	m, held, prefs, err := c.fetchMapPrefs(ctx, addrs)
	if err != nil {
		return err
	}
	parts := 0
	if m != nil && m.Version == 1 && !seedsOf(addrs, m) && !slices.Equal(addrs, m.Addrs()) {
		// Version 1 is the static list the last client dialled: this
		// client's own list, unless it names the same members or only some
		// of them (seeds). (A shard restarted on another address.) The
		// partitions stay the cluster's when the list has as many shards;
		// a list of another length gets as many partitions as shards, as
		// before partition counts could differ, and the shards' recorded
		// placement refuses it (Hello).
		if len(addrs) == len(m.Members) {
			parts = m.Partitions
		}
		m = nil
	}
	if m == nil {
		if parts == 0 {
			if parts, err = newClusterPartitions(addrs, prefs); err != nil {
				return err
			}
		}
		m = StaticMapPartitions(addrs, c.r, parts)
		for _, a := range addrs {
			if h := held[a]; h == nil || !sameMap(h, m) {
				c.installV1 = append(c.installV1, a)
			}
		}
	}
	// A cluster with a map keeps its number of copies: WithReplicas only
	// sets it for a cluster that has none yet.
	return c.setMap(m)
}

// seedsOf reports whether addrs are some, not all, of m's members.
func seedsOf(addrs []string, m *ShardMap) bool {
	for _, a := range addrs {
		if _, ok := m.Member(a); !ok {
			return false
		}
	}
	return len(addrs) < len(m.Members)
}

func sameMap(a, b *ShardMap) bool {
	x, err1 := MarshalMap(a)
	y, err2 := MarshalMap(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// partitionPref is what a member without a map asks a new cluster's
// partition count to be (see ServerOptions.Partitions).
type partitionPref struct{ parts, perShard uint32 }

// newClusterPartitions is the partition count of a cluster founded with
// the shards at addrs, from what each asks for (prefs; a shard that did
// not answer asks nothing): the count they agree on, else the partitions
// per shard they agree on times the shard count, else the shard count.
func newClusterPartitions(addrs []string, prefs map[string]partitionPref) (int, error) {
	var parts, per uint32
	var partsAt, perAt string
	for _, a := range addrs {
		pr, ok := prefs[a]
		if !ok {
			continue
		}
		if pr.parts > 0 {
			if parts > 0 && pr.parts != parts {
				return 0, fmt.Errorf("psstore: the shards disagree on the cluster's partition count: %s asks for %d, %s for %d: start every shard of a new cluster with the same --partitions (a shard that holds data keeps the count it was placed with)", partsAt, parts, a, pr.parts)
			}
			parts, partsAt = pr.parts, a
		}
		if pr.perShard > 0 {
			if per > 0 && pr.perShard != per {
				return 0, fmt.Errorf("psstore: the shards disagree on the cluster's partitions per shard: %s asks for %d, %s for %d: start every shard of a new cluster with the same --partitions", perAt, per, a, pr.perShard)
			}
			per, perAt = pr.perShard, a
		}
	}
	n := len(addrs)
	switch {
	case parts > 0:
		if int(parts) < n {
			return 0, fmt.Errorf("psstore: shard %s asks for %d partitions, fewer than the %d shards the cluster is founded with: every shard needs a partition; start the shards with --partitions of at least %d", partsAt, parts, n, n)
		}
		return int(parts), nil
	case per > 0:
		if n*int(per) > MaxPartitions {
			return 0, fmt.Errorf("psstore: %d shards × %d partitions per shard (asked by %s) is more than the %d partitions a cluster may have: start the shards with --partitions N", n, per, perAt, MaxPartitions)
		}
		return n * int(per), nil
	}
	return n, nil
}

// fetchMap asks addrs (one try each, in parallel) for their map and returns
// the newest (nil when none has one or none answered) and each member's.
func (c *Client) fetchMap(ctx context.Context, addrs []string) (*ShardMap, map[string]*ShardMap, error) {
	m, held, _, err := c.fetchMapPrefs(ctx, addrs)
	return m, held, err
}

// fetchMapPrefs is fetchMap also returning what each member without a map
// asks a new cluster's partition count to be.
func (c *Client) fetchMapPrefs(ctx context.Context, addrs []string) (*ShardMap, map[string]*ShardMap, map[string]partitionPref, error) {
	fctx, cancel := context.WithTimeout(ctx, c.opts.dialTimeout)
	defer cancel()
	maps := make([]*ShardMap, len(addrs))
	errs := make([]error, len(addrs))
	prefs := make([]*partitionPref, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		sh := c.conns[a]
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := sh.rpc.GetMap(fctx, &pb.GetMapRequest{})
			if err != nil {
				errs[i] = c.wrap(ctx, "get shard map", sh, err)
				return
			}
			if len(r.Map) > 0 {
				maps[i], errs[i] = UnmarshalMap(r.Map)
			} else {
				prefs[i] = &partitionPref{r.Partitions, r.PartitionsPerShard}
			}
		}()
	}
	wg.Wait()
	var best *ShardMap
	held := map[string]*ShardMap{}
	pref := map[string]partitionPref{}
	for i, m := range maps {
		if errs[i] != nil && !unreachable(errs[i]) {
			return nil, nil, nil, errs[i]
		}
		held[addrs[i]] = m
		if prefs[i] != nil {
			pref[addrs[i]] = *prefs[i]
		}
		if m != nil && (best == nil || m.Version > best.Version) {
			best = m
		}
	}
	return best, held, pref, nil
}

// setMap makes m the client's routing (routeMu held for writing, or at
// Dial).
func (c *Client) setMap(m *ShardMap) error {
	shards := make([]*shardConn, len(m.Members))
	for i, mb := range m.Members {
		sh, err := c.dialConn(c.ctx, mb.Addr)
		if err != nil {
			return err
		}
		shards[i] = sh
	}
	// Members first, in map order; connections to former members after.
	for i, sh := range shards {
		sh.setIdx(i)
	}
	n := len(shards)
	for _, sh := range c.allConns() {
		if !slices.Contains(shards, sh) {
			sh.setIdx(n)
			n++
		}
	}
	owners := make([][]*shardConn, m.Partitions)
	for p, o := range m.Owners {
		for _, a := range o {
			owners[p] = append(owners[p], c.conns[a])
		}
	}
	c.fenceMu.Lock()
	c.smap, c.parts, c.owners, c.shards = m, m.Partitions, owners, shards
	c.fenceMu.Unlock()
	if c.r != m.Replicas { // the same after Dial: push receivers read it
		c.r = m.Replicas
	}
	c.version.set(m.Version)
	return nil
}

// installStatic gives members without a map the client's static map, so
// that a shard joining later finds the cluster (serve --join).
func (c *Client) installStatic(ctx context.Context) error {
	if len(c.installV1) == 0 {
		return nil
	}
	b, err := MarshalMap(c.smap)
	if err != nil {
		return err
	}
	for _, a := range c.installV1 {
		// A member that is down gets it from the next client.
		_, _ = c.conns[a].rpc.InstallMap(ctx, &pb.InstallMapRequest{Map: b, Member: a})
	}
	return nil
}

// refresh fetches the cluster's map until it is at least version want (a
// member's MOVED named it) and routes by it.
func (c *Client) refresh(ctx context.Context, want uint64) error {
	c.routeMu.Lock()
	defer c.routeMu.Unlock()
	if c.smap.Version >= want {
		return nil
	}
	delay := c.opts.retry.BaseDelay
	giveUp := time.Now().Add(max(c.opts.retry.Wait, 10*time.Second))
	for {
		addrs := c.smap.Addrs()
		for _, sh := range c.allConns() {
			if !slices.Contains(addrs, sh.addr) {
				addrs = append(addrs, sh.addr)
			}
		}
		m, _, err := c.fetchMap(ctx, addrs)
		if err != nil {
			return fmt.Errorf("psstore: refresh shard map (want version %d): %w", want, err)
		}
		if m != nil && m.Version >= want {
			c.copies.mu.Lock()
			c.copies.bad = nil // copies are numbered anew
			c.copies.mu.Unlock()
			if err := c.setMap(m); err != nil {
				return err
			}
			return c.helloNew(ctx)
		}
		// The member that said MOVED has the map; the others may not yet.
		if time.Now().After(giveUp) {
			have := uint64(0)
			if m != nil {
				have = m.Version
			}
			return fmt.Errorf("psstore: a member answered MOVED %d, but the newest shard map the members give is version %d: is a membership change (join or drain) stuck? see `stratus psstore status`", want, have)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("psstore: refresh shard map (want version %d): %w", want, ctx.Err())
		}
		delay = min(2*delay, c.opts.retry.MaxDelay)
	}
}

// helloNew greets members the client has not greeted yet.
func (c *Client) helloNew(ctx context.Context) error {
	for _, sh := range c.shards {
		if sh.maxKeys > 0 {
			continue
		}
		if err := c.hello(ctx, sh); err != nil {
			return c.wrap(ctx, "connect", sh, err)
		}
	}
	return nil
}

// idx is the connection's position in the client's map (members first,
// in map order); it changes only with the map, and is read by the push
// receivers for their errors.
func (sh *shardConn) idx() int { return int(sh.index.Load()) }

func (sh *shardConn) setIdx(i int) { sh.index.Store(int32(i)) }

// copyIndex is the copy number of partition p on sh (-1 if none).
func (c *Client) copyIndex(p int, sh *shardConn) int {
	if p < 0 || p >= len(c.owners) {
		return -1
	}
	return slices.Index(c.owners[p], sh)
}

// routed runs f with the client's map, and again with a newer one as long
// as a member answers MOVED.
func (c *Client) routed(ctx context.Context, f func() error) error {
	for {
		c.routeMu.RLock()
		err := f()
		c.routeMu.RUnlock()
		v, moved := movedVersion(err)
		if !moved || ctx.Err() != nil {
			return err
		}
		// v is the version of the member that refused; a refusal of an
		// asynchronous push made before the client refreshed may name one
		// it already has.
		if rerr := c.refresh(ctx, v); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
}

// The public operations, each under the routing.

// Put stores val under key, replacing any value. Values above 4 MiB are
// streamed in 4 MiB chunks; at most the shards' value limit (64 MiB by
// default).
func (c *Client) Put(ctx context.Context, key string, val []byte) error {
	return c.routed(ctx, func() error { return c.put(ctx, key, val) })
}

// Get returns key's value, or an error matching ErrNotFound.
func (c *Client) Get(ctx context.Context, key string) (v []byte, err error) {
	err = c.routed(ctx, func() (err error) { v, err = c.get(ctx, key); return err })
	return v, err
}

// MultiGet returns the values of keys, in order, asking the shards in
// parallel; a missing key's entry is nil (a stored empty value is non-nil).
func (c *Client) MultiGet(ctx context.Context, keys []string) (v [][]byte, err error) {
	err = c.routed(ctx, func() (err error) { v, err = c.multiGet(ctx, keys); return err })
	return v, err
}

// Delete removes key. Deleting a missing key is not an error.
func (c *Client) Delete(ctx context.Context, key string) error {
	return c.routed(ctx, func() error { return c.delete(ctx, key) })
}

// List returns every key with the prefix, sorted, from all shards.
func (c *Client) List(ctx context.Context, prefix string) (v []string, err error) {
	err = c.routed(ctx, func() (err error) { v, err = c.list(ctx, prefix); return err })
	return v, err
}

// merge applies a merge to every copy of key's partition. A copy that
// acknowledged it is not sent it again when the map changed under the
// merge: the copy's successor in the new map (the same copy number) got
// its data, merge included, from it.
func (c *Client) merge(ctx context.Context, key string, op pb.MergeOp, data []byte) error {
	return c.routed(ctx, func() error { return c.mergeOnce(ctx, key, op, "", data) })
}

// CreateModel creates the model on every shard. It is idempotent: creating
// a model that exists with the same (normalised) spec succeeds, so workers of
// a relaunched generation may all call it; a different spec is an error
// (codes.AlreadyExists).
func (c *Client) CreateModel(ctx context.Context, spec ModelSpec) error {
	return c.routed(ctx, func() error { return c.createModel(ctx, spec) })
}

// DeleteModel deletes the model and its checkpoints on every shard.
// Deleting a model that does not exist is not an error.
func (c *Client) DeleteModel(ctx context.Context, model string) error {
	return c.routed(ctx, func() error { return c.deleteModel(ctx, model) })
}

// Snapshot checkpoints the model on every shard now (weights, optimizer
// state, counters). Pushes not yet acknowledged may or may not be included:
// call Flush first to include this client's pushes.
func (c *Client) Snapshot(ctx context.Context, model string) error {
	return c.routed(ctx, func() error { return c.snapshot(ctx, model) })
}

// Restore replaces the model on every shard with its last checkpoint.
func (c *Client) Restore(ctx context.Context, model string) error {
	return c.routed(ctx, func() error { return c.restore(ctx, model) })
}

// PullSparse fills dst[i] with the model's value at keys[i].
func (c *Client) PullSparse(ctx context.Context, model string, keys []uint64, dst []float32) error {
	return c.routed(ctx, func() error { return c.pullSparse(ctx, model, keys, dst) })
}

// PushSparse sends the gradients of keys (see pushSparse). A push refused
// because the map changed is lost on that copy (like a push in flight to a
// copy that failed); the client routes the next pushes by the new map.
func (c *Client) PushSparse(ctx context.Context, model string, keys []uint64, grads []float32) error {
	var pr pushProgress
	return c.routed(ctx, func() error { return c.pushSparse(ctx, model, keys, grads, &pr) })
}

// pushProgress is what a push sent before a MOVED refusal made the client
// run it again with the newer map: the parts already queued are not sent
// again (copy j of a partition in the newer map inherits copy j's data in
// the older one).
type pushProgress struct {
	done    map[pushPart]bool
	counted [8]bool
}

type pushPart struct{ part, lo, copy int }

func (pr *pushProgress) mark(p pushPart) {
	if pr.done == nil {
		pr.done = map[pushPart]bool{}
	}
	pr.done[p] = true
}

// Flush waits until every push this client made before the call is
// acknowledged (applied or refused) by its shard, and returns the first
// push failure not yet reported, or ctx's error.
func (c *Client) Flush(ctx context.Context) error {
	return c.routed(ctx, func() error { return c.flush(ctx) })
}

// PullDense returns the whole model (dim coordinates), for evaluation and
// export.
func (c *Client) PullDense(ctx context.Context, model string) (v []float32, err error) {
	err = c.routed(ctx, func() (err error) { v, err = c.pullDense(ctx, model); return err })
	return v, err
}

// ListModels returns every model with a slice on some shard whose name
// starts with prefix, by name.
func (c *Client) ListModels(ctx context.Context, prefix string) (v []ModelInfo, err error) {
	err = c.routed(ctx, func() (err error) { v, err = c.listModels(ctx, prefix); return err })
	return v, err
}

// ModelStats returns the model's counters.
func (c *Client) ModelStats(ctx context.Context, model string) (v ModelStats, err error) {
	err = c.routed(ctx, func() (err error) { v, err = c.modelStats(ctx, model); return err })
	return v, err
}

// ShardStatus returns every member's counters, in map order; a member that
// does not answer (after the retry policy's wait) has Down set instead.
func (c *Client) ShardStatus(ctx context.Context) []ServerStats {
	c.routeMu.RLock()
	defer c.routeMu.RUnlock()
	return c.shardStatus(ctx)
}
