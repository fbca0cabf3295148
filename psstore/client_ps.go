package psstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/stratus-ml/stratus/psstore/proto"
)

// The parameter-server face of the Client.

// CreateModel creates the model on every shard. It is idempotent: creating
// a model that exists with the same (normalised) spec succeeds, so workers of
// a relaunched generation may all call it; a different spec is an error
// (codes.AlreadyExists).
func (c *Client) createModel(ctx context.Context, spec ModelSpec) error {
	ns, err := spec.normalize()
	if err != nil {
		return fmt.Errorf("psstore: create model: %w", err)
	}
	if strings.Contains(spec.Name, replicaSep) {
		return fmt.Errorf("psstore: create model %q: the name contains the replica separator %q", spec.Name, replicaSep)
	}
	on := c.slicesOn(spec.Name)
	defer c.copies.forget(spec.Name)
	return c.each(ctx, "create model "+spec.Name, func(ctx context.Context, sh *shardConn) error {
		for _, sl := range on[sh.idx()] {
			p := ns.toProto()
			p.Name = sl.name
			if _, err := sh.rpc.CreateModel(ctx, &pb.CreateModelRequest{Spec: p, ShardIndex: uint32(sl.part), ShardCount: uint32(c.parts), Replica: sl.name != spec.Name}); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteModel deletes the model and its checkpoints on every shard.
// Deleting a model that does not exist is not an error.
func (c *Client) deleteModel(ctx context.Context, model string) error {
	on := c.slicesOn(model)
	defer c.copies.forget(model)
	return c.each(ctx, "delete model "+model, func(ctx context.Context, sh *shardConn) error {
		for _, sl := range on[sh.idx()] {
			if _, err := sh.rpc.DeleteModel(ctx, &pb.DeleteModelRequest{Model: sl.name}); err != nil {
				return err
			}
		}
		return nil
	})
}

// Snapshot checkpoints the model on every shard now (weights, optimizer
// state, counters). Pushes not yet acknowledged may or may not be included:
// call Flush first to include this client's pushes. Cost per shard: a copy
// of its slice in memory (pushes wait during the copy, about 1 ms per 4 M
// coordinates) and one write of it to badger.
func (c *Client) snapshot(ctx context.Context, model string) error {
	on := c.slicesOn(model)
	return c.each(ctx, "snapshot "+model, func(ctx context.Context, sh *shardConn) error {
		for _, sl := range on[sh.idx()] {
			if c.copies.isBad(copyKey{model, sl.part, sl.copy}) {
				continue
			}
			if _, err := sh.rpc.Snapshot(ctx, &pb.SnapshotRequest{Model: sl.name}); err != nil {
				return err
			}
		}
		return nil
	})
}

// Restore replaces the model on every shard with its last checkpoint
// (periodic, Snapshot or creation, whichever is latest on that shard).
func (c *Client) restore(ctx context.Context, model string) error {
	on := c.slicesOn(model)
	return c.each(ctx, "restore "+model, func(ctx context.Context, sh *shardConn) error {
		for _, sl := range on[sh.idx()] {
			if _, err := sh.rpc.Restore(ctx, &pb.RestoreRequest{Model: sl.name}); err != nil {
				return err
			}
		}
		return nil
	})
}

func (c *Client) getPlan() *sparsePlan  { return c.plans.Get().(*sparsePlan) }
func (c *Client) putPlan(p *sparsePlan) { c.plans.Put(p) }

// stashPlan keeps the plan of a finished pull for a following push of the
// same keys, recycling the oldest stashed plan.
func (c *Client) stashPlan(p *sparsePlan, keys []uint64) {
	p.input = append(p.input[:0], keys...)
	c.recentMu.Lock()
	old := c.recent[c.recentNext]
	c.recent[c.recentNext] = p
	c.recentNext = (c.recentNext + 1) % len(c.recent)
	c.recentMu.Unlock()
	if old != nil {
		c.putPlan(old)
	}
}

// takePlan returns a stashed plan built from exactly keys, or nil.
func (c *Client) takePlan(keys []uint64) *sparsePlan {
	c.recentMu.Lock()
	defer c.recentMu.Unlock()
	for i, p := range c.recent {
		if p != nil && len(p.input) == len(keys) && p.input[0] == keys[0] && slices.Equal(p.input, keys) {
			c.recent[i] = nil
			return p
		}
	}
	return nil
}

// PullSparse sets dst[i] to the model's weight for keys[i], for every i.
// keys may be in any order and repeat; every key must be < the model's dim.
// len(dst) must be at least len(keys). The keys are split by shard and the
// shards asked in parallel; a pull does not wait for this client's pushes
// in flight (call Flush for read-your-writes). Cost: one round trip, about
// 2 + 4 bytes per distinct key on the wire (2 + 2 with WithFloat16); no
// allocations in the client beyond gRPC's own after warm-up.
func (c *Client) pullSparse(ctx context.Context, model string, keys []uint64, dst []float32) error {
	if len(dst) < len(keys) {
		return fmt.Errorf("psstore: pull sparse %s: dst has %d slots for %d keys", model, len(dst), len(keys))
	}
	if len(keys) == 0 {
		return nil
	}
	p := c.getPlan()
	n := c.parts
	p.build(keys, n)
	var err error
	if n == 1 {
		err = c.pullShard(ctx, model, p, 0)
	} else {
		err = c.fanOut(ctx, p, func(s int) error { return c.pullShard(ctx, model, p, s) })
	}
	if err != nil {
		c.putPlan(p)
		return err
	}
	vals := p.vals
	for i, s := range p.slot {
		dst[i] = vals[s]
	}
	c.stashPlan(p, keys)
	return nil
}

// fanOut runs f for every shard that has keys in p, in parallel, and returns
// the first error in shard order.
func (c *Client) fanOut(ctx context.Context, p *sparsePlan, f func(s int) error) error {
	var errs [16]error
	errv := errs[:0]
	if c.parts > len(errs) {
		errv = make([]error, 0, c.parts)
	}
	errv = errv[:c.parts]
	var wg sync.WaitGroup
	first := -1
	for s := range c.parts {
		if p.start[s] == p.start[s+1] {
			continue
		}
		if first < 0 {
			first = s
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errv[s] = f(s)
		}()
	}
	if first >= 0 {
		errv[first] = f(first)
	}
	wg.Wait()
	for _, err := range errv {
		if err != nil {
			return err
		}
	}
	return nil
}

// pullShard pulls partition s's part of p from its first good copy.
func (c *Client) pullShard(ctx context.Context, model string, p *sparsePlan, s int) error {
	if c.r == 1 {
		return c.pullCopy(ctx, c.owners[s][0], model, c.copyName(model, s, 0), p, s, true)
	}
	return c.readCopy(ctx, model, s, func(sh *shardConn, name string, wait bool) error {
		return c.pullCopy(ctx, sh, model, name, p, s, wait)
	})
}

// pullCopy pulls partition s's part of p from sh, where its copy is named
// name, in requests of at most maxKeys keys; wait says whether to wait for
// sh when it is unreachable.
func (c *Client) pullCopy(ctx context.Context, sh *shardConn, model, name string, p *sparsePlan, s int, wait bool) error {
	if sh.local != nil {
		return c.pullLocal(ctx, sh, model, name, p, s, wait)
	}
	keys, vals := p.shardKeys(s), p.shardVals(s)
	enc := pb.ValueEncoding_VALUE_ENCODING_FLOAT32
	if c.opts.f16 {
		enc = pb.ValueEncoding_VALUE_ENCODING_FLOAT16
	}
	for lo := 0; lo < len(keys); lo += sh.maxKeys {
		hi := min(lo+sh.maxKeys, len(keys))
		p.keyBuf[s] = appendKeys(p.keyBuf[s][:0], keys[lo:hi])
		req := &p.pullReqs[s]
		req.Model, req.Keys, req.NumKeys, req.Encoding = name, p.keyBuf[s], uint32(hi-lo), enc
		req.MapVersion = c.smap.Version // the map this pull was routed with (routeMu held)
		decode := func(resp *pb.PullSparseResponse) error {
			if resp.Encoding != enc {
				return fmt.Errorf("shard answered in encoding %v, asked for %v", resp.Encoding, enc)
			}
			if err := decodeValues(vals[lo:hi], resp.Values, c.opts.f16, false); err != nil {
				return fmt.Errorf("malformed answer: %w", err)
			}
			return nil
		}
		err := sh.pulls.pull(ctx, req, decode)
		if err != nil && unreachable(err) && wait {
			err = c.retry(ctx, sh, func() error { return sh.pulls.pull(ctx, req, decode) })
		}
		req.Keys = nil
		if err != nil {
			return c.wrap(ctx, "pull sparse "+model, sh, err)
		}
	}
	return nil
}

// PushSparse sends raw gradients for keys to be applied by the model's
// optimizer on the shards (see the package documentation). keys may be in
// any order; gradients of repeated keys are summed. It returns as soon as
// the parts are queued on the shards' push streams — it waits only when a
// shard already has the window's worth of pushes unacknowledged — so a
// failure is reported later: if an earlier push failed, PushSparse returns
// that error (once) and does not send this push; Flush returns it too.
// A push to several shards is not atomic: each shard applies its part.
func (c *Client) pushSparse(ctx context.Context, model string, keys []uint64, grads []float32, pr *pushProgress) error {
	if len(keys) != len(grads) {
		return fmt.Errorf("psstore: push sparse %s: %d keys but %d gradients", model, len(keys), len(grads))
	}
	if err := c.takePushErr(); err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	p := c.takePlan(keys)
	if p == nil {
		p = c.getPlan()
		p.build(keys, c.parts)
	}
	defer c.putPlan(p)
	vals := p.vals
	clear(vals)
	for i, s := range p.slot {
		g := grads[i]
		if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) {
			return fmt.Errorf("psstore: push sparse %s: gradient %d (key %d) is %v: gradients must be finite", model, i, keys[i], g)
		}
		vals[s] += g
	}
	counted := pr.counted[:] // per copy: the first part of a push counts it
	for s := range c.parts {
		ks, vs := p.shardKeys(s), p.shardVals(s)
		chunk := c.owners[s][0].maxKeys
		for lo := 0; lo < len(ks); lo += chunk {
			hi := min(lo+chunk, len(ks))
			if c.pushMoved.Load() {
				// A member refused a push with MOVED while this one was
				// being queued: stop routing by the older map; the
				// caller refreshes it and runs the push again, sending
				// only the parts not queued yet.
				if err := c.takePushErr(); err != nil {
					return err
				}
			}
			part := pushPart{s, lo, 0}
			if c.r == 1 && pr.done[part] {
				continue
			}
			p.keyBuf[s], p.valBuf[s] = p.keyBuf[s][:0], p.valBuf[s][:0]
			if c.wired(s) { // the wire encoding, for the copies reached over gRPC
				p.keyBuf[s] = appendKeys(p.keyBuf[s], ks[lo:hi])
				p.valBuf[s] = appendValues(p.valBuf[s], vs[lo:hi], c.opts.f16)
			}
			if c.r == 1 {
				if err := c.sendPart(ctx, c.owners[s][0], c.copyName(model, s, 0), copyKey{}, p.keyBuf[s], p.valBuf[s], ks[lo:hi], vs[lo:hi], !counted[0], true); err != nil {
					return err
				}
				counted[0] = true
				pr.mark(part)
				continue
			}
			if err := c.pushCopies(ctx, model, s, lo, p.keyBuf[s], p.valBuf[s], ks[lo:hi], vs[lo:hi], counted, pr); err != nil {
				return err
			}
		}
	}
	return nil
}

// pushCopies sends one push part of partition s to every good copy. A copy
// whose stream cannot be opened is given up while another is good.
// raw are the part's keys and gradients, for a copy in this process.
func (c *Client) pushCopies(ctx context.Context, model string, s, lo int, keys, vals []byte, rawKeys []uint64, rawVals []float32, counted []bool, pr *pushProgress) error {
	sent := false
	var last error
	ignore := !c.copies.anyGood(model, s, c.r) // every copy given up: try them all again
	for j := 0; j < c.r; j++ {
		k := copyKey{model, s, j}
		if !ignore && c.copies.isBad(k) {
			continue
		}
		part := pushPart{s, lo, j}
		if pr.done[part] {
			sent = true
			continue
		}
		more := false
		for jj := j + 1; jj < c.r; jj++ {
			more = more || ignore || !c.copies.isBad(copyKey{model, s, jj})
		}
		err := c.sendPart(ctx, c.copyHost(s, j), c.copyName(model, s, j), k, keys, vals, rawKeys, rawVals, j < len(counted) && !counted[j], !sent && !more)
		if err == nil {
			sent = true
			pr.mark(part)
			if ignore {
				c.copies.unmark(k)
			}
			if j < len(counted) {
				counted[j] = true
			}
			continue
		}
		if !failover(err) || ctx.Err() != nil {
			return err
		}
		last = err
		c.copies.markBad(k, err, c.r)
	}
	if !sent {
		if last == nil {
			last = c.noCopy(model, s)
		}
		return last
	}
	return nil
}

// sendPart queues one push part on h's stream for the copy named name: the
// raw keys and gradients to a shard in this process, their wire encoding
// (keys, vals) to one reached over gRPC. countPush says the part counts the
// push on that copy; wait, whether to wait for a shard that is unreachable
// rather than fail at once (see RetryPolicy).
func (c *Client) sendPart(ctx context.Context, h *shardConn, name string, k copyKey, keys, vals []byte, rawKeys []uint64, rawVals []float32, countPush, wait bool) error {
	if h.local != nil {
		return h.lpush.send(ctx, name, k, rawKeys, rawVals, countPush, wait)
	}
	return h.push.send(ctx, name, k, keys, vals, len(rawKeys), countPush, wait)
}

// Flush waits until every push this client made before the call is
// acknowledged (applied or refused) by its shard, and returns the first
// push failure not yet reported, or ctx's error.
func (c *Client) flush(ctx context.Context) error {
	for _, sh := range c.allConns() {
		flush := sh.push.flush
		if sh.local != nil {
			flush = sh.lpush.flush
		}
		if err := flush(ctx); err != nil {
			return err
		}
	}
	return c.takePushErr()
}

// PullDense returns the whole model (dim coordinates), for evaluation and
// export. Cost: 4 bytes per coordinate streamed from every shard in 2 MiB
// chunks, plus one copy.
func (c *Client) pullDense(ctx context.Context, model string) ([]float32, error) {
	parts := make([][]float32, c.parts)
	err := c.partitions(ctx, "pull dense "+model, func(ctx context.Context, p int) error {
		return c.readCopy(ctx, model, p, func(sh *shardConn, name string, wait bool) error {
			err := c.denseOnce(ctx, sh, name, &parts[p])
			if err != nil && wait && unreachable(err) {
				err = c.retry(ctx, sh, func() error { return c.denseOnce(ctx, sh, name, &parts[p]) })
			}
			if err != nil {
				return c.wrap(ctx, "pull dense "+name, sh, err)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	n := len(parts)
	dim := 0
	for _, p := range parts {
		dim += len(p)
	}
	out := make([]float32, dim)
	for s, p := range parts {
		for l, v := range p {
			out[l*n+s] = v
		}
	}
	return out, nil
}

// partitions runs f for every partition in parallel and returns the first
// error in partition order.
func (c *Client) partitions(ctx context.Context, op string, f func(ctx context.Context, p int) error) error {
	errs := make([]error, c.parts)
	var wg sync.WaitGroup
	for p := range c.parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[p] = f(ctx, p)
		}()
	}
	wg.Wait()
	for p, err := range errs {
		if err != nil {
			var se *ShardError
			if errors.As(err, &se) {
				return err
			}
			return fmt.Errorf("psstore: %s: partition %d: %w", op, p, err)
		}
	}
	return nil
}

// denseOnce streams the slice named name from sh into *dst.
func (c *Client) denseOnce(ctx context.Context, sh *shardConn, name string, dst *[]float32) error {
	if sh.local != nil {
		return c.denseLocal(ctx, sh, name, dst)
	}
	{
		stream, err := sh.rpc.PullDense(ctx, &pb.PullDenseRequest{Model: name})
		if err != nil {
			return err
		}
		var part []float32
		var got uint64
		for {
			ch, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			if part == nil {
				if ch.LocalDim > 1<<40 {
					return fmt.Errorf("shard reports an implausible %d coordinates", ch.LocalDim)
				}
				part = make([]float32, ch.LocalDim)
			}
			nv := uint64(len(ch.Values) / 4)
			if ch.Offset != got || ch.Offset+nv > uint64(len(part)) || len(ch.Values)%4 != 0 {
				return fmt.Errorf("malformed dense chunk at offset %d (%d bytes) of %d coordinates", ch.Offset, len(ch.Values), len(part))
			}
			if err := decodeValues(part[ch.Offset:ch.Offset+nv], ch.Values, false, false); err != nil {
				return err
			}
			got += nv
		}
		if got != uint64(len(part)) {
			return fmt.Errorf("dense stream ended after %d of %d coordinates", got, len(part))
		}
		*dst = part
		return nil
	}
}

// ModelStats are a model's counters summed over shards.
type ModelStats struct {
	Spec ModelSpec // normalised (defaults filled in)
	// Pushes is the number of logical pushes (PushSparse calls) applied.
	Pushes uint64
	// Updates is the number of coordinate updates applied: the distinct keys
	// of every push.
	Updates uint64
	// Pulls counts pull requests per shard (a pull touching k shards counts
	// k); PulledKeys counts distinct keys pulled.
	Pulls, PulledKeys uint64
	// Checkpoints is the fewest checkpoints any shard has written (creation
	// counts as one); CheckpointUpdates sums Updates as of each shard's last
	// checkpoint; LastCheckpoint is the oldest shard's last checkpoint time.
	Checkpoints       uint64
	CheckpointUpdates uint64
	LastCheckpoint    time.Time
	// Lost is empty when every shard's slice holds every update it
	// acknowledged; otherwise it names the first shard whose slice lost
	// updates and why (pulls and pushes then fail with ErrModelLost).
	Lost string
	// Shards are the figures of each partition's serving copy (the primary
	// unless the client failed over), in partition order.
	Shards []ShardModelStats
}

// ShardModelStats are one shard's figures for its slice of a model.
type ShardModelStats struct {
	Shard int // the shard holding the slice
	Addr  string
	// Partition is the key range the slice holds; Copy is 0 for its primary,
	// j for the replica on shard Partition+j (mod the shard count).
	Partition, Copy int
	// Incarnation identifies the slice: drawn at random when the model was
	// created on that shard, kept across restarts. A different value than
	// before means the slice was deleted and created again (or the shard
	// lost its data directory).
	Incarnation uint64
	// Pushes and Updates count the pushes and coordinate updates the slice
	// has applied; they only grow while the slice lives (a restart from a
	// checkpoint sets them back to the checkpoint's, with Lost set if
	// updates were lost).
	Pushes, Updates uint64
	LocalDim, Bytes uint64
	Checkpoints     uint64
	// CheckpointUpdates is Updates as of the last checkpoint.
	CheckpointUpdates uint64
	LastCheckpoint    time.Time
	// LastUpdate is the time of the last applied push since the shard
	// loaded the slice (zero if none).
	LastUpdate time.Time
	// Lost says why the slice lost updates; empty if it did not.
	Lost string
}

func shardModelStats(sh *shardConn, r *pb.ModelStatsResponse) ShardModelStats {
	st := ShardModelStats{
		Shard: sh.idx(), Addr: sh.addr, Incarnation: r.Incarnation, Pushes: r.Pushes, Updates: r.Updates,
		LocalDim: r.LocalDim, Bytes: r.Bytes, Checkpoints: r.Checkpoints, CheckpointUpdates: r.CheckpointUpdates,
		LastCheckpoint: time.Unix(0, r.CheckpointUnixNano), Lost: r.Lost,
	}
	if r.LastUpdateUnixNano != 0 {
		st.LastUpdate = time.Unix(0, r.LastUpdateUnixNano)
	}
	return st
}

// ModelInfo is a model as ListModels finds it.
type ModelInfo struct {
	Name string
	Spec ModelSpec
	// Shards are the slices found, in shard order; a model missing on some
	// shard has fewer than the cluster's shard count (Complete is false).
	Shards   []ShardModelStats
	Complete bool
}

// Bytes is the memory of the model's slices.
func (m ModelInfo) Bytes() uint64 {
	var b uint64
	for _, s := range m.Shards {
		b += s.Bytes
	}
	return b
}

// Updates sums the primary slices' update counters.
func (m ModelInfo) Updates() uint64 {
	var u uint64
	for _, s := range m.Shards {
		if s.Copy == 0 {
			u += s.Updates
		}
	}
	return u
}

// LastUpdate is the latest push applied to any slice (zero if none since
// the shards loaded it).
func (m ModelInfo) LastUpdate() time.Time {
	var t time.Time
	for _, s := range m.Shards {
		if s.LastUpdate.After(t) {
			t = s.LastUpdate
		}
	}
	return t
}

// Lost says why a partition has no slice that kept every update (the
// first such slice's reason), "" if every partition has one.
func (m ModelInfo) Lost() string {
	good := map[int]bool{}
	for _, s := range m.Shards {
		if s.Lost == "" {
			good[s.Partition] = true
		}
	}
	for _, s := range m.Shards {
		if s.Lost != "" && !good[s.Partition] {
			return fmt.Sprintf("shard %d (%s): %s", s.Shard, s.Addr, s.Lost)
		}
	}
	return ""
}

// Degraded lists the replica or primary slices that lost updates while
// another copy of their partition did not.
func (m ModelInfo) Degraded() []ShardModelStats {
	if m.Lost() != "" {
		return nil
	}
	var out []ShardModelStats
	for _, s := range m.Shards {
		if s.Lost != "" {
			out = append(out, s)
		}
	}
	return out
}

// ListModels returns every model with a slice on some shard whose name
// starts with prefix, by name. With replication, shards that do not answer
// are left out as long as every partition has a copy on one that does (the
// models then list the slices found).
func (c *Client) listModels(ctx context.Context, prefix string) ([]ModelInfo, error) {
	parts := make([][]*pb.ModelStatsResponse, len(c.shards))
	errs := make([]error, len(c.shards))
	var wg sync.WaitGroup
	for _, sh := range c.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[sh.idx()] = c.retry(ctx, sh, func() error {
				r, err := sh.rpc.ListModels(ctx, &pb.ListModelsRequest{Prefix: prefix})
				if err != nil {
					return err
				}
				parts[sh.idx()] = r.Models
				return nil
			})
		}()
	}
	wg.Wait()
	for p := range c.parts {
		answered := false
		for j := 0; j < c.r; j++ {
			answered = answered || errs[c.copyHost(p, j).idx()] == nil
		}
		for i, err := range errs {
			if err != nil && (!answered || !unreachable(err)) {
				return nil, c.wrap(ctx, "list models", c.shards[i], err)
			}
		}
	}
	byName := map[string]*ModelInfo{}
	var names []string
	for s, ms := range parts {
		for _, r := range ms {
			if r.Spec == nil {
				continue
			}
			name, part, replica := SplitReplicaName(r.Spec.Name)
			mi := byName[name]
			if mi == nil {
				spec, err := specFromProto(r.Spec)
				if err != nil {
					return nil, fmt.Errorf("psstore: list models: shard %d: %w", s, err)
				}
				spec.Name = name
				mi = &ModelInfo{Name: name, Spec: spec}
				byName[name] = mi
				names = append(names, name)
			}
			ss := shardModelStats(c.shards[s], r)
			if !replica {
				mb, _ := c.smap.Member(c.shards[s].addr)
				part = mb.Home
			}
			ss.Partition, ss.Copy = part, c.copyIndex(part, c.shards[s])
			mi.Shards = append(mi.Shards, ss)
		}
	}
	slices.Sort(names)
	out := make([]ModelInfo, len(names))
	for i, n := range names {
		out[i] = *byName[n]
		parts := map[int]bool{}
		for _, ss := range out[i].Shards {
			parts[ss.Partition] = true
		}
		out[i].Complete = len(parts) == c.parts
	}
	return out, nil
}

// Shards is the number of shards the client places keys on.
func (c *Client) Shards() int { return c.parts }

// ModelStats returns the model's counters.
func (c *Client) modelStats(ctx context.Context, model string) (ModelStats, error) {
	resps := make([]*pb.ModelStatsResponse, c.parts)
	hosts := make([]*shardConn, c.parts)
	copyOf := make([]int, c.parts)
	var err error
	{
		// The serving copy of each partition: the first good one that holds
		// every update it acknowledged; a copy that lost updates is given up.
		err = c.partitions(ctx, "model stats "+model, func(ctx context.Context, p int) error {
			var lost *pb.ModelStatsResponse
			var lostHost *shardConn
			lostCopy := 0
			err := c.readCopy(ctx, model, p, func(sh *shardConn, name string, wait bool) error {
				var r *pb.ModelStatsResponse
				call := func() (err error) {
					r, err = sh.rpc.ModelStats(ctx, &pb.ModelStatsRequest{Model: name})
					return err
				}
				var err error
				if wait {
					err = c.retry(ctx, sh, call)
				} else {
					err = call()
				}
				if err != nil {
					return c.wrap(ctx, "model stats "+name, sh, err)
				}
				if r.Lost != "" {
					if lost == nil {
						lost, lostHost, lostCopy = r, sh, c.copyIndex(p, sh)
					}
					return c.wrap(ctx, "model stats "+name, sh, status.Error(codes.DataLoss, r.Lost))
				}
				resps[p], hosts[p], copyOf[p] = r, sh, c.copyIndex(p, sh)
				return nil
			})
			if err != nil && lost != nil {
				resps[p], hosts[p], copyOf[p] = lost, lostHost, lostCopy
				return nil
			}
			return err
		})
	}
	if err != nil {
		return ModelStats{}, err
	}
	var st ModelStats
	st.Spec, err = specFromProto(resps[0].Spec)
	if err != nil {
		return st, fmt.Errorf("psstore: model stats %s: %w", model, err)
	}
	if _, _, ok := SplitReplicaName(st.Spec.Name); ok {
		st.Spec.Name = model
	}
	for i, r := range resps {
		ss := shardModelStats(hosts[i], r)
		ss.Partition, ss.Copy = i, copyOf[i]
		st.Shards = append(st.Shards, ss)
		if ss.Lost != "" && st.Lost == "" {
			st.Lost = fmt.Sprintf("shard %d (%s): %s", ss.Shard, ss.Addr, ss.Lost)
		}
		st.Pushes += r.Pushes
		st.Updates += r.Updates
		st.Pulls += r.Pulls
		st.PulledKeys += r.PulledKeys
		st.CheckpointUpdates += r.CheckpointUpdates
		t := time.Unix(0, r.CheckpointUnixNano)
		if i == 0 || r.Checkpoints < st.Checkpoints {
			st.Checkpoints = r.Checkpoints
		}
		if i == 0 || t.Before(st.LastCheckpoint) {
			st.LastCheckpoint = t
		}
	}
	return st, nil
}
