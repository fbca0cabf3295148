package psstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	pb "github.com/stratus-ml/stratus/psstore/proto"
)

// Membership changes: a shard joining the cluster, a member drained out of
// it, each as a sequence of partition moves (see Elasticity in the package
// documentation for the rule they follow). One change at a time: two
// running at once would hand out the same map versions.

// MoveEvent reports the progress of a membership change.
type MoveEvent struct {
	Map          *ShardMap // the map just installed on every member
	Move         *Move     // the move that made it, nil for a membership change
	Keys, Models uint64
}

// JoinCluster adds the shard at addr (already serving, on an empty data
// directory) to the cluster seed belongs to and moves its share of the
// partitions' copies onto it, while clients keep working. progress, if not
// nil, is called after every installed map. It returns the final map.
func JoinCluster(ctx context.Context, seed, addr string, progress func(MoveEvent), opts ...Option) (*ShardMap, error) {
	c, err := Dial(ctx, []string{seed}, opts...)
	if err != nil {
		return nil, fmt.Errorf("psstore: join %s: %w", seed, err)
	}
	defer c.Close()
	if len(c.installV1) > 0 {
		return nil, fmt.Errorf("psstore: join %s: the shard there holds no shard map of its cluster yet: run any `stratus psstore` command (or a client) once with the cluster's full address list, in shard order, so that every member records it", seed)
	}
	cur := c.Map()
	joined, moves, err := cur.Join(addr)
	if err != nil {
		return nil, fmt.Errorf("psstore: join: %w", err)
	}
	if _, err := c.dialConn(ctx, addr); err != nil {
		return nil, err
	}
	if err := c.installAll(ctx, joined, joined.Addrs()); err != nil {
		return nil, fmt.Errorf("psstore: join %s: %w", addr, err)
	}
	if progress != nil {
		progress(MoveEvent{Map: joined})
	}
	cur = joined
	for _, mv := range moves {
		if cur, err = c.move(ctx, cur, mv, progress); err != nil {
			return nil, err
		}
	}
	return cur, nil
}

// DrainMember moves every copy off the member at addr and removes it from
// the cluster seed belongs to (seed may be addr itself). The drained
// process keeps running (refusing requests with MOVED) until stopped.
func DrainMember(ctx context.Context, seed, addr string, progress func(MoveEvent), opts ...Option) (*ShardMap, error) {
	c, err := Dial(ctx, []string{seed}, opts...)
	if err != nil {
		return nil, fmt.Errorf("psstore: drain: %w", err)
	}
	defer c.Close()
	cur := c.Map()
	moves, final, err := cur.Drain(addr)
	if err != nil {
		return nil, fmt.Errorf("psstore: %w", err)
	}
	for _, mv := range moves {
		if cur, err = c.move(ctx, cur, mv, progress); err != nil {
			return nil, err
		}
	}
	if err := c.installAll(ctx, final, cur.Addrs()); err != nil {
		return nil, fmt.Errorf("psstore: drain %s: %w", addr, err)
	}
	if progress != nil {
		progress(MoveEvent{Map: final})
	}
	return final, nil
}

// installAll installs m on the members at addrs, in order.
func (c *Client) installAll(ctx context.Context, m *ShardMap, addrs []string) error {
	b, err := MarshalMap(m)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		sh, err := c.dialConn(ctx, a)
		if err != nil {
			return err
		}
		if err := c.retry(ctx, sh, func() error {
			_, err := sh.rpc.InstallMap(ctx, &pb.InstallMapRequest{Map: b, Member: a})
			return err
		}); err != nil {
			return c.wrap(ctx, fmt.Sprintf("install shard map version %d", m.Version), sh, err)
		}
	}
	return nil
}

// move moves one copy: the source takes the next map first (from then on
// it refuses requests made with the older one, and every write it
// acknowledged is applied), exports the partition into the destination,
// which then takes the map (requests made with it waited for that), then
// every other member; finally the source drops its copy. A failure before
// the destination has the map installs, one version later, the map with
// the source still holding the copy (it never dropped it).
func (c *Client) move(ctx context.Context, cur *ShardMap, mv Move, progress func(MoveEvent)) (*ShardMap, error) {
	next, err := cur.Apply(mv)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*ShardMap, error) {
		back := cur.Clone()
		back.Version = next.Version + 1
		if rerr := c.installAll(context.WithoutCancel(ctx), back, cur.Addrs()); rerr != nil {
			return nil, fmt.Errorf("psstore: move %v: %w; rolling back to the old placement failed too: %w", mv, err, rerr)
		}
		return nil, fmt.Errorf("psstore: move %v failed (the copy stays where it was, map version %d): %w", mv, back.Version, err)
	}
	src, err := c.dialConn(ctx, mv.From)
	if err != nil {
		return nil, err
	}
	dst, err := c.dialConn(ctx, mv.To)
	if err != nil {
		return nil, err
	}
	if err := c.installAll(ctx, next, []string{mv.From}); err != nil {
		return fail(err)
	}
	dmb, _ := next.Member(mv.To)
	req := &pb.PartitionRequest{Partition: uint32(mv.Partition), Partitions: uint32(next.Partitions)}
	keys, models, err := c.copyPartition(ctx, src, dst, req, dmb.Home == mv.Partition)
	if err != nil {
		return fail(err)
	}
	if err := c.installAll(ctx, next, []string{mv.To}); err != nil {
		return fail(err)
	}
	rest := slices.DeleteFunc(next.Addrs(), func(a string) bool { return a == mv.From || a == mv.To })
	if err := c.installAll(ctx, next, rest); err != nil {
		return nil, fmt.Errorf("psstore: move %v: %w (the move is done; the member will get the map from the next change)", mv, err)
	}
	if _, err := src.rpc.DropPartition(ctx, req); err != nil {
		return nil, c.wrap(ctx, fmt.Sprintf("drop partition %d after moving it", mv.Partition), src, err)
	}
	if progress != nil {
		progress(MoveEvent{Map: next, Move: &mv, Keys: keys, Models: models})
	}
	return next, nil
}

// copyPartition streams partition req from src into dst.
func (c *Client) copyPartition(ctx context.Context, src, dst *shardConn, req *pb.PartitionRequest, home bool) (keys, models uint64, err error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in, err := src.rpc.ExportPartition(cctx, req)
	if err != nil {
		return 0, 0, c.wrap(ctx, "export partition", src, err)
	}
	out, err := dst.rpc.ImportPartition(cctx)
	if err != nil {
		return 0, 0, c.wrap(ctx, "import partition", dst, err)
	}
	if err := out.Send(&pb.PartitionItem{Partition: req.Partition, Partitions: req.Partitions, Home: home}); err != nil {
		_, rerr := out.CloseAndRecv()
		return 0, 0, c.wrap(ctx, "import partition", dst, errors.Join(err, rerr))
	}
	for {
		it, err := in.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, c.wrap(ctx, "export partition", src, err)
		}
		if err := out.Send(it); err != nil {
			_, rerr := out.CloseAndRecv()
			return 0, 0, c.wrap(ctx, "import partition", dst, errors.Join(err, rerr))
		}
	}
	r, err := out.CloseAndRecv()
	if err != nil {
		return 0, 0, c.wrap(ctx, "import partition", dst, err)
	}
	return r.Keys, r.Models, nil
}
