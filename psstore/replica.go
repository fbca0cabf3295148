package psstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/stratus-ml/stratus/psstore/proto"
)

// Replication.
//
// With R copies (WithReplicas; default 2 when there are at least 2 shards),
// partition p — the model coordinates k with k mod N = p, and the KV keys
// with fnv1a64(key) mod N = p — lives on shard p (its primary) and on the
// R-1 shards after it, (p+j) mod N for j = 1…R-1. A replica slice of model
// m is the model named ReplicaName(m, p) on its host shard.
//
//   - A KV write (Put, Delete, Append, MergeFloats) is acknowledged once
//     every copy has it; a copy that is unreachable is waited for (see
//     RetryPolicy), so an acknowledged write is on R shards.
//   - A push goes to every copy of each partition it touches, on each host's
//     asynchronous push stream: a replica lags its primary by at most the
//     push window. Copies apply the same gradients in possibly different
//     interleavings (as asynchronous SGD does anyway).
//   - Reads (pulls, dense pulls, stats, Get) go to the first good copy; a
//     copy that is unreachable, lost updates (a restart after a crash) or
//     lacks the model is marked bad (until the client's map changes) and
//     the next copy answers: the client fails over by itself, without
//     waiting. A MOVED refusal marks no copy bad: the copy moved, and the
//     client refreshes its map (see Elasticity in the package
//     documentation). A push whose copy failed is forgotten while another copy of
//     its partition is good; only when none is left does the client report
//     an error.
//
// A client that fails over stops writing to the bad copy, so that copy
// falls behind for good. Other clients see it as lost (DATA_LOSS) when its
// shard restarted after a crash; when the shard was only unreachable from
// this client, the client fences the copy off as soon as it can reach the
// shard again (Fence), and from then on every client reads the other copy.
// Until the fence lands, clients that still reach the shard read a copy
// that misses this client's pushes since it failed over (there are no
// leases).

// WithReplicas sets R, the number of shards that hold each key range (at
// most the shard count; 1 disables replication). Without it, R is
// $STRATUS_PSSTORE_REPLICAS if set, else 2 (or 1 with a single shard).
// A cluster whose members hold a shard map keeps the R of its map (the
// first client's), whatever later clients ask.
func WithReplicas(r int) Option { return func(o *clientOptions) { o.replicas = r } }

// ReplicasEnv names the environment variable with the default R.
const ReplicasEnv = "STRATUS_PSSTORE_REPLICAS"

func defaultReplicas(shards int) (int, error) {
	r := 2
	if v := os.Getenv(ReplicasEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, fmt.Errorf("psstore: $%s=%q: want a number of copies of at least 1", ReplicasEnv, v)
		}
		r = n
	}
	return min(r, shards), nil
}

// replicaSep separates a model's name from its replica suffix; model names
// given to the client must not contain it.
const replicaSep = "\x1freplica/"

// ReplicaName is the name of model's replica slice of partition p on its
// host shard (what `stratus psstore ls` groups under the model).
func ReplicaName(model string, p int) string { return model + replicaSep + strconv.Itoa(p) }

// SplitReplicaName returns the model and partition a replica name stands
// for; ok is false for a primary's name.
func SplitReplicaName(name string) (model string, p int, ok bool) {
	i := strings.LastIndex(name, replicaSep)
	if i < 0 {
		return name, 0, false
	}
	p, err := strconv.Atoi(name[i+len(replicaSep):])
	if err != nil {
		return name, 0, false
	}
	return name[:i], p, true
}

// copyName is the model name of copy j of partition p on its host (the
// model's own name on the partition's home member, see ShardMap.SliceName).
func (c *Client) copyName(model string, p, j int) string {
	return c.smap.SliceName(model, p, c.owners[p][j].addr)
}

// copyHost is the shard holding copy j of partition p.
func (c *Client) copyHost(p, j int) *shardConn { return c.owners[p][j] }

// Replicas is R, the number of copies of every key range.
func (c *Client) Replicas() int { return c.r }

type copyKey struct {
	model      string
	part, copy int
}

// copies tracks the copies this client gave up on.
type copies struct {
	mu  sync.RWMutex
	bad map[copyKey]error
	// fence is called (outside mu) when a model's copy is given up because
	// its shard was unreachable.
	fence func(copyKey, error)
}

func (cs *copies) isBad(k copyKey) bool {
	cs.mu.RLock()
	_, b := cs.bad[k]
	cs.mu.RUnlock()
	return b
}

// markBad records that copy k failed with err; it returns whether another
// copy of the partition is still good (of r copies).
func (cs *copies) markBad(k copyKey, err error, r int) bool {
	cs.mu.Lock()
	if cs.bad == nil {
		cs.bad = map[copyKey]error{}
	}
	_, was := cs.bad[k]
	if !was {
		cs.bad[k] = err
	}
	good := false
	for j := 0; j < r; j++ {
		if _, b := cs.bad[copyKey{k.model, k.part, j}]; !b {
			good = true
		}
	}
	cs.mu.Unlock()
	if !was && good && k.model != "" && unreachable(err) && cs.fence != nil {
		cs.fence(k, err)
	}
	return good
}

// anyGood reports whether some copy of partition p is not given up.
func (cs *copies) anyGood(model string, p, r int) bool {
	cs.mu.RLock()
	defer cs.mu.RUnlock()
	for j := 0; j < r; j++ {
		if _, b := cs.bad[copyKey{model, p, j}]; !b {
			return true
		}
	}
	return false
}

func (cs *copies) unmark(k copyKey) {
	cs.mu.Lock()
	delete(cs.bad, k)
	cs.mu.Unlock()
}

// forget clears the marks of model's copies: this client created or
// deleted it, so every copy is new.
func (cs *copies) forget(model string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for k := range cs.bad {
		if k.model == model {
			delete(cs.bad, k)
		}
	}
}

// fence tells copy k's shard, once it can be reached again, that this
// client gave the copy up (it misses pushes from now on), so that no client
// reads it again (see rpcService.Fence). It runs in the background until it
// succeeds or the client is closed. KV copies need none: a KV write waits
// for every copy.
func (c *Client) fence(k copyKey, cause error) {
	c.fenceMu.Lock()
	if k.part >= len(c.owners) || k.copy >= len(c.owners[k.part]) {
		c.fenceMu.Unlock()
		return
	}
	sh := c.copyHost(k.part, k.copy)
	name := c.copyName(k.model, k.part, k.copy)
	c.fenceMu.Unlock()
	reason := fmt.Sprintf("%v", cause)
	if len(reason) > 300 {
		reason = reason[:300] + "…"
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		delay := c.opts.retry.BaseDelay
		for {
			_, err := sh.rpc.Fence(c.ctx, &pb.FenceRequest{Model: name, Reason: reason})
			if err == nil || c.ctx.Err() != nil || !unreachable(err) {
				return
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-c.ctx.Done():
				t.Stop()
				return
			}
			delay = min(2*delay, c.opts.retry.MaxDelay)
		}
	}()
}

// failover reports whether err means the copy cannot serve (so the next one
// should), as opposed to a bad request.
func failover(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DataLoss, codes.NotFound:
		return true
	}
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrModelLost)
}

// readCopy runs f against the first good copy of partition p of model
// (model "" for KV), failing over to the next on a failover error. Only the
// last copy tried waits for an unreachable shard.
func (c *Client) readCopy(ctx context.Context, model string, p int, f func(sh *shardConn, name string, wait bool) error) error {
	if c.r == 1 {
		return f(c.owners[p][0], c.copyName(model, p, 0), true)
	}
	// With every copy given up, try them all again: the marks may be
	// stale (the model was created again by another client).
	ignore := !c.copies.anyGood(model, p, c.r)
	var err error
	for j := 0; j < c.r; j++ {
		k := copyKey{model, p, j}
		if !ignore && c.copies.isBad(k) {
			continue
		}
		last := true
		for jj := j + 1; jj < c.r; jj++ {
			if ignore || !c.copies.isBad(copyKey{model, p, jj}) {
				last = false
			}
		}
		if err = f(c.copyHost(p, j), c.copyName(model, p, j), last); err == nil || !failover(err) || ctx.Err() != nil {
			if err == nil && ignore {
				c.copies.unmark(k)
			}
			return err
		}
		c.copies.markBad(k, err, c.r)
	}
	return err
}

// noCopy is the error when every copy of partition p was given up.
func (c *Client) noCopy(model string, p int) error {
	c.copies.mu.RLock()
	defer c.copies.mu.RUnlock()
	var errs []error
	for j := 0; j < c.r; j++ {
		if e := c.copies.bad[copyKey{model, p, j}]; e != nil {
			errs = append(errs, e)
		}
	}
	what := "key range"
	if model != "" {
		what = "model " + model
	}
	return fmt.Errorf("psstore: every copy of partition %d of %s failed: %w", p, what, errors.Join(errs...))
}

// hostsOf returns the shards holding partition p's copies.
func (c *Client) hostsOf(p int) []*shardConn {
	if c.r == 1 {
		return c.owners[p][:1]
	}
	hs := make([]*shardConn, c.r)
	for j := range hs {
		hs[j] = c.copyHost(p, j)
	}
	return hs
}

// slice is one copy of one partition of a model, for the calls that reach
// every copy (create, delete, snapshot).
type slice struct {
	part, copy int
	name       string
}

// slicesOn returns, per shard index, the copies of model it hosts.
func (c *Client) slicesOn(model string) [][]slice {
	out := make([][]slice, len(c.shards))
	for p := range c.parts {
		for j := 0; j < c.r; j++ {
			h := c.copyHost(p, j).idx()
			out[h] = append(out[h], slice{p, j, c.copyName(model, p, j)})
		}
	}
	return out
}
