package psstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"google.golang.org/grpc"

	pb "github.com/stratus-ml/stratus/psstore/proto"
)

// The key-value face of the Client. A key lives on shard
// fnv1a64(key) mod N. Every acknowledged write is durable on its shard.

// MergeOp is an element-wise reduction for MergeFloats.
type MergeOp int

// The element-wise reductions of MergeFloats.
const (
	MergeSum MergeOp = iota + 1 // stored[i] += vals[i]
	MergeMin                    // stored[i] = min(stored[i], vals[i])
	MergeMax                    // stored[i] = max(stored[i], vals[i])
)

func (op MergeOp) String() string {
	switch op {
	case MergeSum:
		return "sum"
	case MergeMin:
		return "min"
	case MergeMax:
		return "max"
	}
	return fmt.Sprintf("MergeOp(%d)", int(op))
}

// fnv1a64 hashes a KV key for placement.
func fnv1a64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func (c *Client) partFor(key string) int {
	if c.parts == 1 {
		return 0
	}
	return int(fnv1a64(key) % uint64(c.parts))
}

func (c *Client) checkKV(op, key string, size int, sh *shardConn) error {
	if key == "" {
		return fmt.Errorf("psstore: %s: empty key", op)
	}
	if sh != nil && int64(size) > sh.maxValueBytes {
		return fmt.Errorf("psstore: %s %q: %d bytes exceed the value limit of %d", op, key, size, sh.maxValueBytes)
	}
	return nil
}

// Put stores val under key, replacing any value. Values above 4 MiB are
// streamed in 4 MiB chunks; at most the shards' value limit (64 MiB by
// default).
func (c *Client) put(ctx context.Context, key string, val []byte) error {
	p := c.partFor(key)
	if err := c.checkKV("put", key, len(val), c.owners[p][0]); err != nil {
		return err
	}
	if c.r > 1 {
		// Acknowledged only once every copy has it.
		return c.some(ctx, fmt.Sprintf("put %q", key), c.hostsOf(p), func(ctx context.Context, sh *shardConn) error {
			return c.putOnce(ctx, sh, key, val)
		})
	}
	sh := c.owners[p][0]
	if err := c.retry(ctx, sh, func() error { return c.putOnce(ctx, sh, key, val) }); err != nil {
		return c.wrap(ctx, fmt.Sprintf("put %q", key), sh, err)
	}
	return nil
}

func (c *Client) putOnce(ctx context.Context, sh *shardConn, key string, val []byte) error {
	err := func() error {
		stream, err := sh.rpc.Put(ctx)
		if err != nil {
			return err
		}
		first := true
		for off := 0; first || off < len(val); first = false {
			end := min(off+valueChunkBytes, len(val))
			ch := &pb.PutChunk{Data: val[off:end]}
			if first {
				ch.Key = []byte(key)
			}
			if err := stream.Send(ch); err != nil {
				if errors.Is(err, io.EOF) {
					break // the shard's answer explains
				}
				return err
			}
			off = end
		}
		_, err = stream.CloseAndRecv()
		return err
	}()
	return err
}

// Get returns key's value, or an error matching ErrNotFound.
func (c *Client) get(ctx context.Context, key string) ([]byte, error) {
	p := c.partFor(key)
	if err := c.checkKV("get", key, 0, nil); err != nil {
		return nil, err
	}
	out := make([][]byte, 1)
	found := make([]bool, 1)
	var from *shardConn
	if err := c.readCopy(ctx, "", p, func(sh *shardConn, _ string, wait bool) error {
		from = sh
		return c.getFrom(ctx, sh, []string{key}, []int{0}, out, found, wait)
	}); err != nil {
		return nil, err
	}
	if !found[0] {
		return nil, c.wrap(ctx, fmt.Sprintf("get %q", key), from, fmt.Errorf("key %q: %w", key, ErrNotFound))
	}
	return out[0], nil
}

// MultiGet returns the values of keys, in order, asking the shards in
// parallel; a missing key's entry is nil (a stored empty value is non-nil).
func (c *Client) multiGet(ctx context.Context, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	found := make([]bool, len(keys))
	byShard := make([][]int, c.parts)
	for i, k := range keys {
		if err := c.checkKV("multi-get", k, 0, nil); err != nil {
			return nil, err
		}
		s := c.partFor(k)
		byShard[s] = append(byShard[s], i)
	}
	var involved []int
	for s, idx := range byShard {
		if len(idx) > 0 {
			involved = append(involved, s)
		}
	}
	if len(involved) == 0 {
		return out, nil
	}
	var wg sync.WaitGroup
	errs := make([]error, len(involved))
	for n, part := range involved {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idx := byShard[part]
			errs[n] = c.readCopy(ctx, "", part, func(sh *shardConn, _ string, wait bool) error {
				for lo := 0; lo < len(idx); lo += sh.maxKeys {
					part := idx[lo:min(lo+sh.maxKeys, len(idx))]
					ks := make([]string, len(part))
					for j, i := range part {
						ks[j] = keys[i]
					}
					if err := c.getFrom(ctx, sh, ks, part, out, found, wait); err != nil {
						return err
					}
				}
				return nil
			})
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// getFrom streams the values of keys from sh into out[pos[j]], retrying
// while the shard is unreachable if wait is set.
func (c *Client) getFrom(ctx context.Context, sh *shardConn, keys []string, pos []int, out [][]byte, found []bool, wait bool) error {
	req := &pb.GetRequest{Keys: make([][]byte, len(keys))}
	for i, k := range keys {
		req.Keys[i] = []byte(k)
	}
	err := c.getOnce(ctx, sh, req, pos, out, found)
	if err != nil && wait && unreachable(err) {
		err = c.retry(ctx, sh, func() error { return c.getOnce(ctx, sh, req, pos, out, found) })
	}
	if err != nil {
		return c.wrap(ctx, "get", sh, err)
	}
	return nil
}

func (c *Client) getOnce(ctx context.Context, sh *shardConn, req *pb.GetRequest, pos []int, out [][]byte, found []bool) error {
	keys := req.Keys
	stream, err := sh.rpc.Get(ctx, req)
	if err != nil {
		return err
	}
	var cur []byte
	for {
		ch, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if int(ch.Index) >= len(keys) {
			return fmt.Errorf("shard answered for key %d of %d", ch.Index, len(keys))
		}
		i := pos[ch.Index]
		if !ch.Found {
			continue
		}
		if ch.Size > 0 && cur == nil {
			if int64(ch.Size) > sh.maxValueBytes {
				return fmt.Errorf("shard announced a value of %d bytes, above its limit", ch.Size)
			}
			cur = make([]byte, 0, ch.Size)
		}
		cur = append(cur, ch.Data...)
		if ch.Last {
			if cur == nil {
				cur = []byte{}
			}
			out[i], found[i] = cur, true
			cur = nil
		}
	}
}

// Delete removes key. Deleting a missing key is not an error.
func (c *Client) delete(ctx context.Context, key string) error {
	if err := c.checkKV("delete", key, 0, nil); err != nil {
		return err
	}
	return c.some(ctx, fmt.Sprintf("delete %q", key), c.hostsOf(c.partFor(key)), func(ctx context.Context, sh *shardConn) error {
		_, err := sh.rpc.Delete(ctx, &pb.DeleteRequest{Key: []byte(key)})
		return err
	})
}

// List returns every key with the prefix, sorted, from all shards.
func (c *Client) list(ctx context.Context, prefix string) ([]string, error) {
	parts := make([][]string, len(c.shards))
	err := c.each(ctx, fmt.Sprintf("list %q", prefix), func(ctx context.Context, sh *shardConn) error {
		stream, err := sh.rpc.List(ctx, &pb.ListRequest{Prefix: []byte(prefix)})
		if err != nil {
			return err
		}
		for {
			r, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			for _, k := range r.Keys {
				parts[sh.idx()] = append(parts[sh.idx()], string(k))
			}
		}
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil // a replicated key is on several shards
}

// MergeFloats folds vals into the float32 vector stored at key, atomically
// on its shard: element-wise sum, min or max. A missing key takes vals as
// is; a stored vector of another length is an error (codes.FailedPrecondition).
// Read the result with GetFloats.
func (c *Client) MergeFloats(ctx context.Context, key string, op MergeOp, vals []float32) error {
	var pop pb.MergeOp
	switch op {
	case MergeSum:
		pop = pb.MergeOp_MERGE_OP_SUM
	case MergeMin:
		pop = pb.MergeOp_MERGE_OP_MIN
	case MergeMax:
		pop = pb.MergeOp_MERGE_OP_MAX
	default:
		return fmt.Errorf("psstore: merge %q: unknown op %v", key, op)
	}
	return c.merge(ctx, key, pop, floatsToBytes(vals))
}

// Append appends b to the bytes stored at key (creating it), atomically on
// its shard; for passing messages between workers. The result must stay
// within the value limit.
func (c *Client) Append(ctx context.Context, key string, b []byte) error {
	return c.merge(ctx, key, pb.MergeOp_MERGE_OP_APPEND, b)
}

// MergeFunc folds operand into cur, the value stored at a key (nil when
// there is none), and returns the value to store. It runs on the shard,
// under the key's write lock, once per copy of the key: it must be
// deterministic, and should be commutative and associative so that merges
// arriving in any order give one result, and idempotent for a retried
// operand (a client cannot know whether a merge whose answer was lost was
// applied). It may reuse cur.
type MergeFunc func(cur, operand []byte) ([]byte, error)

var (
	mergeFuncsMu sync.RWMutex
	mergeFuncs   = map[string]MergeFunc{}
)

// RegisterMergeFunc makes fn the merge function named name for the shards
// this process serves and for MergeWith's callers. Register at init: a
// shard that does not know a name refuses its merges (codes.Unimplemented).
// Registering a name twice panics.
func RegisterMergeFunc(name string, fn MergeFunc) {
	mergeFuncsMu.Lock()
	defer mergeFuncsMu.Unlock()
	if name == "" || fn == nil {
		panic("psstore: RegisterMergeFunc: empty name or nil function")
	}
	if mergeFuncs[name] != nil {
		panic("psstore: RegisterMergeFunc: " + name + " registered twice")
	}
	mergeFuncs[name] = fn
}

func lookupMergeFunc(name string) MergeFunc {
	mergeFuncsMu.RLock()
	defer mergeFuncsMu.RUnlock()
	return mergeFuncs[name]
}

// MergeWith folds operand into the value stored at key with the merge
// function registered as name (RegisterMergeFunc), atomically on each of
// the key's shards. Read the result with Get.
func (c *Client) MergeWith(ctx context.Context, key, name string, operand []byte) error {
	if lookupMergeFunc(name) == nil {
		return fmt.Errorf("psstore: merge %q: no merge function %q is registered", key, name)
	}
	return c.routed(ctx, func() error { return c.mergeOnce(ctx, key, pb.MergeOp_MERGE_OP_FUNC, name, operand) })
}

func (c *Client) mergeOnce(ctx context.Context, key string, op pb.MergeOp, fn string, data []byte) error {
	p := c.partFor(key)
	if err := c.checkKV("merge", key, len(data), c.owners[p][0]); err != nil {
		return err
	}
	if c.r == 1 {
		return c.mergeOn(ctx, c.owners[p][0], key, op, fn, data)
	}
	// Every copy applies the merge; acknowledged once all have.
	hosts := c.hostsOf(p)
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, sh := range hosts {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.mergeOn(ctx, sh, key, op, fn, data) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// mergeOn applies one merge on sh.
func (c *Client) mergeOn(ctx context.Context, sh *shardConn, key string, op pb.MergeOp, fn string, data []byte) error {
	err := func() error {
		// Only opening the stream is retried: a merge that reached the
		// shard must not be applied twice.
		var stream grpc.ClientStreamingClient[pb.MergeChunk, pb.MergeResponse]
		err := c.retry(ctx, sh, func() (err error) {
			stream, err = sh.rpc.Merge(ctx)
			return err
		})
		if err != nil {
			return err
		}
		first := true
		for off := 0; first || off < len(data); first = false {
			end := min(off+valueChunkBytes, len(data))
			ch := &pb.MergeChunk{Data: data[off:end]}
			if first {
				ch.Key, ch.Op, ch.Func = []byte(key), op, fn
			}
			if err := stream.Send(ch); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return err
			}
			off = end
		}
		_, err = stream.CloseAndRecv()
		return err
	}()
	if err != nil {
		return c.wrap(ctx, fmt.Sprintf("merge %q", key), sh, err)
	}
	return nil
}

// GetFloats returns the float32 vector stored at key (by MergeFloats).
func (c *Client) GetFloats(ctx context.Context, key string) ([]float32, error) {
	b, err := c.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	v, err := bytesToFloats(b)
	if err != nil {
		return nil, fmt.Errorf("psstore: get floats %q: %w", key, err)
	}
	return v, nil
}
